#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite (all four workflows)
# against a registry started here on 127.0.0.1 with a fresh root directory.
#
#   test/conformance/run.sh                         # builds and tests berth
#   REGISTRY_BIN=docker-registry test/conformance/run.sh   # distribution 2.8.2
#
# Environment:
#   REGISTRY_BIN          registry binary to test instead of building berth
#                         (any binary taking `serve CONFIG.yml`)
#   OCI_AUTOMATIC_CROSSMOUNT  passed to the suite (default 0: a mount without
#                         `from` must start an upload, as in registry:2);
#                         set it to the empty string to skip those checks
#   CONFORMANCE_AUTH      run with authentication on, the suite logging in
#                         with OCI_USERNAME/OCI_PASSWORD:
#                           htpasswd  registry:2's auth.htpasswd (Basic auth;
#                                     works with REGISTRY_BIN=docker-registry)
#                           token     berth's token service (Bearer tokens)
#                                     with an htpasswd group and a policy
#                         (default: no authentication)
#   CONFORMANCE_STORAGE   filesystem (default) or s3 (versitygw started here)
#   CONFORMANCE_TIMEOUT   seconds the suite may run (default 900)
#   CONFORMANCE_KEEP=1    keep the work dir (logs, report) after the run
#   CONFORMANCE_REPORT_DIR  copy junit.xml, report.html and logs there
#
# Exits non-zero if the registry does not start, the suite cannot run, or
# any conformance check failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"

work="$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance.XXXXXX")"
registry_pid=""

