#!/usr/bin/env bash
# The judge through a real model: Qwen2.5-Coder-1.5B-Instruct (the GGUF `scripts/qwen-ab.sh`
# assembles from PyPI) as the judge of the default policy's spec, on a 100-text sample of the
# shared sets, rules alone vs judge alone vs the cascade (`deliberate eval --judge`), and the
# policy's labeled judge examples (`deliberate test --judge`).
#
# The sample (target/judge-sample.jsonl), evenly spaced so the script gives the same texts on
# every machine: 24 XSTest prompts with an even id (the half `qwen-ab.sh` holds out; input
# stage), 8 JailbreakBench PAIR attack prompts (unsafe, input) and 12 PAIR responses to
# GPT-4 (output stage; unsafe when the artifact says `jailbroken`).
#
# JUDGE_SAMPLE=escalations measures the cascade where it decides something: the texts of the
# shared sets on which an escalating rule of the default policy fires (every one of them is
# labeled unsafe: 2 XSTest/JailbreakBench prompts and the 100 JBC "AIM" prompts, of which
# JUDGE_JBC (default 20) evenly spaced are taken) and the 12 benign look-alikes of policies/eval/escalation-lookalikes.jsonl
# (written before any judge run: questions about jailbreak personas, a user changing their own
# instructions, phone settings, history and law around explosives and firearms), on which the
# rules alone, acting as the escalations' fallback, block all 12.
#
# Needs a server on JUDGE_PORT (start one with `AB_KEEP_SERVER=1 scripts/qwen-ab.sh`, or any
# OpenAI-compatible endpoint with JUDGE_URL; the judge prompt needs `--n_ctx 8192`). Slow on
# 2 CPUs: the judge prompt is the whole written policy (~3,200 tokens, ~170 s to read here), so
# the server must reuse it: llama-cpp-python reuses the previous prompt's prefix (texts of one
# stage in a row share it; each escalation, judged with fewer sections, costs two full reads).
# Its `--cache true` would keep more prefixes but was OOM-killed here after 7 judge calls (23 GB).
# Not part of CI.
#
# Environment: JUDGE_URL=http://127.0.0.1:$JUDGE_PORT/v1  JUDGE_PORT=8766  JUDGE_MODEL=qwen
#   JUDGE_TIMEOUT=180s  JUDGE_FORMAT=markdown  JUDGE_BIN=  (a deliberate binary to use instead
#   of building target/release/deliberate)  JUDGE_RECORD=0 (1: also write
#   policies/tests/default.verdicts.json from the live verdicts; `deliberate test` then fails
#   on every example whose verdict disagrees with its label)
set -euo pipefail
cd "$(dirname "$0")/.."

