//! `front-door`: holds many idle and slow-body sockets open against a gateway while it measures
//! a normal request's latency — does a crowd of clients that send nothing, or trickle a body,
//! starve the clients that behave?
//!
//! For `--duration-secs`, it keeps `--idle` sockets connected that never send a byte and
//! `--slow` sockets that send a request head announcing a body and then one byte of it every
//! `--trickle-ms`; a socket the gateway closes is reopened (at most `--max-opens` in all).
//! Meanwhile, every `--probe-ms`, a normal non-streamed chat completion goes out on a fresh
//! connection with `Connection: close`; its latency (to the whole response) is recorded, and a
//! probe with no full `200` answer within `--probe-timeout-ms` counts as failed.
//!
//! Prints a summary on stderr and `metric value` lines on stdout: probe latency percentiles
//! (µs), failed probes, sockets opened, sockets the gateway closed, and the median time an
//! attacking socket lived before the gateway closed it (ms).
//!
//! ```text
//! front-door --addr 127.0.0.1:8080 --body benches/proxy/requests/chat.json --idle 600 --slow 200
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
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
    /// Request path of the probes and of the slow bodies.
    #[arg(long, default_value = "/v1/chat/completions")]
    path: String,
    /// JSON body of a probe.
    #[arg(long)]
    body: PathBuf,
    /// Idle sockets to hold (nothing sent).
    #[arg(long, default_value_t = 600)]
    idle: usize,
    /// Slow-body sockets to hold.
    #[arg(long, default_value_t = 200)]
    slow: usize,
    /// Pause between two bytes of a slow body.
    #[arg(long, default_value_t = 1000)]
    trickle_ms: u64,
    /// How long the attack lasts.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Pause between two probes.
    #[arg(long, default_value_t = 100)]
    probe_ms: u64,
    /// A probe slower than this failed.
    #[arg(long, default_value_t = 5000)]
    probe_timeout_ms: u64,
    /// Most sockets the attackers open in all (reopens included).
    #[arg(long, default_value_t = 20_000)]
    max_opens: u64,
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    connect_failed: AtomicU64,
    closed_by_gateway: AtomicU64,
    lifetimes_ms: Mutex<Vec<u64>>,
}

/// One attacking socket, reopened until `until` whenever the gateway closes it.
async fn attacker(cli: Arc<Cli>, slow: bool, until: Instant, c: Arc<Counters>) {
    while Instant::now() < until {
        if c.opened.fetch_add(1, Ordering::Relaxed) >= cli.max_opens {
            return;
        }
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(cli.addr)).await
        else {
            c.connect_failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let opened = Instant::now();
        let closed = if slow {
            let head = format!(
                "POST {} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{",
                cli.path
            );
            let mut closed = s.write_all(head.as_bytes()).await.is_err();
            let mut buf = [0u8; 1024];
            while !closed && Instant::now() < until {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(cli.trickle_ms)) => {
                        closed = s.write_all(b" ").await.is_err();
                    }
                    r = s.read(&mut buf) => {
                        // An answer (408), EOF or a reset: the gateway is done with us.
                        let _ = r;
                        closed = true;
                    }
                }
            }
            closed
        } else {
            let mut buf = [0u8; 64];
            tokio::select! {
                r = s.read(&mut buf) => { let _ = r; true }
                () = tokio::time::sleep_until(until.into()) => false,
            }
        };
        if closed {
            c.closed_by_gateway.fetch_add(1, Ordering::Relaxed);
            c.lifetimes_ms
                .lock()
                .await
                .push(opened.elapsed().as_millis() as u64);
        }
    }
}

/// One normal request on a fresh connection; its latency, or `None` if it failed.
async fn probe(cli: &Cli, body: &[u8]) -> Option<Duration> {
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
        out.starts_with(b"HTTP/1.1 200").then_some(())
    };
    match tokio::time::timeout(Duration::from_millis(cli.probe_timeout_ms), run).await {
        Ok(Some(())) => Some(started.elapsed()),
        _ => None,
    }
}

async fn probes(cli: &Cli, body: &[u8], until: Instant) -> (Vec<u64>, u64) {
    let mut lat = Vec::new();
    let mut failed = 0;
    let mut n = 0u64;
    while Instant::now() < until {
        // A unique body per probe: the gateway caches input scans.
        n += 1;
        let unique = String::from_utf8_lossy(body).replace("{{n}}", &format!("probe-{n}"));
        match probe(cli, unique.as_bytes()).await {
            Some(d) => lat.push(d.as_micros() as u64),
            None => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(cli.probe_ms)).await;
    }
    (lat, failed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Arc::new(Cli::parse());
    let body = std::fs::read(&cli.body).with_context(|| format!("reading {:?}", cli.body))?;
    let until = Instant::now() + Duration::from_secs(cli.duration_secs);
    let c = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for i in 0..cli.idle + cli.slow {
        tasks.push(tokio::spawn(attacker(
            cli.clone(),
            i >= cli.idle,
            until,
            c.clone(),
        )));
    }
    let (lat, failed) = probes(&cli, &body, until).await;
    for t in tasks {
        let _ = t.await;
    }
    let p = Percentiles::new(lat);
    let mut lives = c.lifetimes_ms.lock().await.clone();
    lives.sort_unstable();
    let life_p50 = lives.get(lives.len() / 2).copied().unwrap_or(0);
    let opened = c.opened.load(Ordering::Relaxed);
    let closed = c.closed_by_gateway.load(Ordering::Relaxed);
    eprintln!(
        "front-door: {} probes ok, {failed} failed; latency p50 {:?} µs, p99 {:?} µs, max {:?} µs; \
         attackers: {} idle + {} slow, {opened} sockets opened, {} connects failed, {closed} closed \
         by the gateway after a median {life_p50} ms",
        p.len(),
        p.at(50.0),
        p.at(99.0),
        p.max(),
        cli.idle,
        cli.slow,
        c.connect_failed.load(Ordering::Relaxed),
    );
    println!("probes_ok {}", p.len());
    println!("probes_failed {failed}");
    for (name, v) in [
        ("probe_p50_us", p.at(50.0)),
        ("probe_p99_us", p.at(99.0)),
        ("probe_max_us", p.max()),
    ] {
        println!("{name} {}", v.unwrap_or(0));
    }
    println!("sockets_opened {opened}");
    println!("sockets_closed_by_gateway {closed}");
    println!("attacker_life_p50_ms {life_p50}");
    Ok(())
}
