FROM busybox
RUN echo a \
# a comment inside the continuation

    && echo b \
    && echo c
RUN echo "escaped \\" \
    && echo done
RUN ["echo", "json \"quoted\""]
CMD ['not', 'json']
ENTRYPOINT [ "unterminated"
