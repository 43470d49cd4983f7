//! Running the judge for one exchange: the texts the scans queued ([`JudgeJob`], defined with
//! the judge seam in `judge.rs`), their calls
//! in flight ([`JudgeBatch`]), and what the verdicts come to. A batch resolves at the first
//! text that must be refused (the others are dropped, cancelling their calls) or when every
//! call has answered.

use std::task::{Context, Poll};

use super::chain::ChainDecision;
use super::exchange::Exchange;
use super::judge::{JudgeError, JudgeFuture, JudgeJob, JudgeReason, JudgeRecord, Judged, resolve};
use super::policies::PolicySet;
use crate::engine::judge::{JudgeMode, StreamJudgeMode, judge_prompt, stable_hash};
use crate::policy::{Action, Stage};

/// How a streamed answer of this exchange is judged: `None` when no policy judges output
/// unprompted (or no judge is configured); else the strictest mode among the policies that do
/// (`hold` over `checkpoint` over `monitor`). `sampled` streams are sampled by request id.
pub(crate) fn stream_judging(ex: &Exchange) -> Option<StreamJudgeMode> {
    ex.shared.judge.as_ref()?;
    let rank = |m: StreamJudgeMode| match m {
        StreamJudgeMode::Hold => 2,
        StreamJudgeMode::Checkpoint => 1,
        StreamJudgeMode::Monitor => 0,
    };
    ex.set
        .policies()
        .iter()
        .filter(|p| {
            p.judge
                .judges_unprompted(Stage::Output, stable_hash(&[&ex.record.id]))
        })
        .map(|p| p.judge.stream)
        .max_by_key(|m| rank(*m))
}

/// Whether a streamed answer of this exchange waits for verdicts on escalations: a judge is
/// configured and some policy judges output at all (`escalation`, the default, included).
pub(crate) fn judges_escalations(ex: &Exchange) -> bool {
    ex.shared.judge.is_some()
        && ex
            .set
            .policies()
            .iter()
            .any(|p| p.judge.mode(Stage::Output) != JudgeMode::Off)
}

/// Queues the judge jobs for a whole streamed answer (`hold`): each policy that judges
/// output unprompted.
pub(crate) fn queue_answer(ex: &mut Exchange, text: &str) {
    let set = ex.set.clone();
    for (pi, p) in set.policies().iter().enumerate() {
        if p.judge.mode(Stage::Output) == JudgeMode::Off || text.trim().is_empty() {
            continue;
        }
        ex.judge_jobs.push(JudgeJob {
            pi,
            stage: Stage::Output,
            reason: if p.judge.mode(Stage::Output) == JudgeMode::Always {
                JudgeReason::Always
            } else {
                JudgeReason::Sampled
            },
            sections: p.judge.sections.clone(),
            rules: Vec::new(),
            text: text.to_owned(),
        });
    }
}

/// A text the judge says must be refused.
#[derive(Debug, Clone)]
pub(crate) struct JudgeBlock {
    /// The refusal text.
    pub refusal: String,
}

struct Call {
    job: JudgeJob,
    fut: Option<JudgeFuture>,
}

/// Judge calls in flight for one exchange. See the [module docs](self).
pub(crate) struct JudgeBatch {
    calls: Vec<Call>,
    /// A refusal decided when the batch started (a job no judge could take).
    early: Option<JudgeBlock>,
    /// The `judge` span: open from the first call to the batch's end.
    span: tracing::Span,
}

impl std::fmt::Debug for JudgeBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgeBatch")
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl JudgeBatch {
    /// Starts a call for each of the exchange's queued jobs; `None` when there are none. With
    /// no judge configured (jobs are only queued when there is one), every job fails closed.
    pub fn start(ex: &mut Exchange) -> Option<JudgeBatch> {
        let jobs = std::mem::take(&mut ex.judge_jobs);
        if jobs.is_empty() {
            return None;
        }
        let stage = jobs.first().map_or("", |j| j.stage.as_str());
        let span = super::trace::judge(&ex.span, stage, jobs.len());
        let judge = ex.shared.judge.clone();
        let policies = ex.set.clone();
        let mut calls = Vec::with_capacity(jobs.len());
        let mut early = None;
        for mut job in jobs {
            match (&judge, policies.policies().get(job.pi)) {
                (Some(j), Some(p)) => {
                    let prompt = judge_prompt(p, job.stage, &job.sections, &job.text);
                    job.sections = prompt.sections.clone();
                    // Called inside the `judge` span: an HTTP judge sends it as the parent.
                    let fut = span.in_scope(|| j.judge(prompt, p.judge.budget));
                    calls.push(Call {
                        job,
                        fut: Some(fut),
                    });
                }
                _ => {
                    // Fails as the policy says (closed by default).
                    let res = Err(JudgeError::Transport("no judge configured".to_owned()));
                    if let Some(b) = settle(ex, &job, &res) {
                        early.get_or_insert(b);
                    }
                }
            }
        }
        Some(JudgeBatch { calls, early, span })
    }

    /// Polls the calls; `Ready(Some(block))` at the first refusal, `Ready(None)` when every
    /// call answered and none refused. Each answer is recorded in the exchange.
    pub fn poll(&mut self, ex: &mut Exchange, cx: &mut Context<'_>) -> Poll<Option<JudgeBlock>> {
        if let Some(b) = self.early.take() {
            self.calls.clear();
            self.span.record("deliberate.judge.blocked", true);
            return Poll::Ready(Some(b));
        }
        let mut pending = false;
        for i in 0..self.calls.len() {
            let call = &mut self.calls[i];
            let res = match call.fut.as_mut() {
                None => continue,
                Some(f) => match f.as_mut().poll(cx) {
                    Poll::Pending => {
                        pending = true;
                        continue;
                    }
                    Poll::Ready(r) => r,
                },
            };
            call.fut = None;
            if let Some(block) = settle(ex, &call.job, &res) {
                // The other calls are dropped with the batch: their texts no longer matter.
                self.calls.clear();
                self.span.record("deliberate.judge.blocked", true);
                return Poll::Ready(Some(block));
            }
        }
        if pending {
            Poll::Pending
        } else {
            self.span.record("deliberate.judge.blocked", false);
            Poll::Ready(None)
        }
    }
}

