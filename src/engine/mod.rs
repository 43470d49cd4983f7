//! The engine: compiles policies and runs them — text in, findings and a decision out.
//!
//! [`compile`] turns a policy file (its syntax is [`crate::policy`]) into a
//! [`CompiledPolicy`], the immutable program, defined in one place (`program.rs`).
//! [`CompiledPolicy::scan`] scans a whole text (buffered); [`StreamScanner`] scans a text that
//! arrives in pieces and releases only what no blocking or redacting rule can still cover. Both
//! find leaf hits and evaluate match trees with the same matcher (`matcher.rs`), so they give
//! the same decisions for the same text, whatever the chunking; [`splits`] checks that at every
//! split point. [`inject`] chooses and renders the spec sections shown to the model. [`explain`] says why a
//! finding fired, [`trace`] records a stream scan piece by piece, [`cases`] runs a policy's
//! test cases (what `deliberate test` and the playground show). The engine
//! knows nothing of HTTP or of any model API; JSON appears only in the judge's prompt and the
//! verdict it parses ([`judge`]).
//!
//! ```
//! use deliberate::engine::CompiledPolicy;
//! use deliberate::policy::{Action, Stage};
//!
//! let policy = CompiledPolicy::from_yaml_str(r#"
//! policy: cards
//! rules:
//!   - id: card
//!     match: {regex: '\b(?:\d[ -]?){12,18}\d\b', validate: luhn}
//!     action: redact
//!     replacement: "[card]"
//!     tests: {match: ["4111 1111 1111 1111"], no_match: ["1234 5678 9012 3456"]}
//! "#, "cards.yaml").unwrap();
//!
//! // Buffered.
//! let d = policy.scan("pay with 4111 1111 1111 1111 now", Stage::Output, None);
//! assert_eq!(d.action, Action::Redact);
//! assert_eq!(d.output, "pay with [card] now");
//!
//! // Streamed, in awkward pieces: the same text comes out.
//! let mut s = policy.stream(Stage::Output);
//! let mut out = String::new();
//! for piece in ["pay with 41", "11 1111 11", "11 1111 now"] {
//!     out.push_str(&s.push(piece).text);
//! }
//! out.push_str(&s.finish().text);
//! assert_eq!(out, "pay with [card] now");
//! ```

pub mod cases;
pub mod compile;
mod decision;
pub mod explain;
pub mod inject;
pub mod judge;
mod judge_policy;
mod live;
mod matcher;
mod program;
mod scan;
pub mod splits;
mod stream;
pub mod trace;

pub use decision::{Decision, Finding, apply_redactions};
pub use program::{CompiledPolicy, Rule, RuleExamples, Section, Spec};
pub use stream::{StreamOutput, StreamScanner};
