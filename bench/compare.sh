#!/usr/bin/env bash
# bench/compare.sh [--quick] [--rounds N] [--out DIR] [--keep] [--only berth|distribution]
#
# Runs berth and distribution 2.8.2 (Debian's docker-registry) one after the
# other on the same machine and the same data, and prints every figure for
# both with the ratio. See docs/BENCHMARKS.md.
#
# For each registry:
#   A. fresh storage root: push a 4 x 64 MiB image (3 times, median), pull it
#      (blob GET, plus a Range request), push 200 small images with 8
#      concurrent pushers (loadgen, then crane), manifest HEAD and GET by tag
#      on 64 keep-alive connections (loadgen; GET also with wrk), push one
#      1 GiB layer while sampling the server's RSS, record its VmHWM, stop.
#   B. the seeded tree (10,000 repositories + one repository with 10,000
#      tags, written directly on disk in registry:2's layout, shared by both):
#      first start (berth builds its index), catalog and tag list latency
#      (whole and in pages of 100), VmHWM, stop; then start-up time with the
#      tree (and berth's index) in place, median of 5.
# Then: the table, bench/results/latest.{json,md} and ratios.svg.
#
# --rounds N runs the whole sequence N times, alternating berth and
# distribution, and reports the median of each figure: on a shared machine
# the load changes over minutes, and alternation spreads it over both.
# --quick shrinks everything to a smoke run (CI): results go to the work
# directory unless --out is given, crane and wrk are used only if present.
# The machine is whatever runs this: numbers from a shared or busy machine
# are noisy; the load average before and after is recorded with the results.
set -euo pipefail

# The braces make bash read the whole script before running any of it: a
# run takes half an hour, and bash otherwise reads a script as it goes, so
# editing the file meanwhile would change what the run does.
{
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"
export PATH="/usr/local/go/bin:$PATH"
PATH="$PATH:$(go env GOPATH)/bin"
export PATH

QUICK=0 KEEP=0 OUT="" ONLY="" ROUNDS=1
while (($#)); do
	case "$1" in
	--quick) QUICK=1 ;;
	--keep) KEEP=1 ;;
	--out) OUT="$2"; shift ;;
	--only) ONLY="$2"; shift ;;
	--rounds) ROUNDS="$2"; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

if ((QUICK)); then
	LAYERS=2 LAYER_SIZE=8MiB PUSH_REPEAT=1 BIG_LAYER=32MiB
	SMALL_IMAGES=20 SMALL_WORKERS=8 CRANE_IMAGES=0
	CONNS=16 DURATION=1s WARMUP=200ms
	SEED_REPOS=200 SEED_TAGS=200 LIST_N=200 LIST_COUNT=3 PAGE=50 STARTS=2
	MODE=quick
else
	LAYERS=4 LAYER_SIZE=64MiB PUSH_REPEAT=3 BIG_LAYER=1GiB
	SMALL_IMAGES=200 SMALL_WORKERS=8 CRANE_IMAGES=200
	CONNS=64 DURATION=10s WARMUP=1s
	SEED_REPOS=10000 SEED_TAGS=10000 LIST_N=10000 LIST_COUNT=50 PAGE=100 STARTS=5
	MODE=full
fi
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'

log() { printf '\n== %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	if ((APT_UPDATED == 0)); then
		apt-get -o DPkg::Lock::Timeout=600 update -q >&2
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
}

log "tools"
command -v docker-registry >/dev/null || apt_install docker-registry
if ((QUICK)); then
	HAVE_WRK=$(command -v wrk >/dev/null && echo 1 || echo 0)
	HAVE_CRANE=0
else
	command -v wrk >/dev/null || apt_install wrk
	command -v crane >/dev/null || go install github.com/google/go-containerregistry/cmd/crane@latest
	HAVE_WRK=1 HAVE_CRANE=1
fi