JUDGE_PORT=${JUDGE_PORT:-8766}
JUDGE_URL=${JUDGE_URL:-http://127.0.0.1:$JUDGE_PORT/v1}
JUDGE_MODEL=${JUDGE_MODEL:-qwen}
JUDGE_TIMEOUT=${JUDGE_TIMEOUT:-180s}
JUDGE_FORMAT=${JUDGE_FORMAT:-markdown}
JUDGE_RECORD=${JUDGE_RECORD:-0}
JUDGE_SAMPLE=${JUDGE_SAMPLE:-shared}
JUDGE_JBC=${JUDGE_JBC:-20}
JUDGE_BIN=${JUDGE_BIN:-}
DATA=../shared/data

log() { printf '[qwen-judge] %s\n' "$*" >&2; }

curl -sf "${JUDGE_URL%/v1}/v1/models" >/dev/null || {
  log "no server answers on $JUDGE_URL"; exit 1
}
mkdir -p target
if [ -z "$JUDGE_BIN" ]; then
  nice -n 19 cargo build --release --quiet
  JUDGE_BIN=./target/release/deliberate
fi
if [ "$JUDGE_SAMPLE" = escalations ]; then
python3 - "$DATA" target/judge-sample.jsonl "$JUDGE_JBC" "$JUDGE_BIN" <<'PY'
import csv, json, subprocess, sys
data, dst, n_jbc, bin_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def spaced(items, n):
    return [items[i * len(items) // n] for i in range(n)] if len(items) > n else items
def escalates(text):
    out = subprocess.run([bin_, "scan", "--policy",
                          "policies/default.yaml", "--format", "json", "-"],
                         input=text.encode(), capture_output=True, check=True).stdout
    return any(f["rule"] in ESCALATING for f in json.loads(out)["findings"])
ESCALATING = {"jailbreak.override-instructions", "jailbreak.persona",
              "system-prompt.extraction", "violence.explosives", "violence.firearms"}
rows = []
with open(f"{data}/xstest/xstest_prompts.csv", newline="") as src:
    for r in csv.DictReader(src):
        rows.append(("xstest-" + r["id"], r["prompt"], r["label"], "xstest/" + r["type"]))
pair = json.load(open(f"{data}/jailbreakbench/PAIR_gpt-4-0125-preview.json"))["jailbreaks"]
for j in pair:
    rows.append((f"jbb-goal-{j['index']}", j["goal"], "unsafe", "jbb/goal"))
    if j.get("prompt"):
        rows.append((f"pair-prompt-{j['index']}", j["prompt"], "unsafe", "jbb-pair/prompt"))
jbc = [j for j in json.load(open(f"{data}/jailbreakbench/JBC_gpt-3.5-turbo-1106.json"))["jailbreaks"]
       if j.get("prompt") and escalates(j["prompt"])]
firing = [r for r in rows if escalates(r[1])]
with open(dst, "w") as f:
    def put(id_, text, label, category):
        f.write(json.dumps({"id": id_, "text": text, "label": label,
                            "category": category, "stage": "input"}) + "\n")
    for r in firing:
        put(*r)
    for j in spaced(jbc, n_jbc):
        put(f"jbc-prompt-{j['index']}", j["prompt"], "unsafe", "jbb-jbc/prompt")
    for line in open("policies/eval/escalation-lookalikes.jsonl"):
        r = json.loads(line)
        put(r["id"], r["text"], r["label"], r["category"])
PY
else
python3 - "$DATA" target/judge-sample.jsonl <<'PY'
import csv, json, sys
data, dst = sys.argv[1], sys.argv[2]
def spaced(items, n):
    return [items[i * len(items) // n] for i in range(n)]
with open(dst, "w") as f:
    def put(id_, text, label, category, stage):
        f.write(json.dumps({"id": id_, "text": text, "label": label,
                            "category": category, "stage": stage}) + "\n")
    with open(f"{data}/xstest/xstest_prompts.csv", newline="") as src:
        rows = [r for r in csv.DictReader(src) if int(r["id"]) % 2 == 0]
    for r in spaced(rows, 24):
        put("xstest-" + r["id"], r["prompt"], r["label"], "xstest/" + r["type"], "input")
    with open(f"{data}/jailbreakbench/PAIR_gpt-4-0125-preview.json") as src:
        jb = json.load(src)["jailbreaks"]
    for j in spaced([j for j in jb if j.get("prompt")], 8):
        put(f"pair-prompt-{j['index']}", j["prompt"], "unsafe", "jbb-pair/prompt", "input")
    for j in spaced([j for j in jb if j.get("response")], 12):
        put(f"pair-response-{j['index']}", j["response"],
            "unsafe" if j["jailbroken"] else "safe", "jbb-pair/response", "output")
PY
fi
log "sample ($JUDGE_SAMPLE): $(wc -l <target/judge-sample.jsonl) texts in target/judge-sample.jsonl"

start=$(date +%s)
nice -n 5 "$JUDGE_BIN" eval --policy policies/default.yaml \
  --dataset target/judge-sample.jsonl --judge "$JUDGE_URL" --judge-model "$JUDGE_MODEL" \
  --judge-timeout "$JUDGE_TIMEOUT" --judge-concurrency 1 --format "$JUDGE_FORMAT"
log "eval --judge wall clock: $(( $(date +%s) - start )) s"

if [ "$JUDGE_SAMPLE" = escalations ]; then exit 0; fi
args=(test policies/default.yaml --judge "$JUDGE_URL" --judge-model "$JUDGE_MODEL"
      --judge-timeout "$JUDGE_TIMEOUT")
if [ "$JUDGE_RECORD" = 1 ]; then args+=(--record); fi
start=$(date +%s)
nice -n 5 "$JUDGE_BIN" "${args[@]}" || log "some judge examples disagree with their labels (above)"
log "test --judge wall clock: $(( $(date +%s) - start )) s"
