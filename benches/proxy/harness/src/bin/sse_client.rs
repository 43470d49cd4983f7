//! `sse-client`: the load client of the proxy benchmarks.
//!
//! Three modes, each printing a human summary on stderr and `metric value` lines on stdout
//! (one per line, for `run.sh` to collect):
//!
//! - `streams`: runs `--streams` streamed chat completions over `--concurrency` keep-alive
//!   connections and reports the time to the first *content* token (the first event whose
//!   `delta.content` is not empty, measured from sending the request) and the gaps between
//!   consecutive content events, as percentiles in microseconds.
//! - `rate`: sends non-streamed requests at a fixed offered rate (open loop, wrk2-style) over
//!   `--connections` connections and reports latency percentiles. Latency is measured from the
//!   request's *scheduled* send time whenever the client fell behind schedule (so a slow server
//!   cannot hide its queueing — no coordinated omission), and from the actual send time when the
//!   client was idle and only woke up late (tokio's timer has 1 ms granularity, which is not the
//!   server's doing).
//! - `hold`: opens `--streams` streams, each on its own connection, waits until every one has
//!   received its first content token, then reads the summed `VmRSS` of the `--pid` processes
//!   and reports it against the reading taken before the streams opened: bytes per open stream.
//!
//! The request body comes from a JSON file (`--body`); the client sets its `stream` field to
//! fit the mode and its `model` field when `--model` is given.
//!
//! ```text
//! sse-client streams --url http://127.0.0.1:9001/v1/chat/completions --body chat.json
//! sse-client rate --url ... --body chat.json --rate 5000 --duration-secs 5
//! sse-client hold --url ... --body chat.json --streams 1000 --model 'mock:chunks=2;gap_ms=60000' --pid 1234
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use deliberate_bench_harness::client::{Body, Connection, Target, load_body};
use deliberate_bench_harness::rss::total_vm_rss_kib;
use deliberate_bench_harness::sse::SseDecoder;
use deliberate_bench_harness::stats::Percentiles;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Load client for the proxy benchmarks: stream timings, fixed-rate latency, RSS under open
/// streams.
#[derive(Debug, Parser)]
#[command(name = "sse-client", version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Tokio worker threads (default: one per core, or TOKIO_WORKER_THREADS).
    #[arg(long, global = true, env = "SSE_CLIENT_THREADS")]
    threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Time to first content token and inter-chunk gaps over concurrent streams.
    Streams(StreamsArgs),
    /// Latency of non-streamed requests at a fixed offered rate.
    Rate(RateArgs),
    /// Hold many streams open and report the RSS they cost the given processes.
    Hold(HoldArgs),
}

/// What every mode sends, and where.
#[derive(Debug, Args)]
struct RequestArgs {
    /// Chat completions URL, e.g. http://127.0.0.1:9001/v1/chat/completions.
    #[arg(long)]
    url: String,
    /// JSON file with the chat completions request body.
    #[arg(long)]
    body: PathBuf,
    /// Replaces the body's `model` (the mock reads stream-shape overrides from it).
    #[arg(long)]
    model: Option<String>,
}

#[derive(Debug, Args)]
struct StreamsArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Streams to run in total.
    #[arg(long, default_value_t = 200)]
    streams: u64,
    /// Streams in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Give up on a stream after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

#[derive(Debug, Args)]
struct RateArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Offered load, requests per second.
    #[arg(long)]
    rate: f64,
    /// Seconds of load at that rate.
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
    /// Connections to spread the load over.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds past the end of the schedule after which requests not yet sent are given up
    /// (counted as `unsent`) and those in flight are abandoned: bounds the run when the target
    /// cannot keep up.
    #[arg(long, default_value_t = 2.0)]
    grace_secs: f64,
}

#[derive(Debug, Args)]
struct HoldArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Streams to hold open at once, each on its own connection.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Processes whose summed VmRSS to report (repeat for multi-process proxies).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Connections being opened at once while the streams ramp up.
    #[arg(long, default_value_t = 64)]
    open_concurrency: usize,
    /// Give up if the streams are not all open after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Pause before each RSS reading, letting the processes settle.
    #[arg(long, default_value_t = 500)]
    settle_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = deliberate_bench_harness::server::runtime(cli.threads)?;
    runtime.block_on(async move {
        match cli.mode {
            Mode::Streams(args) => streams(args).await,
            Mode::Rate(args) => rate(args).await,
            Mode::Hold(args) => hold(args).await,
        }
    })
}