WORK="$(mktemp -d /tmp/berth-bench.XXXXXX)"
BIN="$WORK/bin"
RESULTS="$WORK/results.jsonl"
PID=""
cleanup() {
	if [[ -n $PID ]]; then
		kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	fi
	if ((KEEP)); then
		echo "work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

log "build"
go build -o "$BIN/berth" ./cmd/berth
go build -o "$BIN/loadgen" ./bench/loadgen
LG="$BIN/loadgen"
: >"$RESULTS"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- servers ----------------------------------------------------------------

# write_config NAME ROOT PORT: registry:2 configuration, the same for both
# servers: warnings and errors only, no access log (distribution logs every
# request at info level and writes an access log by default), deletes on,
# and registry:2's stock in-memory blob descriptor cache (distribution's
# best case).
write_config() {
	local name=$1 root=$2 port=$3
	{
		echo "version: 0.1"
		echo "log:"
		echo "  level: warn"
		echo "  accesslog:"
		echo "    disabled: true"
		echo "storage:"
		echo "  filesystem:"
		echo "    rootdirectory: $root"
		echo "  delete:"
		echo "    enabled: true"
		echo "  cache:"
		echo "    blobdescriptor: inmemory"
		echo "http:"
		echo "  addr: 127.0.0.1:$port"
		echo "  secret: berth-bench-secret"
		echo "catalog:"
		echo "  maxentries: 10000"
	} >"$WORK/$name.yml"
}

server_bin() { [[ $1 == berth ]] && echo "$BIN/berth" || command -v docker-registry; }

# start_server NAME ROOT LABEL [READY-FLAGS]: start in the background, record
# the time from exec to /v2/ answering 200 under LABEL (with -catalog, also
# to the first catalog answer: berth builds its index in the background and
# lists once it is built); sets PID, URL, PORT.
start_server() {
	local name=$1 root=$2 label=$3 start
	PORT="$("$LG" port)"
	URL="http://127.0.0.1:$PORT"
	write_config "$name" "$root" "$PORT"
	start="$(date +%s%N)"
	"$(server_bin "$name")" serve "$WORK/$name.yml" >>"$WORK/$name.log" 2>&1 &
	PID=$!
	"$LG" ready -url "$URL" -start-ns "$start" -pid "$PID" -label "$label" -registry "$name" -out "$RESULTS" "${@:4}" >/dev/null
}

stop_server() {
	kill -TERM "$PID"
	wait "$PID" || true
	PID=""
}

# lg CMD ARGS...: a loadgen measurement of the current registry, into RESULTS.
lg() {
	local cmd=$1
	shift
	"$LG" "$cmd" -registry "$NAME" -out "$RESULTS" "$@" >/dev/null
}

# --- data -------------------------------------------------------------------

SEEDED="$WORK/seeded"
log "seed: $SEED_REPOS repositories, $SEED_TAGS tags in seed/tags (registry:2 layout, written directly)"
"$LG" seed -root "$SEEDED" -repos "$SEED_REPOS" -tags "$SEED_TAGS" >/dev/null
EXPECT_CATALOG=$((SEED_REPOS + (SEED_TAGS > 0 ? 1 : 0)))
((EXPECT_CATALOG > LIST_N)) && EXPECT_CATALOG=$LIST_N

if ((HAVE_CRANE && CRANE_IMAGES > 0)); then
	mkdir -p "$WORK/tars"
	for ((i = 0; i < CRANE_IMAGES; i++)); do
		head -c 1024 /dev/urandom >"$WORK/tars/file"
		tar -C "$WORK/tars" -cf "$WORK/tars/l$i.tar" file
	done
fi

# --- runs -------------------------------------------------------------------

run_registry() {
	NAME=$1
	local root="$WORK/$NAME-push-$ROUND"
	lg record -label loadavg load1="$(cut -d' ' -f1 /proc/loadavg)" round="$ROUND"

	log "$NAME: pushes and pulls (fresh root)"
	start_server "$NAME" "$root" start-empty
	lg push-large -label push-large -url "$URL" -layers "$LAYERS" -size "$LAYER_SIZE" -parallel "$LAYERS" -repeat "$PUSH_REPEAT"
	lg pull -url "$URL" -ref bench/large:r0 -conns "$LAYERS" -repeat 3
	lg push-small -url "$URL" -images "$SMALL_IMAGES" -workers "$SMALL_WORKERS"
	if ((HAVE_CRANE && CRANE_IMAGES > 0)); then
		local t0 t1
		t0="$(date +%s%N)"
		seq 0 $((CRANE_IMAGES - 1)) | xargs -P "$SMALL_WORKERS" -I{} \
			crane append --insecure -f "$WORK/tars/l{}.tar" -t "127.0.0.1:$PORT/crane/img{}:latest" >>"$WORK/crane.log" 2>&1
		t1="$(date +%s%N)"
		lg record -label push-small-crane \
			images_per_s="$(awk -v n="$CRANE_IMAGES" -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", n / (ns / 1e9) }')" \
			images="$CRANE_IMAGES" workers="$SMALL_WORKERS"
	fi

	log "$NAME: manifest HEAD/GET by tag, $CONNS connections, $DURATION each"
	lg head -url "$URL" -ref bench/large:r0 -conns "$CONNS" -duration "$DURATION" -warmup "$WARMUP"
	lg get -url "$URL" -ref bench/large:r0 -conns "$CONNS" -duration "$DURATION" -warmup "$WARMUP"
	if ((HAVE_WRK)); then
		# wrk hangs on HEAD responses with a Content-Length, so GET only.
		lg wrk -label get-wrk -- wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "$ACCEPT" "$URL/v2/bench/large/manifests/r0"
	fi

	log "$NAME: one $BIG_LAYER layer, server RSS sampled every 10 ms"
	lg push-large -label push-1g -url "$URL" -repo bench/big -layers 1 -size "$BIG_LAYER" -parallel 1 -repeat 1 -seed 7 -watch-pid "$PID"
	lg rss -label rss-push -pid "$PID"
	stop_server

	log "$NAME: seeded tree"
	rm -rf "$SEEDED/berth" # berth's index: every round measures building it
	start_server "$NAME" "$SEEDED" first-start -catalog
	lg catalog -url "$URL" -n "$LIST_N" -count "$LIST_COUNT" -page "$PAGE" -expect "$EXPECT_CATALOG"
	lg tags -url "$URL" -repo seed/tags -n 0 -count "$LIST_COUNT" -page "$PAGE" -expect "$SEED_TAGS"
	lg rss -label rss-seeded -pid "$PID"
	stop_server
	PORT="$("$LG" port)"
	write_config "$NAME" "$SEEDED" "$PORT"
	lg startup -url "http://127.0.0.1:$PORT" -bin "$(server_bin "$NAME")" -runs "$STARTS" -log "$WORK/$NAME.log" -- serve "$WORK/$NAME.yml"

	# The push root stays until the end of the run (about 2 GiB a round):
	# deleting it here would make the next registry's pushes pay for it.
	# On ext4 without a journal, inode allocation skips (and checks again,
	# every time) each inode freed in the last one to five minutes, so
	# thousands of fresh deletes slow the small-image pushes that follow.
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for name in berth distribution; do
		if [[ -z $ONLY || $ONLY == "$name" ]]; then
			log "round $ROUND of $ROUNDS: $name"
			run_registry "$name"
		fi
	done
done

# --- report -----------------------------------------------------------------

LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -z $OUT ]]; then
	if ((QUICK)); then OUT="$WORK/results"; else OUT="$REPO_ROOT/bench/results"; fi
