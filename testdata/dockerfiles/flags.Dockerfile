FROM busybox AS tools
RUN mkdir -p /etc/tools

FROM --platform=$BUILDPLATFORM busybox AS build
RUN --mount=type=cache,target=/root/.cache,sharing=locked \
    --mount=type=secret,id=token,env=TOKEN \
    --mount=type=bind,from=tools,source=/etc,target=/mnt/etc \
    --mount=type=tmpfs,target=/tmp/t,size=64m \
    --network=none \
    echo build
COPY --chown=1000:1000 --chmod=0755 --link --exclude=*.md . /src/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/file.tar.gz /tmp/
ADD --keep-git-dir https://github.com/moby/buildkit.git#v0.12.0:docs /docs
COPY --parents ./a/./b/*.txt /dst/
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD ["true"]
