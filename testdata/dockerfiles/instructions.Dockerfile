# escape=\
ARG VERSION=1.0 \
    OTHER
FROM busybox:latest AS base
LABEL org.opencontainers.image.version="${VERSION}" maintainer=me
ENV PATH=/opt/bin:$PATH \
    HOME=/root
ENV LEGACY value with spaces
EXPOSE 80 443/tcp 53/udp 8000-8010
VOLUME ["/data", "/cache"]
VOLUME /logs /tmp/x
USER app:app
WORKDIR /srv/app
SHELL ["/bin/sh", "-ec"]
STOPSIGNAL SIGTERM
ONBUILD RUN echo triggered
ONBUILD COPY . /app
MAINTAINER someone@example.com
CMD ["serve", "--port", "80"]
ENTRYPOINT /entrypoint.sh
run echo lowercase works
  COPY ["file with spaces.txt", "/dest dir/"]
HEALTHCHECK NONE