fi
mkdir -p "$OUT"
cp "$RESULTS" "$OUT/latest.jsonl"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
commit="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$REPO_ROOT" diff --quiet HEAD -- cmd internal 2>/dev/null || commit="$commit+dirty"
log "results ($MODE run; load average before: $LOAD_BEFORE, after: $LOAD_AFTER)"
"$LG" report -in "$RESULTS" -json "$OUT/latest.json" -svg "$OUT/ratios.svg" -md "$OUT/latest.md" \
	-meta "date=$(date -u +%Y-%m-%dT%H:%MZ)" \
	-meta "mode=$MODE, $ROUNDS round(s)" \
	-meta "machine=$(nproc) × $cpu, $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r)" \
	-meta "go=$(go env GOVERSION)" \
	-meta "distribution=$(docker-registry --version 2>/dev/null | head -1)" \
	-meta "berth=$commit" \
	-meta "loadavg_before=$LOAD_BEFORE" \
	-meta "loadavg_after=$LOAD_AFTER"
echo "written: $OUT/latest.json $OUT/latest.md $OUT/ratios.svg" >&2
if [[ $OUT == "$WORK"/* ]] && ((!KEEP)); then
	echo "(inside the work directory, which is removed now: use --keep or --out DIR to keep them)" >&2
fi
exit
}
