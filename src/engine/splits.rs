//! The split-point checker: a streamed scan must decide as the buffered scan does, however the
//! text is cut into pieces.
//!
//! For a text the buffered scan allows, flags or redacts, the stream must release exactly the
//! buffered output and report the same findings. For a text it blocks, the stream must block
//! too, release nothing from the first blocked span on, no part of a redacted span, and
//! exactly the redacted text before the cut. `deliberate test` runs [`check_every_split`] on
//! every case; the property tests run [`check_cuts`] on random cuts.
//!
//! ```
//! use deliberate::engine::splits::{Cuts, check_cuts, check_every_split};
//! use deliberate::{CompiledPolicy, Stage};
//!
//! let p = CompiledPolicy::from_yaml_str(r#"
//! policy: s
//! rules:
//!   - id: email
//!     match: {regex: '[a-z]{1,32}@[a-z]{1,32}\.[a-z]{2,8}'}
//!     action: redact
//!     replacement: "[email]"
//! "#, "s.yaml").unwrap();
//! let text = "write to bob@example.com today";
//! let want = p.scan(text, Stage::Output, None);
//! check_every_split(&p, Stage::Output, text, &want).unwrap();
//!
//! // A mismatch says where the text was cut and what went wrong.
//! let mut wrong = want.clone();
//! wrong.output = text.to_owned();
//! let err = check_cuts(&p, Stage::Output, text, &wrong, &[12]).unwrap_err();
//! assert_eq!(err.cuts, Cuts::At(12));
//! assert!(err.to_string().starts_with("streamed (split at byte 12) released"));
//! ```

use std::fmt;

use super::{CompiledPolicy, Decision, Finding, apply_redactions};
use crate::policy::{Action, Stage};

/// Where a checked stream was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cuts {
    /// In two, at this byte.
    At(usize),
    /// At every byte.
    EveryByte,
    /// At these bytes (sorted, without repeats).
    Points(Vec<usize>),
}

impl fmt::Display for Cuts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cuts::At(i) => write!(f, "split at byte {i}"),
            Cuts::EveryByte => f.write_str("fed byte by byte"),
            Cuts::Points(p) => write!(f, "cut at bytes {p:?}"),
        }
    }
}

/// A stream that did not decide as the buffered scan did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("streamed ({cuts}) {problem}")]
pub struct SplitMismatch {
    /// How the text was cut.
    pub cuts: Cuts,
    /// What went wrong.
    pub problem: String,
}

/// Streams `text` at `stage` split in two at every byte (characters split too), then fed byte
/// by byte; each run must agree with the buffered decision `want`. Returns the first mismatch.
pub fn check_every_split(
    policy: &CompiledPolicy,
    stage: Stage,
    text: &str,
    want: &Decision,
) -> Result<(), SplitMismatch> {
    for i in 0..=text.len() {
        check_cuts(policy, stage, text, want, &[i])?;
    }
    let every: Vec<usize> = (1..text.len()).collect();
    run(policy, stage, text, want, every, Cuts::EveryByte)
}

/// Streams `text` at `stage` in the pieces between the byte offsets `cuts` (any order; offsets
/// past the end count as the end; an empty piece is fed too, as a client may send one) and
/// checks the result against the buffered decision `want`.
pub fn check_cuts(
    policy: &CompiledPolicy,
    stage: Stage,
    text: &str,
    want: &Decision,
    cuts: &[usize],
) -> Result<(), SplitMismatch> {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(text.len())).collect();
    points.sort_unstable();
    points.dedup();
    let described = match points.as_slice() {
        [i] => Cuts::At(*i),
        p => Cuts::Points(p.to_vec()),
    };
    run(policy, stage, text, want, points, described)
}

/// Streams `text` in the pieces between `points` (sorted, deduplicated, inside the text) and
/// compares with `want`; a mismatch is described by `cuts`.
fn run(
    policy: &CompiledPolicy,
    stage: Stage,
    text: &str,
    want: &Decision,
    points: Vec<usize>,
    cuts: Cuts,
) -> Result<(), SplitMismatch> {
    let bytes = text.as_bytes();
    let fail = |problem: String| SplitMismatch {
        cuts: cuts.clone(),
        problem,
    };

    let mut s = policy.stream(stage);
    let mut out = String::new();
    let mut blocked = false;
    let mut prev = 0;
    for &c in points.iter().chain(std::iter::once(&bytes.len())) {
        let o = s.push_bytes(&bytes[prev..c]);
        out.push_str(&o.text);
        blocked |= o.blocked;
        prev = c;
    }
    let o = s.finish();
    out.push_str(&o.text);
    blocked |= o.blocked;

    if want.action == Action::Block {
        if !blocked {
            return Err(fail("did not block".into()));
        }
        let r = s.released();
        let first_block = want
            .findings
            .iter()
            .filter(|f| f.action == Action::Block)
            .map(|f| f.start)
            .min();
        if first_block.is_some_and(|b| r > b) {
            return Err(fail(format!("released {r} bytes, past a blocked span")));
        }
        let before: Vec<Finding> = want
            .findings
            .iter()
            .filter(|f| f.action == Action::Redact && f.start < r)
            .cloned()
            .collect();
        if before.iter().any(|f| f.end > r) {
            return Err(fail("released part of a redacted span".into()));
        }
        let expected = apply_redactions(&text[..r], &before, |id| policy.replacement(id));
        if out != expected {
            return Err(fail(format!("released {out:?}, expected {expected:?}")));
        }
    } else {
        if blocked {
            return Err(fail("blocked; buffered did not".into()));
        }
        if out != want.output {
            return Err(fail(format!(
                "released {out:?}, buffered gives {:?}",
                want.output
            )));
        }
        if s.findings() != want.findings.as_slice() {
            return Err(fail(format!(
                "findings differ: {:?} vs {:?}",
                s.findings(),
                want.findings
            )));
        }
    }
    Ok(())
}
