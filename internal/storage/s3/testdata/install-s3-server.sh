#!/usr/bin/env bash
# Installs an S3-compatible server for internal/storage/s3's tests into
# $(go env GOPATH)/bin, unless one is already there or in PATH.
#
# versitygw is the default: it builds in about a minute with `go install`
# (MinIO takes several and is ten times the size). Set S3_SERVER=minio to
# install MinIO instead; the tests use whichever they find (MinIO first).
set -euo pipefail

export PATH="/usr/local/go/bin:$PATH"
gobin="$(go env GOPATH)/bin"
server="${S3_SERVER:-versitygw}"

case "$server" in
versitygw) pkg="github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION:-v1.8.0}" ;;
minio) pkg="github.com/minio/minio@${MINIO_VERSION:-latest}" ;;
*)
	echo "install-s3-server: unknown S3_SERVER=$server (versitygw or minio)" >&2
	exit 2
	;;
esac

if command -v "$server" >/dev/null 2>&1 || [[ -x "$gobin/$server" ]]; then
	echo "install-s3-server: $server already installed: $(command -v "$server" 2>/dev/null || echo "$gobin/$server")"
	exit 0
fi

echo "install-s3-server: go install $pkg"
# Outside any module so the product's go.mod is not involved.
(cd / && GOFLAGS=-buildvcs=false go install "$pkg")
echo "install-s3-server: installed $gobin/$server"
