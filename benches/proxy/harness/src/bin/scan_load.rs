//! `scan-load`: sends expansion-heavy requests (texts that NFKC makes many times longer) to a
//! gateway while it measures a small request's latency — does one costly input scan delay
//! everyone else?
//!
//! For `--duration-secs`, `--heavy` workers each send, one after the other, a chat completion
//! whose user message is `--heavy-chars` characters cycling through `--mix` (default: U+FDFA,
//! 18 characters under NFKC, and other compatibility expansions), made unique per request so
//! the gateway's scan cache cannot answer it. Meanwhile, every `--probe-ms`, a small chat
//! completion ("hi" and a counter) goes out on a fresh connection; its latency to the whole
//! response is recorded, and a probe with no `200` within `--probe-timeout-ms` counts as failed.
//!
//! Prints a summary on stderr and `metric value` lines on stdout: probe latency percentiles
//! (µs), failed probes, heavy requests sent by status, and the heavy requests' median latency.
//!
//! ```text
//! scan-load --addr 127.0.0.1:8080 --heavy 4 --heavy-chars 400000
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use deliberate_bench_harness::stats::Percentiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Command-line arguments.
#[derive(Debug, Parser)]
struct Cli {
    /// The gateway's address.
    #[arg(long)]
    addr: SocketAddr,
    /// Request path.
    #[arg(long, default_value = "/v1/chat/completions")]
    path: String,
    /// Concurrent heavy workers (0: probes only, the baseline).
    #[arg(long, default_value_t = 4)]
    heavy: usize,
    /// Characters of a heavy message.
    #[arg(long, default_value_t = 400_000)]
    heavy_chars: usize,
    /// Characters a heavy message cycles through.
    #[arg(
        long,
        default_value = "\u{FDFA}\u{FDFA}\u{FDFA}\u{337F}\u{FB03}\u{3300}"
    )]
    mix: String,
    /// How long the load lasts.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Pause between two probes.
    #[arg(long, default_value_t = 100)]
    probe_ms: u64,
    /// A probe slower than this failed.
    #[arg(long, default_value_t = 30_000)]
    probe_timeout_ms: u64,
}

/// A chat completion request with `text` as its user message.
fn chat(text: &str) -> Vec<u8> {
    serde_json::json!({"model": "bench", "messages": [{"role": "user", "content": text}]})
        .to_string()
        .into_bytes()
}

/// Sends `body` on a fresh connection; the status and latency, `None` if it failed or timed
/// out.
async fn send(cli: &Cli, body: &[u8], timeout: Duration) -> Option<(u16, Duration)> {
    let started = Instant::now();
    let run = async {
        let mut s = TcpStream::connect(cli.addr).await.ok()?;
        let mut req = format!(
            "POST {} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            cli.path,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        s.write_all(&req).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let status = std::str::from_utf8(out.get(9..12)?).ok()?.parse().ok()?;
        Some(status)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Some(status)) => Some((status, started.elapsed())),
        _ => None,
    }
}

#[derive(Default)]
struct Heavy {
    by_status: BTreeMap<u16, u64>,
    failed: u64,
    latency_us: Vec<u64>,
}

async fn heavy_worker(cli: Arc<Cli>, id: usize, until: Instant, out: Arc<Mutex<Heavy>>) {
    let mix: Vec<char> = cli.mix.chars().collect();
    let base: String = (0..cli.heavy_chars).map(|i| mix[i % mix.len()]).collect();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let body = chat(&format!("{base} heavy-{id}-{n}"));
        let res = send(&cli, &body, Duration::from_secs(120)).await;
        let mut h = out.lock().await;
        match res {
            Some((status, d)) => {
                *h.by_status.entry(status).or_default() += 1;
                h.latency_us.push(d.as_micros() as u64);
            }
            None => h.failed += 1,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Arc::new(Cli::parse());
    if cli.mix.is_empty() {
        anyhow::bail!("--mix is empty");
    }
    let until = Instant::now() + Duration::from_secs(cli.duration_secs);
    let heavy = Arc::new(Mutex::new(Heavy::default()));
    let tasks: Vec<_> = (0..cli.heavy)
        .map(|i| tokio::spawn(heavy_worker(cli.clone(), i, until, heavy.clone())))
        .collect();
    let mut lat = Vec::new();
    let mut failed = 0u64;
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let body = chat(&format!("hi probe-{n}"));
        match send(&cli, &body, Duration::from_millis(cli.probe_timeout_ms)).await {
            Some((200, d)) => lat.push(d.as_micros() as u64),
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(cli.probe_ms)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let p = Percentiles::new(lat);
    let h = heavy.lock().await;
    let hp = Percentiles::new(h.latency_us.clone());
    let body_bytes = chat(
        &cli.mix
            .repeat(cli.heavy_chars / cli.mix.chars().count().max(1)),
    )
    .len();
    eprintln!(
        "scan-load: {} probes ok, {failed} failed; latency p50 {:?} µs, p99 {:?} µs, max {:?} µs; \
         {} heavy workers, ~{body_bytes} bytes a request: {:?} by status, {} failed, median {:?} µs",
        p.len(),
        p.at(50.0),
        p.at(99.0),
        p.max(),
        cli.heavy,
        h.by_status,
        h.failed,
        hp.at(50.0),
    );
    println!("probes_ok {}", p.len());
    println!("probes_failed {failed}");
    for (name, v) in [
        ("probe_p50_us", p.at(50.0)),
        ("probe_p99_us", p.at(99.0)),
        ("probe_max_us", p.max()),
        ("heavy_p50_us", hp.at(50.0)),
    ] {
        println!("{name} {}", v.unwrap_or(0));
    }
    for (status, count) in &h.by_status {
        println!("heavy_status_{status} {count}");
    }
    println!("heavy_failed {}", h.failed);
    Ok(())
}
