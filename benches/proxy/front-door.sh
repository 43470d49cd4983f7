#!/usr/bin/env bash
# Front-door load test for deliberate (issue "Every API, every channel, fail closed"): many idle
# and slow-body sockets against the gateway on loopback while a normal request's latency is
# measured. See benches/README.md, "Front door".
#
# Starts, on 127.0.0.1 and free ports, the mock upstream and `deliberate serve` with its open
# files limited to FD_LIMIT (as a small container or a default `ulimit -n` would), then runs
# `front-door` (benches/proxy/harness) twice for DURATION seconds each:
#   baseline  probes only (no attackers)
#   attack    IDLE idle sockets + SLOW sockets trickling a body 1 byte per TRICKLE_MS, reopened
#             whenever the gateway closes them (at most MAX_OPENS), probes alongside
# and prints the figures of both. Bounded in count (IDLE, SLOW, MAX_OPENS) and time (DURATION).
#
# Knobs (environment): IDLE (600), SLOW (200), TRICKLE_MS (1000), DURATION (20), PROBE_MS (100),
# FD_LIMIT (512), CLIENT_IDLE (5s), REQUEST_BODY (5s), HEADER_READ (5s), MAX_CONNECTIONS (1024,
# lowered by the gateway to fit FD_LIMIT), OUT (default target/bench-front-door/DATE).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

IDLE="${IDLE:-600}"
SLOW="${SLOW:-200}"
TRICKLE_MS="${TRICKLE_MS:-1000}"
DURATION="${DURATION:-20}"
PROBE_MS="${PROBE_MS:-100}"
FD_LIMIT="${FD_LIMIT:-512}"
CLIENT_IDLE="${CLIENT_IDLE:-5s}"
REQUEST_BODY="${REQUEST_BODY:-5s}"
HEADER_READ="${HEADER_READ:-5s}"
MAX_CONNECTIONS="${MAX_CONNECTIONS:-1024}"
MAX_OPENS="${MAX_OPENS:-20000}"
OUT="${OUT:-$root/target/bench-front-door/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

log() { printf 'front-door.sh: %s\n' "$*" >&2; }

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

log "building (release)"
cargo build --release -q -p deliberate-bench-harness --bin mock-upstream --bin front-door
cargo build --release -q --bin deliberate

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
limits: {max_connections: $MAX_CONNECTIONS}
timeouts: {client_idle: $CLIENT_IDLE, request_body: $REQUEST_BODY, header_read: $HEADER_READ}
YAML
(ulimit -n "$FD_LIMIT" && exec target/release/deliberate serve --config "$OUT/config.yaml") \
    >"$OUT/deliberate.log" 2>&1 &
pids+=($!)
wait_port "$gw_port"

run() {
    local name=$1 idle=$2 slow=$3
    log "$name: $idle idle + $slow slow sockets, ${DURATION}s"
    target/release/front-door --addr "127.0.0.1:$gw_port" --body "$here/requests/chat.json" \
        --idle "$idle" --slow "$slow" --trickle-ms "$TRICKLE_MS" --duration-secs "$DURATION" \
        --probe-ms "$PROBE_MS" --max-opens "$MAX_OPENS" >"$OUT/$name.txt" 2>"$OUT/$name.log"
    cat "$OUT/$name.log" >&2
}
run baseline 0 0
run attack "$IDLE" "$SLOW"
curl -s "http://127.0.0.1:$gw_port/metrics" >"$OUT/metrics.txt" 2>/dev/null || true

{
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "gateway: open files $FD_LIMIT, $(sed 's/\x1b\[[0-9;]*m//g' "$OUT/deliberate.log" | grep -m1 -o 'max_connections=[0-9]*' || true)," \
         "client_idle $CLIENT_IDLE, request_body $REQUEST_BODY, header_read $HEADER_READ"
    printf '| metric | baseline | attack (%s idle + %s slow) |\n|---|---|---|\n' "$IDLE" "$SLOW"
    join -j1 <(sort "$OUT/baseline.txt") <(sort "$OUT/attack.txt") | awk '{printf "| %s | %s | %s |\n", $1, $2, $3}'
    grep -E '^deliberate_(connections_|open_connections|accept_errors)' "$OUT/metrics.txt" || true
} | tee "$OUT/report.md"
