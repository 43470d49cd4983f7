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
mod judge_examples;
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
    init_tracing();
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DELIBERATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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
