# berth's container image: one static binary in an otherwise empty image,
# laid out like registry:2's (port 5000, data in /var/lib/registry, config
# at /etc/docker/registry/config.yml, the same REGISTRY_* variables).
#
# Build it with deploy/build-image.sh, not with "docker build ." directly:
# the script compiles berth on the host (CGO_ENABLED=0, so the binary needs
# no libc) and prepares the build context this file copies from. There is no
# builder stage because a golang base image cannot be pulled everywhere
# berth is built (air-gapped CI, no Docker Hub); the host's Go is used.
#
# The context holds:
#   rootfs/   /berth, /etc/docker/registry/config.yml, CA certificates,
#             /etc/passwd and /etc/group (root, nonroot 65532), /tmp (1777)
#   data/     an empty directory, becoming /var/lib/registry
FROM scratch

COPY rootfs/ /
# Owned by 65532 so that a new volume (docker run -v NAME:/var/lib/registry,
# or an anonymous one) starts out owned by the unprivileged user.
COPY --chown=65532:65532 data/ /var/lib/registry/

# Started as root (as registry:2 runs), berth becomes the owner of
# /var/lib/registry when that is not root: unprivileged on new volumes,
# still root on a registry:2 volume or a root-owned bind mount. Set
# BERTH_USER=root to keep root, or use --user 65532:65532 to never be root.
ENV BERTH_USER=auto
# With object storage the index file goes to the working directory.
WORKDIR /var/lib/registry
VOLUME ["/var/lib/registry"]
EXPOSE 5000

ENTRYPOINT ["/berth"]
CMD ["serve", "/etc/docker/registry/config.yml"]
