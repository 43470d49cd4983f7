#!/usr/bin/env bash
# Coverage-guided runs of every target with libFuzzer (needs a nightly toolchain and
# `cargo install cargo-fuzz`), one after another, each SECONDS long (default 600), at low
# priority; then each corpus is minimized in place (cargo fuzz cmin, on edges alone:
# -use_counters=0 keeps every covered edge in far fewer inputs than hit-count features). Logs and crash inputs go
# to target/fuzz-logs/ and target/fuzz-artifacts/. Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/libfuzzer/Cargo.toml | grep -v deliberate-libfuzzer)
fi
mkdir -p target/fuzz-logs target/fuzz-artifacts
for t in "${targets[@]}"; do
  case "$t" in
    policy_loader) max_len=8192 ;;
    streamed_buffered|stream_*) max_len=2048 ;;
    *) max_len=4096 ;;
  esac
  mkdir -p "target/fuzz-artifacts/$t"
  echo "== $t ($secs s)"
  nice -n 19 cargo +nightly fuzz run --fuzz-dir fuzz/libfuzzer -O "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="target/fuzz-artifacts/$t/" \
    >"target/fuzz-logs/$t.log" 2>&1 || echo "$t: FAILED (see target/fuzz-logs/$t.log)"
  grep -E "^#[0-9]+.*(DONE|pulse)|stat::" "target/fuzz-logs/$t.log" | tail -8 || true
  nice -n 19 cargo +nightly fuzz cmin --fuzz-dir fuzz/libfuzzer -O "$t" "fuzz/corpus/$t" -- \
    -max_len="$max_len" -timeout=10 -use_counters=0 >"target/fuzz-logs/$t.cmin.log" 2>&1 || echo "$t: cmin failed"
done
