# cloudcore-bridge as a FROM-scratch image: the static binary, an empty
# data volume owned by the unprivileged user, and /etc/skyedge for the
# certificates (mount them, or `docker cp` them in before the first
# start). No shell, no package manager, nothing to pull.
#
# Build context: a directory holding the static binary (CGO_ENABLED=0) and
# an empty directory named empty/, as `make docker-images` prepares it:
#
#   docker build -f deploy/bridge.Dockerfile -t skyedge/cloudcore-bridge bin/docker
#
# The API listens on loopback unless told otherwise; off loopback it needs
# a token:
#
#   docker run -p 8883:8883 -p 127.0.0.1:8080:8080 -v /etc/skyedge:/etc/skyedge:ro \
#     skyedge/cloudcore-bridge -http 0.0.0.0:8080 -http-token "$(cat token)"
FROM scratch
COPY cloudcore-bridge /usr/local/bin/cloudcore-bridge
COPY --chown=65532:65532 empty/ /var/lib/skyedge-bridge/
COPY empty/ /etc/skyedge/
USER 65532:65532
EXPOSE 8883 8080
VOLUME ["/var/lib/skyedge-bridge"]
ENTRYPOINT ["/usr/local/bin/cloudcore-bridge", "-data-dir", "/var/lib/skyedge-bridge", \
    "-cert", "/etc/skyedge/bridge.crt", "-key", "/etc/skyedge/bridge.key", "-ca", "/etc/skyedge/ca.crt"]
CMD ["-mqtt", ":8883"]
