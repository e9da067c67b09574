#!/usr/bin/env bash
# Build berth's container image: compile a static binary with the host's Go
# and put it, with registry:2's default config layout, into a FROM scratch
# image. Works offline: nothing is pulled.
#
#   deploy/build-image.sh                 # tags berth:latest
#   deploy/build-image.sh registry.example.com/berth:1.0
#   GOARCH=arm64 deploy/build-image.sh berth:arm64   (plus docker build --platform)
#
# Needs go, docker (or podman with a docker-compatible CLI: DOCKER=podman)
# and the CA bundle at /etc/ssl/certs/ca-certificates.crt (Debian/Ubuntu
# package ca-certificates), which berth uses for S3, token realms and ACME.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
tag="${1:-berth:latest}"
docker="${DOCKER:-docker}"
go="${GO:-go}"
if ! command -v "$go" >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	go=/usr/local/go/bin/go
fi
cabundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
if [[ ! -r "$cabundle" ]]; then
	echo "build-image: no CA bundle at $cabundle (apt-get install ca-certificates, or set CA_BUNDLE)" >&2
	exit 1
fi

version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

mkdir -p "$ctx/rootfs/etc/docker/registry" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/data"
CGO_ENABLED=0 GOOS=linux "$go" build -trimpath -ldflags "-s -w -X main.version=$version" \
	-o "$ctx/rootfs/berth" ./cmd/berth
install -m 0644 deploy/image/config.yml "$ctx/rootfs/etc/docker/registry/config.yml"
install -m 0644 "$cabundle" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/var/lib/registry:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/rootfs/etc/group"
chmod 0644 "$ctx/rootfs/etc/passwd" "$ctx/rootfs/etc/group"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0755 "$ctx/rootfs/berth" "$ctx/data"

"$docker" build --label "org.opencontainers.image.version=$version" \
	--label "org.opencontainers.image.title=berth" \
	-t "$tag" -f Dockerfile "$ctx"
echo "built $tag (berth $version)"
