//! `deliberate health`: asks a running gateway's admin route whether it is healthy, for
//! container health checks in images with no shell and no curl (the runtime image has neither).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

/// Arguments of `deliberate health`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The admin URL to ask (plain http): `/healthz` for liveness, `/readyz` for readiness.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/healthz"
    )]
    pub url: String,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    pub timeout: u64,
}

/// Exit 0 when the gateway answers `200`, 1 otherwise; the body goes to stdout.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rest = a
        .url
        .strip_prefix("http://")
        .context("--url must be an http:// URL (admin routes are plain HTTP)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    let timeout = Duration::from_secs(a.timeout.max(1));
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {authority}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.take(64 << 10).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .context("not an HTTP answer")?;
    if let Some((_, body)) = text.split_once("\r\n\r\n") {
        outln!("{}", body.trim());
    }
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} answered {status}", a.url);
        ExitCode::FAILURE
    })
}
