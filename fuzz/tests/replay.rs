//! The stable side of fuzzing (CI's short run): every committed corpus input and every
//! regression input through its harness, then each target on seeded mutations of its corpus:
//! `FUZZ_MUTATIONS=N` per target (default 400, the same inputs on every machine, so CI is
//! deterministic), or `FUZZ_SECONDS=N` per target for a timed run; `FUZZ_SEED` the seed. A
//! failing mutated input is written to `target/fuzz-failures/` for `fuzz/regressions/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deliberate_fuzz::{Harness, TARGETS};

/// The longest one input may take in this (debug) build: a bound on the loader and the engine.
const SLOW: Duration = Duration::from_secs(20);

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `input`; on a panic or a slow input, says which and fails.
fn run_one(name: &str, harness: Harness, what: &str, input: &[u8]) {
    let start = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(|| harness(input)));
    let took = start.elapsed();
    if r.is_err() {
        let dir = root().join("../target/fuzz-failures").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{:016x}", fnv(input)));
        std::fs::write(&file, input).unwrap();
        panic!("{name}: {what} fails; input saved as {}", file.display());
    }
    assert!(took < SLOW, "{name}: {what} took {took:?}");
}

#[test]
fn corpus_and_regressions_replay() {
    let mut total = 0;
    for (name, harness) in TARGETS {
        for sub in ["corpus", "regressions"] {
            for (path, data) in inputs(&root().join(sub).join(name)) {
                run_one(name, *harness, &path.display().to_string(), &data);
                total += 1;
            }
        }
    }
    eprintln!("replayed {total} inputs");
    assert!(total > 0, "no corpus found");
}

#[test]
fn every_target_has_a_corpus_and_a_libfuzzer_binary() {
    let manifest = std::fs::read_to_string(root().join("libfuzzer/Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(
            !inputs(&root().join("corpus").join(name)).is_empty(),
            "{name} has no corpus"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} has no libFuzzer binary"
        );
    }
}

#[test]
fn seeded_mutations() {
    let secs: Option<u64> = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let count: u64 = std::env::var("FUZZ_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    for (name, harness) in TARGETS {
        let corpus: Vec<Vec<u8>> = inputs(&root().join("corpus").join(name))
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        let mut rng = Rng(seed ^ fnv(name.as_bytes()));
        let start = Instant::now();
        let more = |execs: u64| match secs {
            Some(s) => start.elapsed() < Duration::from_secs(s),
            None => execs < count,
        };
        let mut execs = 0u64;
        while more(execs) && !corpus.is_empty() {
            let base = &corpus[rng.below(corpus.len())];
            let input = mutate(&mut rng, base, &corpus);
            run_one(
                name,
                *harness,
                &format!("mutation {execs} (seed {seed})"),
                &input,
            );
            execs += 1;
        }
        eprintln!(
            "{name}: {execs} mutated inputs in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
}

/// A byte-level mutation: flips, inserts, deletes, copies and splices with another input.
fn mutate(rng: &mut Rng, base: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(at, rng.next() as u8),
            2 if at < v.len() => {
                let n = rng.below(v.len() - at).min(16) + 1;
                v.drain(at..at + n);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below(v.len() - i).min(32) + 1;
                let piece = v[i..i + n].to_vec();
                v.splice(at..at, piece);
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let i = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[i..]);
            }
            _ => {
                let tokens: [&[u8]; 6] = [b"\"", b"\\", b"{", b"}", b"\n", b"\xff"];
                v.splice(at..at, tokens[rng.below(tokens.len())].iter().copied());
            }
        }
    }
    v.truncate(1 << 16);
    v
}

/// SplitMix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
