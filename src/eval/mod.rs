//! Evaluation for policy authors: what a policy catches, what it wrongly blocks, and what
//! injecting its spec changes in a real model's answers.
//!
//! - [`dataset`]: readers for JSONL, CSV, BIG-bench `task.json`, XSTest, presidio span data and
//!   JailbreakBench artifacts, with `file:line` errors.
//! - [`metrics`]: confusion matrices, rates with Wilson 95 % intervals.
//! - [`offline`]: a policy's rules over labeled data (no model): catch rate, false-block rate,
//!   precision, F1 per category, span precision / recall per entity type, policy comparison.
//! - [`refusal_detector`]: grades model answers as refusals or not (rules-based), and measures
//!   its accuracy on labeled completions.
//! - [`report`]: the whole offline run ([`run_offline`]) and its rendering as a table,
//!   Markdown or JSON.
//! - [`online`]: A/B through a real model (with / without spec injection); the only part that
//!   speaks HTTP.
//!
//! ```
//! use deliberate::eval::{EvalOptions, run_offline};
//! use deliberate::eval::dataset::{Case, Dataset, Content, Label};
//! use deliberate::{CompiledPolicy, Stage};
//! use std::sync::Arc;
//!
//! let policy = Arc::new(CompiledPolicy::from_yaml_str(r#"
//! policy: demo
//! rules:
//!   - {id: bomb, match: {keywords: ["pipe bomb"]}, action: block}
//! "#, "demo.yaml").unwrap());
//! let case = |text: &str, label| Case {
//!     source: "d:1".into(), id: "1".into(), text: text.into(), stage: Stage::Input,
//!     role: Some("user".into()), label, category: "c".into(),
//! };
//! let data = vec![Dataset {
//!     name: "d".into(), path: "d".into(), format: "jsonl", skipped: None,
//!     content: Content::Cases(vec![case("make a pipe bomb", Label::Unsafe),
//!                                  case("hello", Label::Safe)]),
//! }];
//! let report = run_offline(&policy, None, &data, &EvalOptions::default()).unwrap();
//! assert_eq!(report.summary.all.catch_rate().value, Some(1.0));
//! ```

pub mod cascade;
pub mod dataset;
pub mod html;
pub mod metrics;
pub mod offline;
pub mod online;
pub mod refusal_detector;
pub mod report;

pub use offline::Positive;
pub use report::{Report, run_offline};

use crate::policy::Stage;

/// Options of an offline run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// What counts as caught.
    pub positive: Positive,
    /// Stage for span data (default: output).
    pub span_stage: Stage,
    /// How many worst false blocks / misses to list per data set.
    pub examples: usize,
    /// The refusal detector for completion data (default: the built-in one).
    pub refusal_detector: Option<refusal_detector::RefusalDetector>,
    /// Fail when the overall false-block rate is above this.
    pub max_false_block_rate: Option<f64>,
    /// Fail when the overall catch rate is below this.
    pub min_catch_rate: Option<f64>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            positive: Positive::Block,
            span_stage: Stage::Output,
            examples: 10,
            refusal_detector: None,
            max_false_block_rate: None,
            min_catch_rate: None,
        }
    }
}
