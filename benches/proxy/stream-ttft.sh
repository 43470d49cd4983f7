#!/usr/bin/env bash
# Time to first token and inter-chunk gaps of benign streams: the mock upstream directly, the
# bare hop and deliberate (policies/default.yaml), interleaved over ROUNDS rounds. A quick
# check of the "added TTFT <= the bare hop's + one upstream chunk" target without the whole of
# run.sh; benches/README.md, "Streams through the mock after the live-match frontier".
#
#   cargo build --release --workspace && benches/proxy/stream-ttft.sh
#
# Knobs: ROUNDS (2), STREAMS (60), CONCURRENCY (10), CHUNKS (100), CHUNK_BYTES (16), GAP_MS (10),
# POLICY (policies/default.yaml). Loopback only; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=target/release
for b in mock-upstream bare-hop deliberate sse-client; do
    [[ -x $R/$b ]] || { echo "missing $R/$b: cargo build --release --workspace" >&2; exit 1; }
done
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mp=$(port) bp=$(port) dp=$(port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
$R/mock-upstream --listen 127.0.0.1:$mp --chunks "${CHUNKS:-100}" --chunk-bytes "${CHUNK_BYTES:-16}" \
    --gap-ms "${GAP_MS:-10}" >/dev/null 2>&1 &
pids+=($!)
$R/bare-hop --listen 127.0.0.1:$bp --upstream http://127.0.0.1:$mp >/dev/null 2>&1 &
pids+=($!)
$R/deliberate serve --listen 127.0.0.1:$dp --upstream http://127.0.0.1:$mp \
    --policy "${POLICY:-policies/default.yaml}" >/dev/null 2>&1 &
pids+=($!)
for p in $mp $bp $dp; do
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.2; done
done
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "${ROUNDS:-2}"); do
    for t in "$mp direct" "$bp bare" "$dp deliberate"; do
        set -- $t
        printf '%s round %s: ' "$2" "$round"
        $R/sse-client streams --url "http://127.0.0.1:$1/v1/chat/completions" \
            --body benches/proxy/requests/chat.json --streams "${STREAMS:-60}" \
            --concurrency "${CONCURRENCY:-10}" 2>/dev/null | tr '\n' ' '
        echo
    done
done
