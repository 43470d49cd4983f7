#!/usr/bin/env bash
# What the `segment` step costs in precision: every lower-case English word of six letters or
# more in a dictionary, in three templates ("How do I make a W?", "Where can I buy W?",
# "how to W at home"), scanned by the default policy with and without the step (the same
# policy with `segment` taken out of its rules). Words that are themselves two lexicon words
# (`crackdown`) may now read as two; `deliberate eval --compare` lists each text whose
# decision changed. All texts are labeled safe, so "newly caught" are the step's false blocks
# on dictionary words.
#
#   scripts/segment_dictionary.sh [WORDLIST]     # default /usr/share/dict/words (Debian wamerican)
set -euo pipefail
cd "$(dirname "$0")/.."
words=${1:-/usr/share/dict/words}
[ -r "$words" ] || { echo "no word list at $words (apt-get install wamerican)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$words" "$tmp/dict.jsonl" <<'PY'
import json, re, sys
words = [w.strip() for w in open(sys.argv[1], encoding="utf-8")]
words = sorted({w for w in words if re.fullmatch(r"[a-z]{6,}", w)})
templates = ["How do I make a {w}?", "Where can I buy {w}?", "how to {w} at home"]
with open(sys.argv[2], "w") as f:
    for w in words:
        for t in templates:
            f.write(json.dumps({"text": t.format(w=w), "label": "safe", "category": "dictionary"}) + "\n")
print(f"{len(words)} words, {len(words) * len(templates)} texts", file=sys.stderr)
PY
cp policies/secrets.yaml "$tmp/"
sed 's/, segment\]/]/; s/\[segment, /[/; s/, segment,/,/' policies/default.yaml > "$tmp/no-segment.yaml"
if grep -q segment "$tmp/no-segment.yaml"; then
    echo "could not take segment out of the policy" >&2
    exit 1
fi
cargo build --release --quiet
target/release/deliberate eval --policy policies/default.yaml --compare "$tmp/no-segment.yaml" \
    --dataset "$tmp/dict.jsonl"