/// Records one judge result in the exchange; the refusal when it blocks.
pub(crate) fn settle(
    ex: &mut Exchange,
    job: &JudgeJob,
    res: &Result<Judged, JudgeError>,
) -> Option<JudgeBlock> {
    let set = ex.set.clone();
    let policy = set.policies().get(job.pi)?;
    let (block, outcome) = resolve(res, policy.judge.on_error, policy.judge.min_confidence);
    let action = if block { Action::Block } else { Action::Allow };
    ex.judged(record(job, res, outcome, action));
    if !block {
        return None;
    }
    ex.act(Action::Block);
    let section = match res {
        Ok(j) => j.verdict.section.clone(),
        Err(_) => job.sections.first().cloned(),
    };
    Some(JudgeBlock {
        refusal: policy.refusal_for_section(section.as_deref()),
    })
}

/// The audit form of a judge result.
pub(crate) fn record(
    job: &JudgeJob,
    res: &Result<Judged, JudgeError>,
    outcome: &'static str,
    action: Action,
) -> JudgeRecord {
    JudgeRecord {
        stage: job.stage,
        reason: job.reason,
        sections: job.sections.clone(),
        rules: job.rules.clone(),
        outcome,
        verdict: res.as_ref().ok().map(|j| j.verdict.clone()),
        cached: res.as_ref().is_ok_and(|j| j.cached),
        action,
        latency_ms: res
            .as_ref()
            .map_or(0.0, |j| super::audit::millis(j.elapsed)),
        error: res.as_ref().err().map(ToString::to_string),
    }
}

/// Judges `text` (a released answer) in the background for each policy that judges output:
/// the verdicts reach the observer's [`judged_late`](super::Observer::judged_late), never the
/// client. A judge that cannot run calls in the background is recorded as skipped.
pub(crate) fn monitor(ex: &mut Exchange, text: String) {
    if text.trim().is_empty() {
        return;
    }
    let Some(judge) = ex.shared.judge.clone() else {
        return;
    };
    let set = ex.set.clone();
    for (pi, p) in set.policies().iter().enumerate() {
        if p.judge.mode(Stage::Output) == crate::engine::judge::JudgeMode::Off {
            continue;
        }
        let mut job = JudgeJob {
            pi,
            stage: Stage::Output,
            reason: JudgeReason::Always,
            sections: p.judge.sections.clone(),
            rules: Vec::new(),
            text: String::new(),
        };
        let prompt = judge_prompt(p, Stage::Output, &job.sections, &text);
        job.sections = prompt.sections.clone();
        if !judge.can_spawn() {
            let res = Err(JudgeError::Transport(
                "the judge cannot run in the background".into(),
            ));
            ex.judged(record(&job, &res, "skipped", Action::Allow));
            continue;
        }
        // The verdict comes later, to the observer; the record says it was asked for.
        ex.judged(JudgeRecord {
            stage: job.stage,
            reason: job.reason,
            sections: job.sections.clone(),
            rules: Vec::new(),
            outcome: "monitored",
            verdict: None,
            cached: false,
            action: Action::Allow,
            latency_ms: 0.0,
            error: None,
        });
        let fut = judge.judge(prompt, p.judge.budget);
        let observer = ex.shared.observer.clone();
        let id = ex.record.id.clone();
        let policy = p.clone();
        judge.spawn(
            fut,
            Box::new(move |res| {
                let (violation, outcome) =
                    resolve(&res, policy.judge.on_error, policy.judge.min_confidence);
                let action = if violation {
                    Action::Flag
                } else {
                    Action::Allow
                };
                let rec = record(&job, &res, outcome, action);
                if let Some(o) = observer {
                    o.judged_late(&id, &rec);
                }
            }),
        );
    }
}

/// Queues the judge jobs of one scanned text: its escalations, and (when `unprompted` is
/// allowed for this text) the policies that judge the stage `always` or `sampled`.
pub(crate) fn queue_jobs(
    ex: &mut Exchange,
    set: &PolicySet,
    d: &ChainDecision,
    stage: Stage,
    text: &str,
    unprompted: bool,
    location: &dyn Fn() -> String,
) {
    for f in &d.escalated {
        ex.escalated_finding(f, location);
    }
    for (pi, esc, read) in &d.escalations {
        ex.judge_jobs
            .push(JudgeJob::escalation(*pi, stage, esc.clone(), read.clone()));
    }
    if !unprompted {
        return;
    }
    for (pi, p) in set.policies().iter().enumerate() {
        if d.escalations.iter().any(|(e, _, _)| *e == pi) {
            continue;
        }
        if let Some(job) = JudgeJob::unprompted(pi, p, stage, text) {
            ex.judge_jobs.push(job);
        }
    }
}
