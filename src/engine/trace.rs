//! A stream scan recorded piece by piece: what `deliberate scan --stream-chunk N` and the
//! playground's stream view show — after each piece, how much was received, where the
//! live-match frontier stood ([`StreamScanner::frontier`]), how much was released, and the
//! text released by that piece.
//!
//! ```
//! use deliberate::engine::{CompiledPolicy, trace};
//! use deliberate::policy::Stage;
//!
//! let p = CompiledPolicy::from_yaml_str(
//!     "policy: t\nrules: [{id: bomb, match: {keywords: [bomb]}, action: block}]\n", "t.yaml",
//! ).unwrap();
//! let t = trace::stream_trace(&p, Stage::Output, "a nightjar sings", 4);
//! assert_eq!(t.decision.output, "a nightjar sings");
//! assert_eq!(t.pieces.len(), 4);
//! assert!(t.pieces.iter().all(|p| p.frontier <= p.received));
//! ```

use serde::Serialize;

use super::{CompiledPolicy, Decision, StreamScanner};
use crate::policy::Stage;

/// Where the stream stood after one piece (original byte offsets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Piece {
    /// Bytes received so far.
    pub received: usize,
    /// The live-match frontier: no match in progress starts before it.
    pub frontier: usize,
    /// Bytes released to the client so far.
    pub released: usize,
    /// The text this piece released (redactions applied).
    pub text: String,
    /// A blocking rule had fired by this piece.
    pub blocked: bool,
}

/// A whole traced stream scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamTrace {
    /// The decision: the findings of the stream, and as `output` everything released.
    pub decision: Decision,
    /// One entry per piece.
    pub pieces: Vec<Piece>,
    /// The end of the stream ([`StreamScanner::finish`]): what was still held comes out.
    pub end: Piece,
}

/// Feeds `text` to a [`StreamScanner`] at `stage` in pieces of `chunk` bytes (at least 1; a
/// piece may end inside a character, as a network read can) and records each step.
pub fn stream_trace(
    policy: &CompiledPolicy,
    stage: Stage,
    text: &str,
    chunk: usize,
) -> StreamTrace {
    let mut s = policy.stream(stage);
    let mut out = String::new();
    let mut pieces = Vec::new();
    for piece in text.as_bytes().chunks(chunk.max(1)) {
        let o = s.push_bytes(piece);
        out.push_str(&o.text);
        pieces.push(record(&s, o.text));
    }
    let o = s.finish();
    out.push_str(&o.text);
    let end = record(&s, o.text);
    let findings = s.findings().to_vec();
    let action = Decision::action_of(&findings);
    StreamTrace {
        decision: Decision {
            action,
            findings,
            output: out,
            triggered: Vec::new(),
        },
        pieces,
        end,
    }
}

fn record(s: &StreamScanner<'_>, text: String) -> Piece {
    Piece {
        received: s.received(),
        frontier: s.frontier(),
        released: s.released(),
        text,
        blocked: s.is_blocked(),
    }
}