/// Prints one `metric value` line for `run.sh`.
fn report(metric: &str, value: impl std::fmt::Display) {
    println!("{metric} {value}");
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

// === streamed responses ===

/// The part of a `chat.completion.chunk` the client reads.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

impl Chunk {
    /// Bytes of content this event carries, over all choices.
    fn content_len(&self) -> usize {
        self.choices
            .iter()
            .filter_map(|choice| choice.delta.as_ref()?.content.as_ref())
            .map(String::len)
            .sum()
    }
}

/// Reads an SSE response body, calling `on_content` at the arrival of each event that carries
/// content. Returns the total content bytes once `data: [DONE]` has arrived; a stream that ends
/// without it is an error.
async fn read_stream(
    mut body: Incoming,
    mut on_content: impl FnMut(Instant),
) -> anyhow::Result<usize> {
    let mut decoder = SseDecoder::new();
    let mut content = 0;
    let mut done = false;
    // Read to the end of the body even after `[DONE]`: a body dropped before its end makes
    // the client close a connection that could have been reused.
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the stream")?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let arrived = Instant::now();
        decoder.push(data);
        while let Some(event) = decoder.next_event() {
            if done {
                bail!("event after data: [DONE]");
            }
            if event == b"[DONE]" {
                done = true;
                continue;
            }
            let chunk: Chunk = serde_json::from_slice(&event).with_context(|| {
                format!(
                    "event is not a chat.completion.chunk: {}",
                    String::from_utf8_lossy(&event)
                )
            })?;
            let len = chunk.content_len();
            if len > 0 {
                content += len;
                on_content(arrived);
            }
        }
    }
    if !done {
        bail!("the stream ended without data: [DONE]");
    }
    Ok(content)
}

/// Sends one request on `conn` and checks for a 200. Returns when the request went out
/// (after any reconnect) and the response body.
async fn send(conn: &mut Connection, body: &Body) -> anyhow::Result<(Instant, Incoming)> {
    let request = conn.target().post_json(body.next())?;
    let sender = conn.ready().await?;
    let sent = Instant::now();
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    if !status.is_success() {
        let text = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        bail!("status {status}: {}", text.trim());
    }
    Ok((sent, response.into_body()))
}

// === mode: streams ===

/// What one `streams` worker measured.
#[derive(Default)]
struct StreamSamples {
    ttft_us: Vec<u64>,
    gaps_us: Vec<u64>,
    content_bytes: usize,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn streams(args: StreamsArgs) -> anyhow::Result<()> {
    let target = Arc::new(Target::parse(&args.request.url)?);
    let body = load_body(&args.request.body, args.request.model.as_deref(), true)?;
    let next = Arc::new(AtomicU64::new(0));
    let timeout = Duration::from_secs(args.timeout_secs);
    let started = Instant::now();

    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (target, body, next) = (Arc::clone(&target), body.clone(), Arc::clone(&next));
        let total = args.streams;
        workers.spawn(async move {
            let mut samples = StreamSamples::default();
            let mut conn = Connection::new(target);
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let result = tokio::time::timeout(timeout, async {
                    let (sent, response) = send(&mut conn, &body).await?;
                    let mut last: Option<Instant> = None;
                    let mut ttft = None;
                    let mut gaps = Vec::new();
                    let bytes = read_stream(response, |arrived| {
                        match last {
                            None => ttft = Some(micros(arrived - sent)),
                            Some(previous) => gaps.push(micros(arrived - previous)),
                        }
                        last = Some(arrived);
                    })
                    .await?;
                    anyhow::Ok((ttft, gaps, bytes))
                })
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("stream timed out after {timeout:?}")));
                match result {
                    Ok((ttft, gaps, bytes)) => {
                        samples.ok += 1;
                        samples.ttft_us.extend(ttft);
                        samples.gaps_us.extend(gaps);
                        samples.content_bytes += bytes;
                    }
                    Err(err) => {
                        samples.errors += 1;
                        samples
                            .first_error
                            .get_or_insert_with(|| format!("{err:#}"));
                        conn.reset(); // its state is unknown: reconnect
                    }
                }
            }
            samples
        });
    }

    let mut all = StreamSamples::default();
    while let Some(samples) = workers.join_next().await {
        let samples = samples.context("a stream worker panicked")?;
        all.ttft_us.extend(samples.ttft_us);
        all.gaps_us.extend(samples.gaps_us);
        all.content_bytes += samples.content_bytes;
        all.ok += samples.ok;
        all.errors += samples.errors;
        if all.first_error.is_none() {
            all.first_error = samples.first_error;
        }
    }
    let elapsed = started.elapsed();
    // Every completed stream's first content event gave a TTFT sample, each later one a gap.
    let content_events = (all.ttft_us.len() + all.gaps_us.len()) as f64;
    let ttft = Percentiles::new(all.ttft_us);
    let gaps = Percentiles::new(all.gaps_us);
    eprintln!(
        "streams: {} ok, {} errors in {:.1}s; ttft p50 {:?}us p99 {:?}us; gap p50 {:?}us p99 {:?}us ({} gaps)",
        all.ok,
        all.errors,
        elapsed.as_secs_f64(),
        ttft.at(50.0),
        ttft.at(99.0),
        gaps.at(50.0),
        gaps.at(99.0),
        gaps.len(),
    );
    if let Some(err) = &all.first_error {
        eprintln!("streams: first error: {err}");
    }
    report("streams_ok", all.ok);
    report("stream_errors", all.errors);
    for (name, p) in [("ttft", &ttft), ("gap", &gaps)] {
        for (q, label) in [(50.0, "p50"), (99.0, "p99")] {
            if let Some(value) = p.at(q) {
                report(&format!("{name}_{label}_us"), value);
            }
        }
    }
    let Some(per_stream) = (all.content_bytes as u64).checked_div(all.ok) else {
        bail!("no stream completed");
    };
    report("content_bytes_per_stream", per_stream);
    report(
        "content_events_per_stream",
        format!("{:.1}", content_events / all.ok as f64),
    );
    Ok(())
}

