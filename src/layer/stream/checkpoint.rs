//! Streams judged in `checkpoint` mode: the text the rules release is held, window by window,
//! until the judge allows it. A window closes once it holds a sentence boundary at or past the
//! policy's `checkpoint_bytes` (or at four times that without one, or at the end of the
//! stream); the judge reads everything released so far, so each verdict has the context. While
//! one window is judged, the next one fills (and stays held). A refusal drops whatever is held
//! and ends the stream in-band with an error event: no byte of a judged-unsafe window is sent.
//!
//! A stream judged on escalation only (a judge configured, no policy judging streams
//! unprompted) uses the same hold without windows: it streams until an `escalate` rule flags
//! content text, then holds everything until the judge has read the content so far.
//!
//! Windows close at event edges: the text of one upstream event is never split, so a window
//! runs past its sentence boundary by the rest of the text released with it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::Body;

use super::{StreamFilter, feed};
use crate::layer::error::BoxError;
use crate::layer::judge::{JudgeJob, JudgeReason};
use crate::layer::judging::JudgeBatch;
use crate::policy::Stage;

/// What a checkpointed stream holds.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    /// Released by the rules, not yet allowed by the judge.
    held: BytesMut,
    /// The judgment in flight and how many bytes of `held` it covers.
    judging: Option<(usize, JudgeBatch)>,
    /// Bytes of collected text a judgment covered (allowed, or in flight).
    judged: usize,
    /// Smallest window.
    min: usize,
    /// Allowed bytes waiting to be sent.
    ready: Option<Bytes>,
    done: bool,
    /// Judged on escalation only: windows are not judged; everything streams until an
    /// `escalate` rule flags content text, then is held until the verdict.
    pub on_escalation: bool,
}

impl Checkpoint {
    pub fn new(min: usize) -> Self {
        Checkpoint {
            held: BytesMut::new(),
            judging: None,
            judged: 0,
            min: min.max(1),
            ready: None,
            done: false,
            on_escalation: false,
        }
    }

    /// Whether everything was sent: the stream's verdicts are in and nothing is held.
    pub fn is_drained(&self) -> bool {
        self.done && self.ready.is_none() && self.held.is_empty()
    }

    /// The hold of a stream judged on escalation only (see
    /// [`StreamFilter::escalations`](super::StreamFilter::escalations)).
    pub fn escalations() -> Self {
        Checkpoint {
            on_escalation: true,
            ..Checkpoint::new(1)
        }
    }
}

/// Whether a window closes: it has a sentence boundary at or past `min` bytes, or is four
/// times that long without one.
fn closes(window: &str, min: usize) -> bool {
    window.len() >= 4 * min
        || window.char_indices().any(|(i, c)| {
            i + c.len_utf8() >= min && matches!(c, '.' | '!' | '?' | '\n' | '。' | '！' | '？')
        })
}

/// [`poll_next`](crate::layer::stream::poll_next) for a checkpointed stream.
pub(crate) fn poll<B>(
    mut inner: Pin<&mut B>,
    filter: &mut StreamFilter,
    cx: &mut Context<'_>,
) -> Poll<Option<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let Some(mut cp) = filter.checkpoint.take() else {
        return Poll::Ready(None);
    };
    let out = step(&mut cp, inner.as_mut(), filter, cx);
    filter.checkpoint = Some(cp);
    out
}

fn step<B>(
    cp: &mut Checkpoint,
    mut inner: Pin<&mut B>,
    filter: &mut StreamFilter,
    cx: &mut Context<'_>,
) -> Poll<Option<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    loop {
        if let Some(b) = cp.ready.take() {
            return Poll::Ready(Some(b));
        }
        if cp.done {
            return Poll::Ready(filter.take_output());
        }
        // 1. A verdict on the window in flight.
        if poll_verdict(cp, filter, cx) {
            continue;
        }
        // 2. Escalations are queued before their output is held: the output of the same
        // events carries their text.
        if cp.on_escalation {
            queue_escalations(filter);
        }
        // 3. What the rules released is held.
        if let Some(b) = filter.take_output() {
            cp.held.extend_from_slice(&b);
        }
        let ended = filter.is_ended_upstream();
        // 4. With no verdict pending: judge, send or finish.
        if cp.judging.is_none() {
            let progressed = if cp.on_escalation {
                next_escalation(cp, filter, ended)
            } else {
                next_window(cp, filter, ended)
            };
            if progressed {
                continue;
            }
        }
        if ended {
            // Waiting for the verdict only.
            return Poll::Pending;
        }
        if feed(inner.as_mut(), filter, cx).is_pending() {
            return Poll::Pending;
        }
    }
}

