#!/usr/bin/env bash
# Proxy load comparison for deliberate (issue "Performance"); see benches/README.md, "Proxy".
#
# Starts, all on 127.0.0.1 and on free ports:
#   direct      the mock upstream itself (mock-upstream), the baseline for "added" latency
#   bare        a bare hyper pass-through hop (bare-hop), the floor for a Rust proxy
#   nginx       nginx proxy_pass (nginx.conf.tmpl), from a temp prefix
#   deliberate  target/release/deliberate serve --policy policies/default.yaml
#   litellm     LiteLLM proxy with its content-filter guardrail, if setup-litellm.sh was run
# and, when named in TARGETS, variants of deliberate (same flags, plus a generated --config):
#   deliberate-shadow-0.1, deliberate-shadow-1   the same policy again as a shadow candidate,
#                                                sampled at 0.1 or 1 (any deliberate-shadow-R)
#   deliberate-otel     traces exported over OTLP/HTTP to the mock (its /v1/traces sink),
#                       every request sampled
# and measures each, interleaved, order reversed every other round:
#   (a) unloaded latency, 1 connection (wrk)             (c) saturated throughput (wrk)
#   (b) latency at a fixed rate = RATE_FRACTION of the bare hop's saturated throughput
#       (sse-client rate: open loop, no coordinated omission)
#   (d) streams: time to first content token, inter-chunk gaps (sse-client streams)
#   (e) RSS with HOLD_STREAMS open streams, on a freshly started proxy (sse-client hold)
# then prints medians and ratios against the bare hop of the same run (bench-report), and,
# with variants, against plain deliberate too.
#
# Installs nothing. Needs: cargo, wrk, nginx (apt-get install -y nginx wrk); optionally
# benches/proxy/setup-litellm.sh for LiteLLM. Everything it starts is stopped on exit.
#
# Knobs (environment): TARGETS, ROUNDS, UNLOADED_SECS, SAT_SECS, SAT_CONNECTIONS, RATE_SECS,
# RATE_FRACTION, RATE_CONNECTIONS, STREAMS, STREAM_CONCURRENCY, HOLD_STREAMS, HOLD_CHUNK_BYTES,
# HOLD_TIMEOUT, HOLD_ROUNDS, MOCK_CHUNKS, MOCK_CHUNK_BYTES, MOCK_GAP_MS, NGINX_WORKERS,
# LITELLM_WORKERS, DELIBERATE_ARGS, POLICY, OUT (results directory; default
# target/bench-proxy/DATE).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# === knobs ===
TARGETS="${TARGETS:-direct bare nginx deliberate litellm}"
ROUNDS="${ROUNDS:-3}"
UNLOADED_SECS="${UNLOADED_SECS:-3}"
SAT_SECS="${SAT_SECS:-5}"
SAT_CONNECTIONS="${SAT_CONNECTIONS:-64}"
RATE_SECS="${RATE_SECS:-5}"
RATE_FRACTION="${RATE_FRACTION:-0.5}"
RATE_CONNECTIONS="${RATE_CONNECTIONS:-32}"
STREAMS="${STREAMS:-200}"
STREAM_CONCURRENCY="${STREAM_CONCURRENCY:-20}"
HOLD_STREAMS="${HOLD_STREAMS:-1000}"
HOLD_CHUNK_BYTES="${HOLD_CHUNK_BYTES:-1024}"
HOLD_TIMEOUT="${HOLD_TIMEOUT:-45}"
# RSS per stream varied by under 1 % between rounds when measured, and each round restarts
# every proxy (LiteLLM takes 10-20 s): two rounds keep the run under 10 minutes.
HOLD_ROUNDS="${HOLD_ROUNDS:-$((ROUNDS < 2 ? ROUNDS : 2))}"
MOCK_CHUNKS="${MOCK_CHUNKS:-20}"
MOCK_CHUNK_BYTES="${MOCK_CHUNK_BYTES:-16}"
MOCK_GAP_MS="${MOCK_GAP_MS:-10}"
NGINX_WORKERS="${NGINX_WORKERS:-auto}"
LITELLM_WORKERS="${LITELLM_WORKERS:-1}"
POLICY="${POLICY:-policies/default.yaml}"
DELIBERATE_ARGS="${DELIBERATE_ARGS:-}"
OUT="${OUT:-$root/target/bench-proxy/$(date +%Y%m%d-%H%M%S)}"

