#!/usr/bin/env bash
# Streaming UX through a real model server: deliberate serve (default policy, injection off)
# against the same server direct. Needs an OpenAI-compatible model server already running —
# e.g. llama-cpp-python's, as scripts/qwen-ab.sh or scripts/smollm2-ab.sh start it:
#   UX_UPSTREAM=http://127.0.0.1:8766/v1 UX_MODEL=qwen benches/stream-ux/run.sh
# Environment: UX_UPSTREAM (required), UX_MODEL (default: qwen), UX_N (prompts, default 12),
# UX_POLICY (default policies/default.yaml), UX_PYTHON (a python with the `openai` SDK;
# default target/ci-venv/bin/python, the venv .ci/run makes). Not part of CI.
# UX_DELTAS=DIR: keep each answer's content deltas there (see stream_ux.py) for examples/replay_stream.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${UX_UPSTREAM:?set UX_UPSTREAM to the /v1 base URL of the model server}"
UX_MODEL=${UX_MODEL:-qwen}
UX_N=${UX_N:-12}
UX_POLICY=${UX_POLICY:-policies/default.yaml}
UX_PYTHON=${UX_PYTHON:-target/ci-venv/bin/python}

cargo build --release --quiet --bin deliberate
dir=$(mktemp -d)
trap 'kill "$gw" 2>/dev/null || true; rm -rf "$dir"' EXIT
cat >"$dir/config.yaml" <<CFG
listen: 127.0.0.1:0
upstream: {url: $UX_UPSTREAM}
policies: [$PWD/$UX_POLICY]
reload: false
injection: {mode: off}
CFG
target/release/deliberate serve --config "$dir/config.yaml" 2>"$dir/serve.log" &
gw=$!
for _ in $(seq 1 100); do
  addr=$(grep -oE 'listening on [^ ]+' "$dir/serve.log" | head -1 | awk '{print $3}') || true
  [ -n "${addr:-}" ] && break
  sleep 0.1
done
[ -n "${addr:-}" ] || { cat "$dir/serve.log" >&2; exit 1; }
echo "gateway on $addr, upstream $UX_UPSTREAM, model $UX_MODEL, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" >&2
"$UX_PYTHON" benches/stream-ux/stream_ux.py "$UX_UPSTREAM" "$addr/v1" "$UX_MODEL" "$UX_N"
