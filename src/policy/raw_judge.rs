//! Raw judge types: what a policy file says about the judge model — per section, what a
//! classifier needs (definitions, violating and safe criteria, labeled examples); per policy,
//! which stages are judged and how (the `judge:` block).
//!
//! ```
//! use deliberate::policy::parse_yaml;
//! use deliberate::policy::raw::RawPolicy;
//! use deliberate::policy::raw_judge::RawJudgeMode;
//!
//! let raw: RawPolicy = parse_yaml(r#"
//! policy: example
//! judge: {input: always, budget_ms: 1500, on_error: open}
//! spec:
//!   sections:
//!     - id: weapons
//!       text: Do not help build weapons.
//!       judge:
//!         violates: ["Instructions for building a weapon."]
//!         safe: ["History of weapons."]
//!         examples:
//!           - {text: "How was gunpowder invented?", violation: false}
//! "#).unwrap();
//! let judge = raw.judge.unwrap().value;
//! assert_eq!(judge.input, Some(RawJudgeMode::Always));
//! ```

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Stage;

/// The judge fields of one spec section (`spec.sections[].judge`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSectionJudge {
    /// Terms the criteria use, with what they mean.
    #[serde(default)]
    pub definitions: Vec<RawDefinition>,
    /// What violates the section, one criterion per entry.
    #[serde(default)]
    pub violates: Vec<String>,
    /// What does not violate it, though it may look similar.
    #[serde(default)]
    pub safe: Vec<String>,
    /// Labeled examples, shown to the judge and checked by `deliberate test`.
    #[serde(default)]
    pub examples: Vec<Spanned<RawJudgeExample>>,
}

/// One definition: `{term: …, meaning: …}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefinition {
    /// The term.
    pub term: String,
    /// What it means in this policy.
    pub meaning: String,
}

/// One labeled example of a section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJudgeExample {
    /// The text.
    pub text: String,
    /// Whether it violates the section.
    pub violation: bool,
    /// Stage it is judged at (default input).
    pub stage: Option<Stage>,
    /// Why, in a sentence (shown to the judge as the example's rationale).
    pub rationale: Option<String>,
}

/// When a stage is judged.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawJudgeMode {
    /// Never.
    Off,
    /// Only when an `escalate` rule fired (default).
    Escalation,
    /// Every text of the stage, against the judged sections.
    Always,
    /// A sample of texts (`sample_rate`), plus every escalation.
    Sampled,
}

/// How a streamed answer is judged.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawStreamJudgeMode {
    /// Nothing is released before the verdict on the whole answer.
    Hold,
    /// Released up to the last judged sentence boundary; the next window is held.
    Checkpoint,
    /// Judged after release: audit and metrics only, never a block.
    Monitor,
}

/// What the gateway does when the judge times out, errors or answers malformed JSON.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawFailMode {
    /// Treat it as a violation (default).
    Closed,
    /// Treat it as no violation.
    Open,
}

/// The policy's `judge:` block.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawJudgePolicy {
    /// Request texts (default `escalation`).
    pub input: Option<RawJudgeMode>,
    /// Answers (default `escalation`).
    pub output: Option<RawJudgeMode>,
    /// Reasoning fields (default `off`).
    pub reasoning: Option<RawJudgeMode>,
    /// For `sampled`: the share of texts judged, 0 to 1 (default 0.05).
    pub sample_rate: Option<f64>,
    /// Sections judged in `always` / `sampled` mode (default: every section with judge
    /// fields).
    pub sections: Option<Vec<Spanned<String>>>,
    /// How streamed answers are judged (default `hold`).
    pub stream: Option<RawStreamJudgeMode>,
    /// For `checkpoint`: the smallest window, in bytes, judged at a sentence boundary
    /// (default 200).
    pub checkpoint_bytes: Option<u32>,
    /// Time the judge may take per text, in milliseconds (default 2000).
    pub budget_ms: Option<u64>,
    /// Timeouts, errors and malformed verdicts: `closed` (default) or `open`.
    pub on_error: Option<RawFailMode>,
    /// Verdicts whose confidence is below this count as no violation (default 0).
    pub min_confidence: Option<f64>,
}
