//! A policy's judge settings as compiled: when each stage is judged, how streams are, what a
//! failure counts as, and what each section tells a classifier. Data only, so that the compiled
//! program (`program.rs`) can hold them without depending on the judge's prompt and verdict
//! code ([`judge`](super::judge), which re-exports these types).

use std::time::Duration;

use crate::policy::Stage;

/// When a stage is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeMode {
    /// Never.
    Off,
    /// Only when an `escalate` rule fired.
    Escalation,
    /// Every text, against the judged sections.
    Always,
    /// A sample of texts, plus every escalation.
    Sampled,
}

/// How a streamed answer is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamJudgeMode {
    /// Nothing released before the verdict on the whole answer.
    Hold,
    /// Released up to the last judged sentence boundary; the next window is held.
    Checkpoint,
    /// Judged after release: audit and metrics only.
    Monitor,
}

/// What a judge failure (timeout, error, malformed verdict) counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// A violation: the text is refused.
    Closed,
    /// No violation: the text passes (the enforcement header says the judge failed).
    Open,
}

/// The policy's judge settings, compiled (defaults when the file has no `judge:` block).
#[derive(Debug, Clone)]
pub struct JudgePolicy {
    /// Per stage, in [`Stage::ALL`] order.
    pub modes: [JudgeMode; 3],
    /// Share of texts judged in `sampled` mode.
    pub sample_rate: f64,
    /// Sections judged in `always` / `sampled` mode.
    pub sections: Vec<String>,
    /// How streamed answers are judged.
    pub stream: StreamJudgeMode,
    /// Smallest window judged at a sentence boundary in `checkpoint` mode, in bytes.
    pub checkpoint_bytes: usize,
    /// Time the judge may take per text.
    pub budget: Duration,
    /// What a failure counts as.
    pub on_error: FailMode,
    /// Verdicts below this confidence count as no violation.
    pub min_confidence: f64,
}

impl Default for JudgePolicy {
    fn default() -> Self {
        JudgePolicy {
            modes: [JudgeMode::Escalation, JudgeMode::Escalation, JudgeMode::Off],
            sample_rate: 0.05,
            sections: Vec::new(),
            stream: StreamJudgeMode::Hold,
            checkpoint_bytes: 200,
            budget: Duration::from_millis(2000),
            on_error: FailMode::Closed,
            min_confidence: 0.0,
        }
    }
}

impl JudgePolicy {
    /// The mode of `stage`.
    pub fn mode(&self, stage: Stage) -> JudgeMode {
        self.modes[stage.index()]
    }

    /// Whether a text of `stage` whose (stable) hash is `text_hash` is judged without an
    /// escalation: `always`, or `sampled` and the hash falls in the sample. Deterministic, so
    /// a retried request is judged the same way.
    pub fn judges_unprompted(&self, stage: Stage, text_hash: u64) -> bool {
        match self.mode(stage) {
            JudgeMode::Always => true,
            JudgeMode::Sampled => {
                // The top 53 bits as a fraction in [0, 1).
                let x = (text_hash >> 11) as f64 / (1u64 << 53) as f64;
                x < self.sample_rate
            }
            JudgeMode::Off | JudgeMode::Escalation => false,
        }
    }
}

/// One definition of a section's judge fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The term.
    pub term: String,
    /// Its meaning.
    pub meaning: String,
}

/// A labeled example of a section.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeExample {
    /// The text.
    pub text: String,
    /// Whether it violates the section.
    pub violation: bool,
    /// Stage it is judged at.
    pub stage: Stage,
    /// Why.
    pub rationale: Option<String>,
}

/// What a judge needs to classify against one section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SectionJudge {
    /// Terms and meanings.
    pub definitions: Vec<Definition>,
    /// What violates it.
    pub violates: Vec<String>,
    /// What is safe.
    pub safe: Vec<String>,
    /// Labeled examples.
    pub examples: Vec<JudgeExample>,
}

impl SectionJudge {
    /// Whether a judge can classify against this section: it says both what violates it and
    /// what does not.
    pub fn is_ready(&self) -> bool {
        !self.violates.is_empty() && !self.safe.is_empty()
    }
}
