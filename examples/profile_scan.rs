//! A profiling harness for the engine: loads a policy once and scans a file N times at a
//! stage, buffered or streamed, so that a profiler (callgrind, perf) sees the scans and not the
//! command line.
//!
//! ```text
//! cargo build --release --example profile_scan
//! valgrind --tool=callgrind --toggle-collect='*CompiledPolicy*scan*' \
//!     target/release/examples/profile_scan policies/default.yaml text.txt 21 input
//! valgrind --tool=callgrind --toggle-collect='*profile_scan*stream_scan*' \
//!     target/release/examples/profile_scan policies/default.yaml text.txt 3 stream16
//! valgrind --tool=callgrind --toggle-collect='*CompiledPolicy*load*' \
//!     target/release/examples/profile_scan policies/default.yaml text.txt 0 output
//! ```
//! Modes: `input`, `output` (buffered scans at that stage), `streamN` (the output stage fed
//! through `StreamScanner::push_bytes` in N-byte pieces, plus `finish`). Run it with N = 1 and
//! N = 21 (buffered) or 1 and 3 (streamed) and divide the difference: that is the cost of one
//! scan without the regex engines' first-use warm-up (`benches/README.md`). N = 0 with the
//! `load` toggle measures `CompiledPolicy::load` alone.

use std::process::ExitCode;

use deliberate::{CompiledPolicy, Stage};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, policy, text, n, rest @ ..] = args.as_slice() else {
        eprintln!("usage: profile_scan POLICY TEXT_FILE N [input|output|streamN]");
        return ExitCode::from(2);
    };
    let policy = match CompiledPolicy::load(policy.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (Ok(text), Ok(n)) = (std::fs::read_to_string(text), n.parse::<usize>()) else {
        eprintln!("cannot read the text file, or N is not a number");
        return ExitCode::from(2);
    };
    let mode = rest.first().map_or("output", String::as_str);
    let mut findings = 0;
    if let Some(chunk) = mode.strip_prefix("stream") {
        let Ok(chunk) = chunk.parse::<usize>() else {
            eprintln!("streamN: N is the piece size in bytes");
            return ExitCode::from(2);
        };
        for _ in 0..n {
            findings += stream_scan(&policy, &text, chunk.max(1));
        }
    } else {
        let stage = if mode == "input" {
            Stage::Input
        } else {
            Stage::Output
        };
        for _ in 0..n {
            findings += policy.scan(&text, stage, Some("user")).findings.len();
        }
    }
    println!("{findings} findings in {n} scans");
    ExitCode::SUCCESS
}

/// One streamed scan of `text` at the output stage in `chunk`-byte pieces; returns the number
/// of findings. Not inlined, so that callgrind can toggle on it.
#[inline(never)]
fn stream_scan(policy: &CompiledPolicy, text: &str, chunk: usize) -> usize {
    let mut s = policy.stream(Stage::Output);
    let mut n = 0;
    for piece in text.as_bytes().chunks(chunk) {
        n += s.push_bytes(piece).findings.len();
    }
    n + s.finish().findings.len()
}
