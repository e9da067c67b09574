#!/usr/bin/env bash
# bench/profile.sh [OUTDIR] [SECONDS]
#
# CPU (and allocation) profiles of berth under real load: `berth serve` runs
# with its debug listener (http.debug.addr: net/http/pprof), and
# bench/loadgen drives it the way bench/compare.sh does. For each workload the
# profile covers SECONDS (default 10) of load:
#   head    manifest HEAD by tag, 64 connections
#   get     manifest GET by tag, 64 connections
#   push    4 x 64 MiB image pushes (POST, streamed PATCH, PUT), repeated
#   small   small image pushes, 8 workers, repeated
# Writes OUTDIR/<workload>.cpu.pprof and .allocs.pprof (default
# /tmp/berth-profiles) and prints the top of each. Look further with
#   go tool pprof -http : OUTDIR/head.cpu.pprof
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
OUT="${1:-/tmp/berth-profiles}"
SECS="${2:-10}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/berth-profile.XXXXXX)"
PID=""
cleanup() {
	[[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/berth" ./cmd/berth
go build -o "$WORK/loadgen" ./bench/loadgen
LG="$WORK/loadgen"
PORT="$("$LG" port)"
DPORT="$("$LG" port)"
URL="http://127.0.0.1:$PORT"
DEBUG="http://127.0.0.1:$DPORT"

cat >"$WORK/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/root
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
  debug:
    addr: 127.0.0.1:$DPORT
EOF
"$WORK/berth" serve "$WORK/config.yml" 2>"$OUT/berth.log" &
PID=$!
"$LG" ready -url "$URL" -pid "$PID" >/dev/null
"$LG" push-large -url "$URL" -layers 4 -size 64MiB -repeat 1 >/dev/null

# profile NAME COMMAND...: collect SECONDS of CPU and allocation profile
# while COMMAND runs again and again (until both profiles are in).
profile() {
	local name=$1 i=0 cpu allocs
	shift
	curl -sf -o "$OUT/$name.cpu.pprof" "$DEBUG/debug/pprof/profile?seconds=$SECS" &
	cpu=$!
	curl -sf -o "$OUT/$name.allocs.pprof" "$DEBUG/debug/pprof/allocs?seconds=$SECS" &
	allocs=$!
	while kill -0 "$cpu" 2>/dev/null || kill -0 "$allocs" 2>/dev/null; do
		if [[ $2 == push-* ]]; then
			"$@" -seed $((100 + i)) >/dev/null # new content every time
		else
			"$@" >/dev/null
		fi
		i=$((i + 1))
	done
	wait "$cpu" "$allocs"
}

profile head "$LG" head -url "$URL" -ref bench/large:r0 -conns 64 -duration 3s -warmup 0s
profile get "$LG" get -url "$URL" -ref bench/large:r0 -conns 64 -duration 3s -warmup 0s
profile push "$LG" push-large -url "$URL" -repo bench/prof -layers 4 -size 64MiB -repeat 1
profile small "$LG" push-small -url "$URL" -images 100 -workers 8

for name in head get push small; do
	echo "===== $name: CPU, top by cumulative (of the registry process)"
	go tool pprof -top -cum -nodecount 30 "$OUT/$name.cpu.pprof" 2>/dev/null | sed -n '1,40p'
	echo "===== $name: allocations, top by bytes"
	go tool pprof -sample_index=alloc_space -top -nodecount 12 "$OUT/$name.allocs.pprof" 2>/dev/null | sed -n '5,20p'
done
echo "profiles in $OUT" >&2
