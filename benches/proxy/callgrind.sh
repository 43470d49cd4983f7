#!/usr/bin/env bash
# Instruction counts of one proxy's work per request, with callgrind (valgrind), as reported in
# benches/README.md ("What was optimised").
#
#   benches/proxy/callgrind.sh [deliberate|bare] [plain|stream]
#
# Starts mock-upstream and the proxy under callgrind (one tokio worker), sends WARM requests
# (uninstrumented), then N requests with instrumentation on, on one keep-alive connection, each
# with a unique user message (VARY=0: the same body every time), and prints the instructions
# per request (per stream for `stream`: 100 content chunks of 16 bytes, no gaps).
# Knobs: WARM (400 plain / 30 stream), N (200 plain / 20 stream), VARY (1), OUT (callgrind file),
# DELIBERATE_BIN (target/release/deliberate), POLICY (policies/default.yaml), DELIBERATE_ARGS
# (extra `serve` flags, e.g. `--config shadow.yaml`; `--otlp-endpoint MOCK` exports the traces to
# the mock's /v1/traces sink: MOCK is replaced by the mock's base URL).
# Needs valgrind (apt-get install valgrind), python3, curl, and the release binaries
# (cargo build --release --workspace).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:-deliberate}
mode=${2:-plain}
if [[ $mode == stream ]]; then warm=${WARM:-30} n=${N:-20}; else warm=${WARM:-400} n=${N:-200}; fi
out=${OUT:-target/callgrind.$target.$mode.out}
bin=${DELIBERATE_BIN:-target/release/deliberate}
policy=${POLICY:-policies/default.yaml}
for tool in valgrind callgrind_control python3 curl; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mock_port=$(port)
proxy_port=$(port)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
target/release/mock-upstream --listen "127.0.0.1:$mock_port" --chunks 100 --chunk-bytes 16 \
    --gap-ms 0 >/dev/null 2>&1 &
pids+=($!)
case $target in
    deliberate)
        # shellcheck disable=SC2206 # DELIBERATE_ARGS is a list of extra flags
        extra=(${DELIBERATE_ARGS:-})
        extra=("${extra[@]/#MOCK/http://127.0.0.1:$mock_port}")
        cmd=("$bin" serve --listen "127.0.0.1:$proxy_port" \
            --upstream "http://127.0.0.1:$mock_port" --policy "$policy" "${extra[@]}") ;;
    bare) cmd=(target/release/bare-hop --listen "127.0.0.1:$proxy_port" \
        --upstream "http://127.0.0.1:$mock_port") ;;
    *) echo "target: deliberate or bare" >&2; exit 1 ;;
esac
TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "${cmd[@]}" >"$out.log" 2>&1 &
vpid=$!
pids+=($vpid)
for _ in $(seq 120); do
    curl -s -o /dev/null "http://127.0.0.1:$proxy_port/" && break
    sleep 0.5
done
python3 - "$proxy_port" "$mode" "$warm" "$n" "${VARY:-1}" <<'PY'
import http.client, json, subprocess, sys
port, mode, warm, n, vary = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
body = json.load(open("benches/proxy/requests/chat.json"))
template = body["messages"][1]["content"]
if mode == "stream":
    body["stream"] = True
    body["model"] = "mock:chunks=100;chunk_bytes=16;gap_ms=0"
conn = http.client.HTTPConnection("127.0.0.1", port)
count = 0
def one():
    global count
    count += 1
    body["messages"][1]["content"] = template.replace("{{n}}", str(count) if vary else "1")
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
    r = conn.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data[:200])
for _ in range(warm):
    one()
subprocess.run(["callgrind_control", "-i", "on"], check=True, capture_output=True)
for _ in range(n):
    one()
subprocess.run(["callgrind_control", "-i", "off"], check=True, capture_output=True)
PY
kill "$vpid"
wait "$vpid" 2>/dev/null || true
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' | head -1)
echo "$target $mode: $total instructions over $n; $((total / n)) per $([[ $mode == stream ]] && echo stream || echo request) ($out)"
