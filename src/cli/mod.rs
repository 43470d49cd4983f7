//! The `deliberate` command line: one file per subcommand.
//!
//! `anyhow` is used here and in `main.rs` only; library modules return typed errors.

/// `println!` for command output. A closed pipe (`deliberate scan … | head`) ends the process
/// quietly with status 0, as a Unix filter stops when its reader has gone, instead of
/// panicking with "failed printing to stdout".
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for command output, like `outln!`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

mod check;
mod eval;
mod health;
mod judge_opts;
mod playground;
mod scan;
mod serve;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A policy gateway for model APIs.
#[derive(Debug, Parser)]
#[command(name = "deliberate", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands. The names are part of the contract: add, don't rename.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lint policy files: diagnostics as `file:line:col: level: message`; exit 1 on errors.
    Check(check::Args),
    /// Explain what a policy does to a text: action, findings with spans, text after actions.
    Scan(scan::Args),
    /// Run every rule's examples and the test files, buffered and streamed at every split.
    Test(test::Args),
    /// Run the gateway: an OpenAI-compatible proxy that injects the spec and enforces the
    /// policy on inputs and (streamed) outputs.
    Serve(serve::Args),
    /// Measure a policy on labeled data sets (catch rate, false blocks, spans), optionally A/B
    /// through a real model.
    Eval(eval::Args),
    /// Open the policy playground: a web page to try texts, streams, injection, tests, edits
    /// and diffs of a policy (loopback only unless --allow-remote).
    Playground(playground::Args),
    /// Ask a running gateway's `/healthz` or `/readyz` (exit 0 on 200): the container
    /// health check.
    Health(health::Args),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets tracing up itself, once its config says whether traces are exported.
    if !matches!(cli.command, Command::Serve(_)) {
        init_tracing();
    }
    let result = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Scan(a) => scan::run(a),
        Command::Test(a) => test::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Playground(a) => playground::run(a),
        Command::Health(a) => health::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, filtered by `DELIBERATE_LOG` (default `info`).
pub(crate) fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry().with(log_layer()).try_init();
}

/// Logs as [`init_tracing`], and the gateway's spans to the OTLP exporter.
#[cfg(feature = "otel")]
pub(crate) fn init_tracing_with(telemetry: &crate::proxy::telemetry::Telemetry) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(log_layer())
        .with(telemetry.layer())
        .try_init();
}

/// The stderr log layer. The gateway's spans (`deliberate::span`) are left out unless
/// `DELIBERATE_LOG` names them: with traces off they then cost nothing per request.
fn log_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::Layer as _;
    let spec = std::env::var("DELIBERATE_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(&spec)
        .ok()
        .filter(|_| !spec.is_empty())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let target = crate::layer::trace::SPAN_TARGET;
    if !spec.contains(target)
        && let Ok(off) = format!("{target}=off").parse()
    {
        filter = filter.add_directive(off);
    }
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter)
}

/// Expands file arguments: a file as given; a directory to the files directly inside it whose
/// extension is one of `extensions`, sorted. With `empty_dir: Some(what)`, a directory holding
/// none of them is an error (`DIR: no WHAT files in this directory`).
pub(crate) fn files_in(
    args: &[PathBuf],
    extensions: &[&str],
    empty_dir: Option<&str>,
) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context as _;
    let mut out = Vec::new();
    for a in args {
        if !a.is_dir() {
            out.push(a.clone());
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(a)
            .with_context(|| format!("reading {}", a.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| extensions.contains(&e))
            })
            .collect();
        files.sort();
        if let (true, Some(what)) = (files.is_empty(), empty_dir) {
            anyhow::bail!("{}: no {what} files in this directory", a.display());
        }
        out.extend(files);
    }
    Ok(out)
}

/// Expands policy arguments: files as given; directories to the `*.yaml` / `*.yml` files directly
/// inside them, sorted.
pub(crate) fn policy_files(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    files_in(args, &["yaml", "yml"], None)
}

/// Writes command output; see `outln!`.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(2);
    }
}
