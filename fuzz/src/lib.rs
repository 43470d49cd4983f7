//! Fuzzing harnesses for deliberate: one function per target, each taking the fuzzer's bytes.
//!
//! Every harness panics when an invariant breaks, so any driver finds the failure: libFuzzer
//! (`fuzz/libfuzzer`, on a nightly toolchain, coverage-guided long runs) and the stable
//! `cargo test -p deliberate-fuzz`, which replays the committed corpus and every regression input
//! and runs each target a few seconds on seeded mutations of the corpus (`tests/replay.rs`).
//! See the "Fuzzing" section of the README.
//!
//! # Layout
//!
//! - [`json`]: strict request JSON (`parse_strict` against `serde_json`) and each adapter's
//!   request parse, text hand-out, redaction write-back, spec placement and re-encoding.
//! - [`sse`]: the server-sent-events decoder fed arbitrary bytes in arbitrary pieces, and the
//!   encoder's round trip.
//! - [`stream`]: each adapter's [`StreamRewriter`](deliberate::wire::StreamRewriter) fed event
//!   sequences built from the API's own shapes, through an engine-backed filter
//!   ([`filter::EngineFilter`]); the client's output must be valid and carry no blocked phrase
//!   and no unredacted secret.
//! - [`text`]: the incremental JSON-string decoder (pieces == whole == `serde_json`).
//! - [`policy`]: the policy loader on arbitrary YAML (no panic, bounded time), and the compiled
//!   policy's streamed == buffered check on a fixed text.
//! - [`splits`]: streamed == buffered ([`check_cuts`](deliberate::engine::splits::check_cuts))
//!   with the shipped policies on texts built from their own rule examples, cut anywhere.

pub mod filter;
pub mod json;
pub mod policy;
pub mod splits;
pub mod sse;
pub mod stream;
pub mod text;

pub use json::{
    json_strict, request_anthropic, request_chat, request_completions, request_responses,
};
pub use policy::policy_loader;
pub use splits::streamed_buffered;
pub use sse::sse_decoder;
pub use stream::{stream_anthropic, stream_chat, stream_completions, stream_responses};
pub use text::json_text;

/// A harness: the fuzzer's bytes in, a panic when an invariant breaks.
pub type Harness = fn(&[u8]);

/// Every target by name: the name is the libFuzzer binary in `fuzz/libfuzzer` and the folder of
/// its corpus (`fuzz/corpus/NAME`) and regression inputs (`fuzz/regressions/NAME`).
pub const TARGETS: &[(&str, Harness)] = &[
    ("json_strict", json_strict),
    ("request_chat", request_chat),
    ("request_responses", request_responses),
    ("request_completions", request_completions),
    ("request_anthropic", request_anthropic),
    ("sse_decoder", sse_decoder),
    ("stream_chat", stream_chat),
    ("stream_responses", stream_responses),
    ("stream_completions", stream_completions),
    ("stream_anthropic", stream_anthropic),
    ("json_text", json_text),
    ("policy_loader", policy_loader),
    ("streamed_buffered", streamed_buffered),
];

/// The phrase the harness policy blocks (a keyword), checked in everything a client receives.
pub const BLOCKED: &str = "pipe bomb";

/// Pieces of text the structured harnesses build texts from: the blocked phrase whole and in
/// parts, secrets, JSON escapes that decode to them, multi-byte and combining characters.
pub const VOCAB: &[&str] = &[
    "pipe bomb",
    "pipe",
    " ",
    "bomb",
    "pi",
    "pe b",
    "omb",
    "PIPE BOMB",
    "pipe\u{200b} bomb",
    "secret-1234",
    "secret-",
    "12",
    "34",
    "\\u0062",
    "\\u00",
    "62",
    "\\",
    "\"",
    "\\\"",
    "{\"q\":\"",
    "\"}",
    "\n",
    "é",
    "e\u{301}",
    "爆弾",
    "\u{1F4A3}",
    "hello world",
    "data: x\n\n",
];

/// Cuts `s` at byte offsets (each moved down to a character boundary, sorted) into pieces; an
/// offset past the end counts as the end, and empty pieces are kept.
pub fn char_pieces<'a>(s: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| {
            let mut c = c.min(s.len());
            while !s.is_char_boundary(c) {
                c -= 1;
            }
            c
        })
        .collect();
    points.sort_unstable();
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut prev = 0;
    for p in points {
        out.push(&s[prev..p]);
        prev = p;
    }
    out.push(&s[prev..]);
    out
}
