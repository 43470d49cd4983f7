//! The judge seam of the layer: [`Judge`] is any classifier model the layer can ask about a
//! text (the `proxy` implements it over an OpenAI-compatible endpoint; tests script one). The
//! layer decides *when* to ask (escalations, `always`, `sampled`) and what a verdict or a
//! failure does; the judge decides *how* to ask, within the budget it is given.
//!
//! A judge must resolve every call within its `budget` (answering [`JudgeError::Timeout`]
//! when it runs out): the layer has no timer of its own, so it can run on any executor.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::engine::CompiledPolicy;
use crate::engine::judge::{Escalation, FailMode, JudgeMode, JudgePrompt, Verdict, stable_hash};
use crate::policy::{Action, Stage};

/// What a judge call resolves to.
pub type JudgeFuture = Pin<Box<dyn Future<Output = Result<Judged, JudgeError>> + Send>>;

/// A classifier model the layer asks about texts. See the [module docs](self).
pub trait Judge: Send + Sync + 'static {
    /// Judges one text (`prompt.user`) against `prompt.system`; resolves within `budget`.
    fn judge(&self, prompt: JudgePrompt, budget: Duration) -> JudgeFuture;

    /// Judges after the text was released (stream `monitor` mode): the layer does not wait.
    /// The implementation runs `call` in the background and hands the result to `done`; the
    /// default drops it (the layer then records the judge as skipped).
    fn spawn(&self, call: JudgeFuture, done: Box<dyn FnOnce(Result<Judged, JudgeError>) + Send>) {
        let _ = (call, done);
    }

    /// Whether [`spawn`](Judge::spawn) runs calls (monitor mode is possible).
    fn can_spawn(&self) -> bool {
        false
    }
}

/// A verdict, with how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The verdict.
    pub verdict: Verdict,
    /// Whether it came from the verdict cache.
    pub cached: bool,
    /// Time the call took.
    pub elapsed: Duration,
}

/// Why a judge gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JudgeError {
    /// The budget ran out (waiting for a slot or for the answer).
    #[error("the judge did not answer within {0:?}")]
    Timeout(Duration),
    /// The endpoint answered an error status.
    #[error("the judge answered status {0}")]
    Status(u16),
    /// The endpoint could not be reached or the connection failed.
    #[error("judge transport error: {0}")]
    Transport(String),
    /// The answer was not a verdict (see [`crate::engine::judge::parse_verdict`]).
    #[error("{0}")]
    Malformed(String),
}

impl JudgeError {
    /// Short name for headers and metrics: `timeout`, `error`, `malformed`.
    pub fn kind(&self) -> &'static str {
        match self {
            JudgeError::Timeout(_) => "timeout",
            JudgeError::Status(_) | JudgeError::Transport(_) => "error",
            JudgeError::Malformed(_) => "malformed",
        }
    }
}

/// Why a text was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeReason {
    /// An `escalate` rule fired.
    Escalation,
    /// The stage is judged `always`.
    Always,
    /// The text fell in the `sampled` share.
    Sampled,
}

/// One judge call, as the audit record keeps it. The rationale stays here: it is never sent to
/// the client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeRecord {
    /// Stage judged.
    pub stage: Stage,
    /// Why.
    pub reason: JudgeReason,
    /// Sections asked about.
    pub sections: Vec<String>,
    /// Rules that escalated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// `violation`, `no_violation`, `low_confidence`, `timeout`, `error`, `malformed`,
    /// `skipped` or `monitored`.
    pub outcome: &'static str,
    /// The verdict, when there was one.
    pub verdict: Option<Verdict>,
    /// Whether the verdict came from the cache.
    pub cached: bool,
    /// What the gateway did with it.
    pub action: Action,
    /// Call time, in milliseconds.
    pub latency_ms: f64,
    /// The failure, when there was one.
    pub error: Option<String>,
}

/// What a judge result comes to for a text: block or not, and the record of it.
pub(crate) fn resolve(
    res: &Result<Judged, JudgeError>,
    on_error: FailMode,
    min_confidence: f64,
) -> (bool, &'static str) {
    match res {
        Ok(j) if j.verdict.violation && j.verdict.confidence >= min_confidence => {
            (true, "violation")
        }
        Ok(j) if j.verdict.violation => (false, "low_confidence"),
        Ok(_) => (false, "no_violation"),
        Err(e) => (on_error == FailMode::Closed, e.kind()),
    }
}

/// A text waiting for the judge.
#[derive(Debug, Clone)]
pub(crate) struct JudgeJob {
    /// Index of the policy (in the exchange's set) that asks.
    pub pi: usize,
    pub stage: Stage,
    pub reason: JudgeReason,
    /// Sections to judge against (empty: the policy's judged sections).
    pub sections: Vec<String>,
    /// Escalated rule ids.
    pub rules: Vec<String>,
    pub text: String,
}

impl JudgeJob {
    /// The job for an escalation of policy `pi`.
    pub fn escalation(pi: usize, stage: Stage, esc: Escalation, text: String) -> Self {
        JudgeJob {
            pi,
            stage,
            reason: JudgeReason::Escalation,
            sections: esc.sections,
            rules: esc.rules,
            text,
        }
    }

    /// The job when `policy` judges `text` at `stage` unprompted (`always`, or `sampled` and
    /// the text is in the sample), else `None`.
    pub fn unprompted(
        pi: usize,
        policy: &CompiledPolicy,
        stage: Stage,
        text: &str,
    ) -> Option<Self> {
        if text.trim().is_empty() || !policy.judge.judges_unprompted(stage, stable_hash(&[text])) {
            return None;
        }
        let reason = match policy.judge.mode(stage) {
            JudgeMode::Always => JudgeReason::Always,
            _ => JudgeReason::Sampled,
        };
        Some(JudgeJob {
            pi,
            stage,
            reason,
            sections: policy.judge.sections.clone(),
            rules: Vec::new(),
            text: text.to_owned(),
        })
    }
}