s3_pid=""
cleanup() {
	local rc=$?
	if [[ -n "$s3_pid" ]]; then
		kill "$s3_pid" 2>/dev/null || true
		wait "$s3_pid" 2>/dev/null || true
	fi
	if [[ -n "$registry_pid" ]] && kill -0 "$registry_pid" 2>/dev/null; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
	fi
	if [[ -n "${CONFORMANCE_REPORT_DIR:-}" ]]; then
		mkdir -p "$CONFORMANCE_REPORT_DIR"
		cp -f "$work"/report/* "$work"/*.log "$CONFORMANCE_REPORT_DIR"/ 2>/dev/null || true
	fi
	if [[ "${CONFORMANCE_KEEP:-0}" == 1 ]]; then
		echo "conformance: work dir kept at $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "conformance: $*"; }

# A port nobody listens on, below Linux's ephemeral range (32768-60999 by
# default) so an outgoing connection cannot be holding it. Another process
# may still take it before the server binds; the servers are started with
# retries on a new port when that happens.
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((10000 + RANDOM % 22000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "conformance: no free port found" >&2
	return 1
}

# listens PID PORT: whether process PID listens on 127.0.0.1:PORT (not just
# anyone: a port can be taken between free_port and the bind).
listens() {
	ss -Hltnp "sport = :$2" 2>/dev/null | grep -q "pid=$1,"
}

# --- binaries ---------------------------------------------------------------
if [[ -n "${REGISTRY_BIN:-}" ]]; then
	bin="$(command -v "$REGISTRY_BIN" || true)"
	if [[ -z "$bin" ]]; then
		log "REGISTRY_BIN=$REGISTRY_BIN: not found"
		exit 1
	fi
	log "testing $bin"
else
	log "building berth"
	(cd "$repo_root" && go build -o "$work/berth" ./cmd/berth)
	bin="$work/berth"
fi

auth_mode="${CONFORMANCE_AUTH:-}"
case "$auth_mode" in
"" | htpasswd) ;;
token)
	if [[ -n "${REGISTRY_BIN:-}" ]]; then
		log "CONFORMANCE_AUTH=token needs berth's token service; it cannot test $REGISTRY_BIN"
		exit 1
	fi
	;;
*)
	log "CONFORMANCE_AUTH=$auth_mode: want htpasswd or token"
	exit 1
	;;
esac
if [[ -n "$auth_mode" ]]; then
	# `berth htpasswd` makes the bcrypt entry (no apache2-utils needed).
	htpasswd_bin="$bin"
	if [[ -n "${REGISTRY_BIN:-}" ]]; then
		(cd "$repo_root" && go build -o "$work/berth" ./cmd/berth)
		htpasswd_bin="$work/berth"
	fi
	export OCI_USERNAME="${OCI_USERNAME:-conformance}"
	export OCI_PASSWORD="${OCI_PASSWORD:-conformance-$RANDOM$RANDOM}"
	"$htpasswd_bin" htpasswd -Bbn "$OCI_USERNAME" "$OCI_PASSWORD" >"$work/htpasswd"
	log "authentication: $auth_mode (user $OCI_USERNAME)"
fi

# auth_config prints the config section for CONFORMANCE_AUTH.
auth_config() {
	case "$auth_mode" in
	htpasswd)
		cat <<EOF
auth:
  htpasswd:
    realm: conformance
    path: $work/htpasswd
EOF
		;;
	token)
		cat <<EOF
berth:
  auth:
    htpasswd:
      - group: conformance
        path: $work/htpasswd
    policy:
      - group: conformance
        actions: ["*"]
    tokenservice:
      service: conformance
EOF
		;;
	esac
}

# CONFORMANCE_STORAGE=s3 runs berth on an S3 server (versitygw, started here;
# internal/storage/s3/testdata/install-s3-server.sh installs it), so blob
# downloads also exercise the presigned-URL redirects.
storage_mode="${CONFORMANCE_STORAGE:-filesystem}"
if [[ "$storage_mode" == s3 ]]; then
	vgw="$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")"
	if [[ ! -x "$vgw" ]]; then
		log "CONFORMANCE_STORAGE=s3 needs versitygw (internal/storage/s3/testdata/install-s3-server.sh)"
		exit 1
	fi
	mkdir -p "$work/s3/conformance"
	# Ready when our process listens on the port: a port taken by someone
	# else between free_port and the bind makes versitygw exit (after
	# printing its banner), and then another port is tried.
	s3_ready=0
	for attempt in 1 2 3; do
		s3_port="$(free_port)"
		ROOT_ACCESS_KEY=conformance ROOT_SECRET_KEY=conformance-secret \
			"$vgw" --port "127.0.0.1:$s3_port" posix "$work/s3" >"$work/s3.log" 2>&1 &
		s3_pid=$!
		deadline=$((SECONDS + 30))
		while ((SECONDS < deadline)) && kill -0 "$s3_pid" 2>/dev/null; do
			if listens "$s3_pid" "$s3_port"; then
				s3_ready=1
				break
			fi
			sleep 0.2
		done
		((s3_ready)) && break
		log "versitygw did not start on 127.0.0.1:$s3_port (attempt $attempt); its log:"
		sed 's/^/    /' "$work/s3.log" | tail -n 20
		kill "$s3_pid" 2>/dev/null || true
		wait "$s3_pid" 2>/dev/null || true
		s3_pid=""
	done
	if ((!s3_ready)); then
		log "versitygw could not be started"
		exit 1
	fi
	log "storage: s3 (versitygw on 127.0.0.1:$s3_port)"
elif [[ "$storage_mode" != filesystem ]]; then
	log "CONFORMANCE_STORAGE=$storage_mode: want filesystem or s3"
	exit 1
fi

# storage_config prints the storage section for CONFORMANCE_STORAGE.
storage_config() {
	if [[ "$storage_mode" == s3 ]]; then
		printf '%s\n' "storage:" "  s3:" "    accesskey: conformance" "    secretkey: conformance-secret" \
			"    region: us-east-1" "    regionendpoint: http://127.0.0.1:$s3_port" "    bucket: conformance" \
			"    secure: false" "    forcepathstyle: true"
	else
		printf '%s\n' "storage:" "  filesystem:" "    rootdirectory: $work/data"
	fi
	printf '%s\n' "  delete:" "    enabled: true"
}

log "building the conformance suite"
(
	cd "$here"
	go test -c -o "$work/conformance.test" github.com/opencontainers/distribution-spec/conformance
	go build -o "$work/junitsummary" ./junitsummary
)

# --- registry ---------------------------------------------------------------
start_registry() {
	local attempt code deadline
	for attempt in 1 2 3; do
		port="$(free_port)"
		rm -rf "$work/data"
		mkdir -p "$work/data"
		cat >"$work/config.yml" <<EOF
version: 0.1
log:
  level: info
http:
  addr: 127.0.0.1:$port
EOF
		storage_config >>"$work/config.yml"
		auth_config >>"$work/config.yml"
		log "starting registry on 127.0.0.1:$port (attempt $attempt)"
		if [[ "$storage_mode" == s3 ]]; then
			# With S3 there is no root directory to keep berth's index in.
			export REGISTRY_BERTH_INDEX_PATH="$work/data/index.db"
		fi
		"$bin" serve "$work/config.yml" >"$work/registry.log" 2>&1 &
		registry_pid=$!
		deadline=$((SECONDS + 60))
		while ((SECONDS < deadline)); do
			if ! kill -0 "$registry_pid" 2>/dev/null; then
				wait "$registry_pid" 2>/dev/null || true
				registry_pid=""
				log "registry exited during start-up; its log:"
				sed 's/^/    /' "$work/registry.log" | tail -n 40
				break
			fi
			code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)"
			if [[ "$code" == 200 || "$code" == 401 ]] && listens "$registry_pid" "$port"; then
				log "registry answers /v2/ with $code"
				return 0
			fi
			sleep 0.2
		done
		if [[ -n "$registry_pid" ]]; then
			log "registry did not answer /v2/ within 60s; its log:"
			sed 's/^/    /' "$work/registry.log" | tail -n 40
			kill "$registry_pid" 2>/dev/null || true
			wait "$registry_pid" 2>/dev/null || true
			registry_pid=""
		fi
	done
	return 1
}

start_registry

# --- suite ------------------------------------------------------------------
mkdir -p "$work/report"
export OCI_ROOT_URL="http://127.0.0.1:$port"
export OCI_NAMESPACE="${OCI_NAMESPACE:-myorg/myrepo}"
export OCI_CROSSMOUNT_NAMESPACE="${OCI_CROSSMOUNT_NAMESPACE:-myorg/other}"
export OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1
export OCI_HIDE_SKIPPED_WORKFLOWS=0
export OCI_DEBUG="${OCI_DEBUG:-0}"
export OCI_REPORT_DIR="$work/report"
if [[ -n "${OCI_AUTOMATIC_CROSSMOUNT-0}" ]]; then
	export OCI_AUTOMATIC_CROSSMOUNT="${OCI_AUTOMATIC_CROSSMOUNT:-0}"
else
	unset OCI_AUTOMATIC_CROSSMOUNT
fi

log "running the suite against $OCI_ROOT_URL (namespace $OCI_NAMESPACE, cross-mount $OCI_CROSSMOUNT_NAMESPACE)"
suite_rc=0
(
	cd "$work/report"
	timeout --kill-after=30 "${CONFORMANCE_TIMEOUT:-900}" \
		"$work/conformance.test" -test.v -ginkgo.no-color
) >"$work/suite.log" 2>&1 || suite_rc=$?

if ((suite_rc == 124 || suite_rc == 137)); then
	log "the suite timed out after ${CONFORMANCE_TIMEOUT:-900}s; last lines of its output:"
	tail -n 60 "$work/suite.log" | sed 's/^/    /'
fi

# Ginkgo's own closing lines ("Ran N of M Specs", "N Passed | N Failed ...").
grep -E '^(Ran [0-9]+ of [0-9]+ Specs|(FAIL|SUCCESS)! -- )' "$work/suite.log" | sed 's/^/    /' || true

summary_rc=0
if [[ -s "$work/report/junit.xml" ]]; then
	"$work/junitsummary" "$work/report/junit.xml" || summary_rc=$?
else
	log "no junit.xml was written; last lines of the suite's output:"
	tail -n 60 "$work/suite.log" | sed 's/^/    /'
	summary_rc=2
fi

if grep -q -E '^(panic|fatal error):|http: panic serving' "$work/registry.log"; then
	log "the registry log shows panics:"
	grep -E -A8 '^(panic|fatal error):|http: panic serving' "$work/registry.log" | head -n 60 | sed 's/^/    /'
	summary_rc=1
fi

if ! kill -0 "$registry_pid" 2>/dev/null; then
	log "the registry died during the run; its log:"
	tail -n 40 "$work/registry.log" | sed 's/^/    /'
	registry_pid=""
	exit 1
fi

if ((summary_rc != 0 || suite_rc != 0)); then
	log "FAILED (suite exit $suite_rc)"
	exit 1
fi
log "OK"