/// What a verdict on the window in flight comes to: `true` when it settled (allowed: its
/// bytes are ready; refused: the stream ended in-band), `false` while it is pending.
fn poll_verdict(cp: &mut Checkpoint, filter: &mut StreamFilter, cx: &mut Context<'_>) -> bool {
    let Some((n, batch)) = cp.judging.as_mut() else {
        return false;
    };
    match batch.poll(&mut filter.ex, cx) {
        Poll::Ready(None) => {
            let n = *n;
            cp.judging = None;
            let allowed = cp.held.split_to(n).freeze();
            if !allowed.is_empty() {
                cp.ready = Some(allowed);
            }
            true
        }
        Poll::Ready(Some(block)) => {
            cp.judging = None;
            cp.held.clear();
            filter.refuse_in_band(&block.refusal);
            filter.ex.release_record();
            cp.done = true;
            true
        }
        Poll::Pending => false,
    }
}

/// `checkpoint` mode with no verdict pending: a window closes (judge everything released
/// so far), or the stream ended (the tail goes). `false`: nothing to do until more is read.
fn next_window(cp: &mut Checkpoint, filter: &mut StreamFilter, ended: bool) -> bool {
    let text = filter.collected_text();
    let window = text.get(cp.judged..).unwrap_or("");
    if !window.trim().is_empty() && (ended || closes(window, cp.min)) {
        queue(filter, &text);
        cp.judged = text.len();
        match JudgeBatch::start(&mut filter.ex) {
            Some(batch) => cp.judging = Some((cp.held.len(), batch)),
            // No policy judges output: the window goes as it is.
            None => {
                let all = cp.held.split().freeze();
                if !all.is_empty() {
                    cp.ready = Some(all);
                }
            }
        }
        return true;
    }
    if ended {
        finish(cp, filter);
        return true;
    }
    false
}

/// Escalation-only mode with no verdict pending: escalations queued go to the judge (all
/// that is held waits for them); else what is held goes, or the stream is finished.
fn next_escalation(cp: &mut Checkpoint, filter: &mut StreamFilter, ended: bool) -> bool {
    if let Some(batch) = JudgeBatch::start(&mut filter.ex) {
        cp.judging = Some((cp.held.len(), batch));
        return true;
    }
    if !cp.held.is_empty() {
        cp.ready = Some(cp.held.split().freeze());
        return true;
    }
    if ended {
        finish(cp, filter);
        return true;
    }
    false
}

/// Nothing left to judge: the tail (terminator) goes, the record is written.
fn finish(cp: &mut Checkpoint, filter: &mut StreamFilter) {
    let rest = cp.held.split().freeze();
    filter.ex.release_record();
    cp.done = true;
    if !rest.is_empty() {
        cp.ready = Some(rest);
    }
}

/// Queues a judge job for each escalation flagged since the last look, on the text the
/// stream filter gives with them (the content so far and what the scanners still hold).
/// Escalations flagged while a verdict is pending are judged after it, on the text as it was
/// when they were flagged.
fn queue_escalations(filter: &mut StreamFilter) {
    let (escalations, text) = filter.take_escalations();
    for (pi, esc) in escalations {
        filter
            .ex
            .judge_jobs
            .push(JudgeJob::escalation(pi, Stage::Output, esc, text.clone()));
    }
}

/// Queues one output job per policy that judges output.
fn queue(filter: &mut StreamFilter, text: &str) {
    let set = filter.ex.set.clone();
    for (pi, p) in set.policies().iter().enumerate() {
        if p.judge.mode(Stage::Output) == crate::engine::judge::JudgeMode::Off {
            continue;
        }
        filter.ex.judge_jobs.push(JudgeJob {
            pi,
            stage: Stage::Output,
            reason: JudgeReason::Always,
            sections: p.judge.sections.clone(),
            rules: Vec::new(),
            text: text.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::closes;

    #[test]
    fn windows_close_at_a_boundary_past_the_minimum() {
        assert!(!closes("Short. ", 20));
        assert!(closes("This is long enough. And more", 20));
        assert!(!closes("This has no boundary at all", 20));
        assert!(closes(&"x".repeat(80), 20));
    }
}
