# skyedge-agent as a FROM-scratch image: the static binary, an empty state
# volume owned by the unprivileged user, and /etc/skyedge for the node's
# configuration file and certificates (mount them, or `docker cp` them in
# before the first start).
#
# Build context: a directory holding the static binary (CGO_ENABLED=0) and
# an empty directory named empty/, as `make docker-images` prepares it:
#
#   docker build -f deploy/agent.Dockerfile -t skyedge/agent bin/docker
#   docker run -v /etc/skyedge:/etc/skyedge:ro skyedge/agent
#
# The default command reads /etc/skyedge/agent.yaml (see agent.FileConfig);
# flags after the image name replace it, e.g. -node, -broker, -cert.
FROM scratch
COPY skyedge-agent /usr/local/bin/skyedge-agent
COPY --chown=65532:65532 empty/ /var/lib/skyedge/
COPY empty/ /etc/skyedge/
USER 65532:65532
VOLUME ["/var/lib/skyedge"]
ENTRYPOINT ["/usr/local/bin/skyedge-agent", "-data-dir", "/var/lib/skyedge"]
CMD ["-config", "/etc/skyedge/agent.yaml"]
