#!/usr/bin/env bash
# Installs (idempotently) and readies every client the e2e suite drives:
#   - Debian packages: docker.io (dockerd), podman, buildah, skopeo
#   - Go tools into $(go env GOPATH)/bin: crane, regctl, oras
#   - starts dockerd in the background unless /var/run/docker.sock answers
# Run as root on Debian 12. Safe to run again: it skips what is present.
# Environment:
#   E2E_NO_DOCKERD=1   do not start dockerd
#   E2E_DOCKERD_LOG    where dockerd's output goes (default /tmp/berth-e2e-dockerd.log)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/local/go/bin:$PATH"
GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$PATH:$GOBIN_DIR"

# Pinned so CI does not change under us; override to try others ("latest").
CRANE_VERSION="${CRANE_VERSION:-v0.22.1}"
REGCTL_VERSION="${REGCTL_VERSION:-v0.11.7}"
ORAS_VERSION="${ORAS_VERSION:-v1.2.3}" # newer versions are refused by the reachable proxy

log() { printf 'install-tools: %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------
# docker.io as is (with its recommends), the containers tools without.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
APT_UPDATED=0
apt_get() {
	if ((APT_UPDATED == 0)); then
		apt-get -o DPkg::Lock::Timeout=600 update -q
		APT_UPDATED=1
	fi
	apt-get -o DPkg::Lock::Timeout=600 install -y -q "$@"
}
if ! installed docker.io; then
	log "apt-get install docker.io"
	apt_get docker.io
fi
missing=()
for p in podman buildah skopeo; do
	installed "$p" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
	log "apt-get install ${missing[*]}"
	apt_get --no-install-recommends "${missing[@]}"
fi
log "apt packages present: docker.io podman buildah skopeo"

# --- Go tools ----------------------------------------------------------------
if ! command -v crane >/dev/null; then
	log "go install crane@$CRANE_VERSION"
	go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
else
	log "crane present: $(command -v crane)"
fi
if ! command -v regctl >/dev/null; then
	log "go install regctl@$REGCTL_VERSION"
	go install "github.com/regclient/regclient/cmd/regctl@$REGCTL_VERSION"
else
	log "regctl present: $(command -v regctl)"
fi
if ! command -v oras >/dev/null; then
	# `go install oras.land/oras/cmd/oras@...` is refused by the proxy here;
	# building it from a scratch module works.
	log "building oras $ORAS_VERSION"
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	(
		cd "$tmp"
		go mod init orasbuild >/dev/null 2>&1
		go get "oras.land/oras/cmd/oras@$ORAS_VERSION"
		mkdir -p "$GOBIN_DIR"
		go build -o "$GOBIN_DIR/oras" oras.land/oras/cmd/oras
	)
else
	log "oras present: $(command -v oras)"
fi

# --- dockerd -----------------------------------------------------------------
if [[ "${E2E_NO_DOCKERD:-}" != 1 ]]; then
	if docker info >/dev/null 2>&1; then
		log "dockerd already answers"
	else
		dlog="${E2E_DOCKERD_LOG:-/tmp/berth-e2e-dockerd.log}"
		log "starting dockerd (log: $dlog)"
		nohup dockerd --iptables=false --bridge=none </dev/null >"$dlog" 2>&1 &
		for _ in $(seq 1 120); do
			if docker info >/dev/null 2>&1; then
				break
			fi
			sleep 0.5
		done
		if ! docker info >/dev/null 2>&1; then
			log "dockerd did not come up within 60s; its log:"
			tail -n 40 "$dlog" >&2 || true
			exit 1
		fi
		log "dockerd ready"
	fi
fi

for t in docker dockerd podman buildah skopeo crane regctl oras; do
	printf '  %-8s %s\n' "$t" "$(command -v "$t")"
done