body="$here/requests/chat.json"
# Held streams send one large content chunk, then pause far longer than the test lasts. The
# chunk must outsize any gateway's holdback, or no content would reach the client while the
# stream is held (LiteLLM's content filter holds back 50 characters).
hold_model="mock:chunks=2;chunk_bytes=${HOLD_CHUNK_BYTES};gap_ms=600000"
api_key=sk-bench
bin="$root/target/release"
results="$OUT/results.tsv"
logs="$OUT/logs"
started_at=$SECONDS

log() { printf '[%4ds] %s\n' "$((SECONDS - started_at))" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# === prerequisites ===
missing=()
command -v cargo >/dev/null || missing+=("cargo (https://rustup.rs)")
command -v wrk >/dev/null || missing+=("wrk (apt-get install -y wrk)")
nginx_bin="$(command -v nginx || true)"
[[ -z "$nginx_bin" && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
if [[ " $TARGETS " == *" nginx "* && -z "$nginx_bin" ]]; then
    missing+=("nginx (apt-get install -y nginx), or leave it out: TARGETS='direct bare deliberate'")
fi
if ((${#missing[@]})); then
    printf 'missing prerequisites:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    printf 'on Debian/Ubuntu: apt-get update && apt-get install -y nginx wrk\n' >&2
    exit 1
fi

# 1,000 held streams take 2,000+ sockets in a proxy and 1,000 in the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
(($(ulimit -n) >= 4096)) || log "warning: only $(ulimit -n) file descriptors; the RSS test may fail"

mkdir -p "$logs"
: >"$results"

# === processes ===
declare -A pid_of=()   # target → pid of the process we started (its own process group)
declare -A port_of=()  # target → port

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for target in "${!pid_of[@]}"; do
        stop_target "$target"
    done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts "$@" in its own session (so the whole process tree can be stopped by its group id)
# with output to $logs/NAME.log; sets pid_of[NAME].
spawn() {
    local name=$1
    shift
    setsid "$@" >"$logs/$name.log" 2>&1 &
    pid_of[$name]=$!
}

stop_target() {
    local target=$1 pid=${pid_of[$1]:-}
    [[ -n "$pid" ]] || return 0
    unset "pid_of[$target]"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Sets REPLY to a port nobody listens on (checked by connecting) that was not handed out
# before in this run. (Not meant for `$(...)`: the record of ports handed out would be lost.)
declare -A taken_ports=()
free_port() {
    while :; do
        REPLY=$((20000 + RANDOM % 40000))
        [[ -z "${taken_ports[$REPLY]:-}" ]] || continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$REPLY") 2>/dev/null; then
            taken_ports[$REPLY]=1
            return
        fi
    done
}

# Waits until 127.0.0.1:PORT accepts connections, while the process is alive.
wait_port() {
    local target=$1 port=$2 timeout=$3 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "${pid_of[$target]}" 2>/dev/null || {
            log "$target exited while starting; last lines of $logs/$target.log:"
            tail -n 20 "$logs/$target.log" >&2
            return 1
        }
        sleep 0.1
    done
    log "$target did not listen on port $port within ${timeout}s"
    return 1
}

url_of() { echo "http://127.0.0.1:${port_of[$1]}/v1/chat/completions"; }

# All process ids of the tree rooted at PID (nginx master + workers, LiteLLM + its workers).
tree_pids() {
    local pid=$1 child
    echo "$pid"
    # shellcheck disable=SC2013 # the file is a space-separated list of ids
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
        tree_pids "$child"
    done
}

# === targets ===
start_target() {
    local target=$1 port
    free_port
    port=$REPLY
    port_of[$target]=$port
    case $target in
        direct)
            spawn direct "$bin/mock-upstream" --listen "127.0.0.1:$port" \
                --chunks "$MOCK_CHUNKS" --chunk-bytes "$MOCK_CHUNK_BYTES" --gap-ms "$MOCK_GAP_MS"
            wait_port direct "$port" 10
            ;;
        bare)
            spawn bare "$bin/bare-hop" --listen "127.0.0.1:$port" \
                --upstream "http://127.0.0.1:${port_of[direct]}"
            wait_port bare "$port" 10
            ;;
        nginx)
            local prefix="$OUT/nginx"
            mkdir -p "$prefix"
            sed -e "s|@PREFIX@|$prefix|g" -e "s|@WORKERS@|$NGINX_WORKERS|g" -e "s|@NOFILE@|$(ulimit -n)|g" \
                -e "s|@UPSTREAM_PORT@|${port_of[direct]}|g" -e "s|@LISTEN_PORT@|$port|g" \
                "$here/nginx.conf.tmpl" >"$prefix/nginx.conf"
            spawn nginx "$nginx_bin" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log"
            wait_port nginx "$port" 10
            ;;
        deliberate)
            # shellcheck disable=SC2086 # DELIBERATE_ARGS is a list of extra flags
            spawn deliberate "$bin/deliberate" serve --listen "127.0.0.1:$port" \
                --upstream "http://127.0.0.1:${port_of[direct]}" --policy "$POLICY" $DELIBERATE_ARGS
            wait_port deliberate "$port" 20
            ;;
        deliberate-shadow-* | deliberate-otel)
            local cfg="$OUT/$target.yaml" policy=$POLICY
            [[ "$policy" == /* ]] || policy="$root/$policy"
            case $target in
                deliberate-shadow-*)
                    printf 'shadow: {policies: ["%s"], sample: %s}\n' "$policy" "${target#deliberate-shadow-}" >"$cfg"
                    ;;
                deliberate-otel)
                    printf 'telemetry: {otlp_endpoint: "http://127.0.0.1:%s", sample_ratio: 1.0}\n' "${port_of[direct]}" >"$cfg"
                    ;;
            esac
            # shellcheck disable=SC2086 # DELIBERATE_ARGS is a list of extra flags
            spawn "$target" "$bin/deliberate" serve --config "$cfg" --listen "127.0.0.1:$port" \
                --upstream "http://127.0.0.1:${port_of[direct]}" --policy "$POLICY" $DELIBERATE_ARGS
            wait_port "$target" "$port" 20
            ;;
        litellm)
            # LiteLLM caps upstream connections at 500 per host by default (aiohttp connector):
            # lift the cap so that it can hold HOLD_STREAMS streams, as an operator would.
            MOCK_API_BASE="http://127.0.0.1:${port_of[direct]}/v1" \
                LITELLM_MASTER_KEY="$api_key" LITELLM_LOCAL_MODEL_COST_MAP=True \
                LITELLM_LOG=ERROR NO_DOCS=True \
                AIOHTTP_CONNECTOR_LIMIT=$((2 * HOLD_STREAMS)) \
                AIOHTTP_CONNECTOR_LIMIT_PER_HOST=$((2 * HOLD_STREAMS)) \
                spawn litellm "$here/.venv/bin/litellm" --config "$here/litellm-config.yaml" \
                --host 127.0.0.1 --port "$port" --num_workers "$LITELLM_WORKERS"
            wait_port litellm "$port" 120
            ;;
        *) die "unknown target $target (known: direct bare nginx deliberate deliberate-shadow-RATE deliberate-otel litellm)" ;;
    esac
}

# One streamed and one plain request must succeed before a target is measured.
smoke_test() {
    local target=$1 url
    url=$(url_of "$target")
    "$bin/sse-client" streams --url "$url" --body "$body" --streams 2 --concurrency 1 \
        >/dev/null 2>"$logs/$target.smoke.log" &&
        "$bin/sse-client" rate --url "$url" --body "$body" --rate 20 --duration-secs 0.2 \
            --connections 1 >/dev/null 2>>"$logs/$target.smoke.log" &&
        ! grep -q 'first error' "$logs/$target.smoke.log"
}

# === measurements ===

# Appends `round target metric value` for each `metric value` line on stdin, renaming the
# metric prefix `from_` to `to_` when given.
record() {
    local round=$1 target=$2 from=${3:-} to=${4:-}
    local metric value
    while read -r metric value; do
        [[ -n "$metric" && -n "$value" ]] || continue
        [[ -n "$from" ]] && metric="${to}${metric#"$from"}"
        printf '%s %s %s %s\n' "$round" "$target" "$metric" "$value" >>"$results"
    done
}

run_wrk() {
    local threads=$1 connections=$2 secs=$3 target=$4
    WRK_RUN="$(date +%s%N)" WRK_BODY="$body" WRK_API_KEY="$api_key" wrk -t"$threads" -c"$connections" -d"${secs}s" \
        --timeout 10s -s "$here/wrk-post.lua" "$(url_of "$target")" 2>>"$logs/wrk.log" |
        grep '^wrk_'
}

measure_unloaded() {
    run_wrk 1 1 "$UNLOADED_SECS" "$2" | record "$1" "$2" wrk_ unloaded_ ||
        log "$2: unloaded wrk run failed (see $logs/wrk.log)"
}

measure_saturated() {
    run_wrk 2 "$SAT_CONNECTIONS" "$SAT_SECS" "$2" | record "$1" "$2" wrk_ sat_ ||
        log "$2: saturating wrk run failed (see $logs/wrk.log)"
}

measure_rate() {
    "$bin/sse-client" rate --url "$(url_of "$2")" --body "$body" --rate "$rate" \
        --duration-secs "$RATE_SECS" --connections "$RATE_CONNECTIONS" \
        2>>"$logs/$2.rate.log" | record "$1" "$2" || log "$2: fixed-rate run failed (see $logs/$2.rate.log)"
}

measure_streams() {
    "$bin/sse-client" streams --url "$(url_of "$2")" --body "$body" --streams "$STREAMS" \
        --concurrency "$STREAM_CONCURRENCY" 2>>"$logs/$2.streams.log" | record "$1" "$2" ||
        log "$2: stream run failed (see $logs/$2.streams.log)"
}

# RSS needs a fresh process: one that already held 1,000 streams would reuse that memory.
measure_hold() {
    local round=$1 target=$2 pids=()
    stop_target "$target"
    start_target "$target" || { log "$target: restart failed, no RSS figure"; return 0; }
    smoke_test "$target" || { log "$target: not answering after restart"; return 0; }
    mapfile -t pids < <(tree_pids "${pid_of[$target]}")
    "$bin/sse-client" hold --url "$(url_of "$target")" --body "$body" --model "$hold_model" \
        --streams "$HOLD_STREAMS" --timeout-secs "$HOLD_TIMEOUT" "${pids[@]/#/--pid=}" \
        2>>"$logs/$target.hold.log" | record "$round" "$target" ||
        log "$target: hold run failed (see $logs/$target.hold.log)"
}

# Target order for a round: as given in odd rounds, reversed in even ones.
order() {
    local round=$1
    if ((round % 2)); then
        printf '%s\n' "${active[@]}"
    else
        printf '%s\n' "${active[@]}" | tac
    fi
}

# === build ===
log "building the harness (cargo build --release -p deliberate-bench-harness)"
cargo build --release --quiet -p deliberate-bench-harness

want_deliberate=0
[[ " $TARGETS " == *" deliberate"* ]] && want_deliberate=1
if ((want_deliberate)); then
    log "building deliberate (cargo build --release --bin deliberate)"
    if ! cargo build --release --quiet -p deliberate --bin deliberate 2>"$logs/deliberate.build.log"; then
        log "SKIP deliberate: it does not build (see $logs/deliberate.build.log)"
        want_deliberate=0
    elif ! "$bin/deliberate" serve --help >/dev/null 2>&1; then
        log "SKIP deliberate: this build has no working \`deliberate serve\` yet"
        want_deliberate=0
    elif [[ ! -f "$POLICY" ]]; then
        log "SKIP deliberate: policy $POLICY does not exist yet"
        want_deliberate=0
    fi
fi

# === start ===
# The mock (direct) and the bare hop are always measured: every figure is relative to them.
ordered=(direct bare)
for target in $TARGETS; do
    [[ "$target" == direct || "$target" == bare ]] || ordered+=("$target")
done
active=()
for target in "${ordered[@]}"; do
    case $target in
        deliberate*) ((want_deliberate)) || continue ;;
        litellm)
            if [[ ! -x "$here/.venv/bin/litellm" ]]; then
                log "SKIP litellm: no venv; run benches/proxy/setup-litellm.sh first"
                continue
            fi
            ;;
    esac
    log "starting $target"
    if start_target "$target" && smoke_test "$target"; then
        active+=("$target")
        continue
    fi
    [[ -f "$logs/$target.smoke.log" ]] && tail -n 5 "$logs/$target.smoke.log" >&2
    case $target in
        direct | bare) die "$target does not work; see $logs/$target.log" ;;
        *) log "SKIP $target: it did not start or a test request failed (see $logs/$target.*)" ;;
    esac
    stop_target "$target"
done

{
    echo "# deliberate proxy benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)"
    echo "# kernel: $(uname -r); commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "# nginx: $("$nginx_bin" -v 2>&1 | sed 's/.*: //')"
    echo "# litellm: $([[ " ${active[*]} " == *" litellm "* ]] && "$here/.venv/bin/python" -c 'from importlib.metadata import version; print(version("litellm"))' || echo not measured)"
    echo "# targets: ${active[*]}; rounds: $ROUNDS ($HOLD_ROUNDS for RSS); mock: $MOCK_CHUNKS chunks x $MOCK_CHUNK_BYTES B, ${MOCK_GAP_MS} ms apart"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
} >>"$results"
log "targets: ${active[*]}; results in $OUT"

log "warm-up"
for target in "${active[@]}"; do
    run_wrk 1 8 1 "$target" >/dev/null || true
done

# === (a) unloaded latency and (c) saturated throughput ===
for round in $(seq "$ROUNDS"); do
    for target in $(order "$round"); do
        log "round $round/$ROUNDS: $target unloaded (1 connection, ${UNLOADED_SECS}s), saturated ($SAT_CONNECTIONS connections, ${SAT_SECS}s)"
        measure_unloaded "$round" "$target"
        measure_saturated "$round" "$target"
    done
done

bare_sat=$(awk '$2 == "bare" && $3 == "sat_rps" { print $4 }' "$results" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
[[ -n "$bare_sat" ]] || die "no saturated throughput measured for the bare hop"
rate=$(awk -v s="$bare_sat" -v f="$RATE_FRACTION" 'BEGIN { printf "%.0f", s * f }')
log "bare hop saturates at $bare_sat req/s: fixed-rate runs at $rate req/s"

# === (b) latency at a fixed rate and (d) streams ===
for round in $(seq "$ROUNDS"); do
    for target in $(order "$round"); do
        log "round $round/$ROUNDS: $target at $rate req/s (${RATE_SECS}s), $STREAMS streams ($STREAM_CONCURRENCY at once)"
        measure_rate "$round" "$target"
        measure_streams "$round" "$target"
    done
done

# === (e) RSS with HOLD_STREAMS open streams ===
for round in $(seq "$HOLD_ROUNDS"); do
    for target in $(order "$round"); do
        [[ "$target" == direct ]] && continue # the mock is not a proxy
        log "round $round/$HOLD_ROUNDS: $target RSS with $HOLD_STREAMS open streams (fresh process)"
        measure_hold "$round" "$target"
    done
done

# === report ===
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"
{
    grep '^#' "$results" | sed 's/^# */- /'
    echo
    "$bin/bench-report" "$results" --baseline bare --direct direct
    if [[ " ${active[*]} " == *" deliberate "* && " ${active[*]} " == *" deliberate-"* ]]; then
        echo
        echo "## Variants against plain deliberate"
        echo
        "$bin/bench-report" "$results" --baseline deliberate --direct direct
    fi
} | tee "$OUT/report.md"
log "done in $((SECONDS - started_at))s; raw results: $results, logs: $logs"