// === mode: rate ===

/// What one `rate` worker measured.
#[derive(Default)]
struct RateSamples {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn rate(args: RateArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number of requests per second");
    }
    let target = Arc::new(Target::parse(&args.request.url)?);
    let body = load_body(&args.request.body, args.request.model.as_deref(), false)?;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let scheduled_total = (args.rate * args.duration_secs).round() as u64;

    // Connect everything before the clock starts.
    let mut connections = Vec::with_capacity(args.connections);
    for _ in 0..args.connections.max(1) {
        connections.push(Connection::open(Arc::clone(&target)).await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let give_up = start + Duration::from_secs_f64(args.duration_secs + args.grace_secs);
    let next = Arc::new(AtomicU64::new(0));

    let mut workers = JoinSet::new();
    for mut conn in connections {
        let (body, next) = (body.clone(), Arc::clone(&next));
        workers.spawn(async move {
            let mut samples = RateSamples::default();
            loop {
                let ticket = next.fetch_add(1, Ordering::Relaxed);
                if ticket >= scheduled_total {
                    break;
                }
                let scheduled = start + interval.mul_f64(ticket as f64);
                let now = Instant::now();
                if now >= give_up {
                    break;
                }
                // Behind schedule: the wait so far is the server's doing and counts. Ahead of
                // it: sleep, and count from when the request actually goes out.
                let from = if now >= scheduled {
                    scheduled
                } else {
                    tokio::time::sleep_until(scheduled).await;
                    Instant::now()
                };
                let result = tokio::time::timeout_at(give_up, async {
                    let (_, response) = send(&mut conn, &body).await?;
                    response
                        .collect()
                        .await
                        .context("reading the response body")?;
                    anyhow::Ok(())
                })
                .await;
                match result {
                    Ok(Ok(())) => samples.latencies_us.push(micros(from.elapsed())),
                    Ok(Err(err)) => {
                        samples.errors += 1;
                        samples
                            .first_error
                            .get_or_insert_with(|| format!("{err:#}"));
                        conn.reset(); // its state is unknown: reconnect
                    }
                    Err(_) => break, // past the give-up time with a request in flight
                }
            }
            samples
        });
    }

    let mut latencies = Vec::with_capacity(scheduled_total as usize);
    let (mut errors, mut first_error) = (0, None);
    while let Some(samples) = workers.join_next().await {
        let samples = samples.context("a rate worker panicked")?;
        latencies.extend(samples.latencies_us);
        errors += samples.errors;
        if first_error.is_none() {
            first_error = samples.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = latencies.len() as u64;
    let unsent = scheduled_total.saturating_sub(ok + errors);
    let p = Percentiles::new(latencies);
    let achieved = ok as f64 / elapsed.max(args.duration_secs);
    eprintln!(
        "rate: offered {:.0}/s, achieved {achieved:.0}/s; {ok} ok, {errors} errors, {unsent} unsent; \
         p50 {:?}us p90 {:?}us p99 {:?}us max {:?}us",
        args.rate,
        p.at(50.0),
        p.at(90.0),
        p.at(99.0),
        p.max(),
    );
    if let Some(err) = &first_error {
        eprintln!("rate: first error: {err}");
    }
    report("rate_offered_rps", format!("{:.0}", args.rate));
    report("rate_achieved_rps", format!("{achieved:.0}"));
    report("rate_errors", errors);
    report("rate_unsent", unsent);
    for (q, label) in [(50.0, "p50"), (90.0, "p90"), (99.0, "p99")] {
        if let Some(value) = p.at(q) {
            report(&format!("rate_{label}_us"), value);
        }
    }
    if p.is_empty() {
        bail!("no request completed");
    }
    Ok(())
}

// === mode: hold ===

async fn hold(args: HoldArgs) -> anyhow::Result<()> {
    if args.pids.is_empty() {
        bail!("give at least one --pid whose RSS to read");
    }
    let target = Arc::new(Target::parse(&args.request.url)?);
    let body = load_body(&args.request.body, args.request.model.as_deref(), true)?;
    let settle = Duration::from_millis(args.settle_ms);

    tokio::time::sleep(settle).await;
    let before = total_vm_rss_kib(&args.pids)?;

    let opening = Arc::new(Semaphore::new(args.open_concurrency.max(1)));
    let (opened_tx, mut opened_rx) = mpsc::channel::<anyhow::Result<()>>(args.streams.max(1));
    let (release_tx, release_rx) = watch::channel(false);
    let mut streams = JoinSet::new();
    for _ in 0..args.streams {
        let (target, body, opening) = (Arc::clone(&target), body.clone(), Arc::clone(&opening));
        let (opened_tx, mut release_rx) = (opened_tx.clone(), release_rx.clone());
        streams.spawn(async move {
            let opened = async {
                let permit = opening.acquire_owned().await.context("semaphore closed")?;
                let mut conn = Connection::new(target);
                let (_, mut response) = send(&mut conn, &body).await?;
                drop(permit);
                let mut decoder = SseDecoder::new();
                // Read until the first content event: the stream is then open end to end.
                loop {
                    let Some(frame) = response.frame().await else {
                        bail!("the stream ended before its first content token");
                    };
                    if let Some(data) = frame.context("reading the stream")?.data_ref() {
                        decoder.push(data);
                    }
                    while let Some(event) = decoder.next_event() {
                        if event != b"[DONE]"
                            && serde_json::from_slice::<Chunk>(&event)
                                .is_ok_and(|chunk| chunk.content_len() > 0)
                        {
                            return Ok((conn, response));
                        }
                    }
                }
            }
            .await;
            match opened {
                Ok((conn, mut response)) => {
                    let _ = opened_tx.send(Ok(())).await;
                    // Keep the stream open (and drained) until released.
                    tokio::select! {
                        _ = release_rx.wait_for(|released| *released) => {}
                        _ = async { while let Some(Ok(_)) = response.frame().await {} } => {}
                    }
                    drop(conn);
                }
                Err(err) => {
                    let _ = opened_tx.send(Err(err)).await;
                }
            }
        });
    }
    drop(opened_tx);

    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let (mut open, mut failed, mut first_error) = (0usize, 0usize, None);
    while open + failed < args.streams {
        match tokio::time::timeout_at(deadline, opened_rx.recv()).await {
            Ok(Some(Ok(()))) => open += 1,
            Ok(Some(Err(err))) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{err:#}"));
            }
            Ok(None) => break,
            Err(_) => {
                eprintln!(
                    "hold: only {open} of {} streams open after {}s",
                    args.streams, args.timeout_secs
                );
                break;
            }
        }
    }
    tokio::time::sleep(settle).await;
    let during = total_vm_rss_kib(&args.pids)?;
    let _ = release_tx.send(true);
    streams.shutdown().await;

    let per_stream = (during.saturating_sub(before) * 1024)
        .checked_div(open as u64)
        .unwrap_or(0);
    eprintln!(
        "hold: {open} streams open ({failed} failed); VmRSS {before} KiB before, {during} KiB during: \
         {per_stream} bytes per stream"
    );
    if let Some(err) = &first_error {
        eprintln!("hold: first error: {err}");
    }
    report("streams_requested", args.streams);
    report("streams_open", open);
    report("hold_errors", failed);
    report("rss_idle_kib", before);
    report("rss_open_kib", during);
    report("bytes_per_stream", per_stream);
    if open == 0 {
        bail!("no stream opened");
    }
    Ok(())
}
