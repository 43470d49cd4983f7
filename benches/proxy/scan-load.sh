#!/usr/bin/env bash
# Scan-budget load test for deliberate (issue #10, "a per-request scan budget"): requests whose
# texts NFKC expands many times (U+FDFA and other compatibility characters) are sent
# concurrently with small requests, on loopback, and the small requests' latency is measured.
# See benches/README.md, "Scan budget".
#
# Starts, on 127.0.0.1 and free ports, the mock upstream and `deliberate serve` (default
# policy, default limits: max_scan_bytes 16 MiB), then runs `scan-load` (benches/proxy/harness)
# for DURATION seconds in each of three runs:
#   baseline   probes only
#   in-budget  HEAVY workers, each message IN_CHARS characters (just under the budget once
#              normalized: scanned, on the blocking pool), probes alongside
#   over       HEAVY workers, each message OVER_CHARS characters (3.9 MB; over the budget:
#              413 scan_budget_exceeded), probes alongside
# and prints the figures of all three. Bounded in workers (HEAVY) and time (DURATION).
#
# Knobs (environment): HEAVY (4), DURATION (20), PROBE_MS (100), IN_CHARS (750000),
# OVER_CHARS (1300000), SKIP_BUILD (unset; 1: use the binaries already in target/release),
# OUT (default target/bench-scan-load/DATE).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

HEAVY="${HEAVY:-4}"
DURATION="${DURATION:-20}"
PROBE_MS="${PROBE_MS:-100}"
IN_CHARS="${IN_CHARS:-750000}"
OVER_CHARS="${OVER_CHARS:-1300000}"
OUT="${OUT:-$root/target/bench-scan-load/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

log() { printf 'scan-load.sh: %s\n' "$*" >&2; }

pids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    while :; do
        REPLY=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$REPLY") 2>/dev/null || return 0
    done
}

wait_port() {
    local deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on port $1"
    return 1
}

if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building (release)"
    cargo build --release -q -p deliberate-bench-harness --bin mock-upstream --bin scan-load
    cargo build --release -q --bin deliberate
fi

free_port; mock_port=$REPLY
target/release/mock-upstream --listen "127.0.0.1:$mock_port" >"$OUT/mock.log" 2>&1 &
pids+=($!)
wait_port "$mock_port"

free_port; gw_port=$REPLY
cat >"$OUT/config.yaml" <<YAML
listen: 127.0.0.1:$gw_port
upstream: {url: "http://127.0.0.1:$mock_port/v1"}
policies: [$root/policies/default.yaml]
reload: false
YAML
target/release/deliberate serve --config "$OUT/config.yaml" >"$OUT/deliberate.log" 2>&1 &
pids+=($!)
wait_port "$gw_port"

run() {
    local name=$1 heavy=$2 chars=$3
    log "$name: $heavy heavy workers x $chars characters, ${DURATION}s"
    target/release/scan-load --addr "127.0.0.1:$gw_port" --heavy "$heavy" --heavy-chars "$chars" \
        --duration-secs "$DURATION" --probe-ms "$PROBE_MS" >"$OUT/$name.txt" 2>"$OUT/$name.log"
    cat "$OUT/$name.log" >&2
}
run baseline 0 0
run in-budget "$HEAVY" "$IN_CHARS"
run over "$HEAVY" "$OVER_CHARS"

{
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    printf '| metric | baseline | in budget (%s x %s chars) | over budget (%s x %s chars) |\n|---|---|---|---|\n' \
        "$HEAVY" "$IN_CHARS" "$HEAVY" "$OVER_CHARS"
    join -a1 -a2 -e - -o 0,1.2,2.2 <(sort "$OUT/baseline.txt") <(sort "$OUT/in-budget.txt") \
        | join -a1 -a2 -e - -o 0,1.2,1.3,2.2 - <(sort "$OUT/over.txt") \
        | awk '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}'
} | tee "$OUT/report.md"
