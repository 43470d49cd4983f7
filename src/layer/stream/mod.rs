//! Output enforcement of a streamed answer, whatever the API.
//!
//! [`StreamFilter`] decodes the upstream's server-sent events and hands each to the adapter's
//! [`StreamRewriter`], which routes every text through an [`OutputFilter`] and re-encodes the
//! event with only what was released. Comments (keep-alives) pass on at once, head included; a fault before the
//! response head is answered with an error status, after it in-band in the API's own error
//! shape; when the rewriter says the stream is over, the upstream is dropped.

mod checkpoint;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::Body;

use super::audit::Outcome;
use super::error::{BoxError, Fault};
use super::exchange::Exchange;
use super::filter::{FilterState, OutputFilter};
use crate::wire::sse::{SseDecoder, SseItem, encode_comment};
use crate::wire::{Emit, Step, StreamEnd, StreamRewriter};

/// The text of every comment line passed on from the upstream (a keep-alive): the
/// upstream's own comment text is not scanned, so it is not sent.
const KEEP_ALIVE: &str = "keep-alive";

/// Filters one streamed response. See the [module docs](self).
pub(crate) struct StreamFilter {
    pub ex: Exchange,
    decoder: SseDecoder,
    items: Vec<SseItem>,
    out: Emit,
    rewriter: Box<dyn StreamRewriter>,
    state: FilterState,
    committed: bool,
    ended: bool,
    fault: Option<Fault>,
    /// Judge the released text after the stream ended (`monitor` mode).
    monitor: bool,
    /// `checkpoint` mode: what is held until the judge allows it.
    pub(crate) checkpoint: Option<Box<checkpoint::Checkpoint>>,
    /// One `output_scan` span over the whole stream (not one per piece).
    span: tracing::Span,
}

impl std::fmt::Debug for StreamFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFilter")
            .field("committed", &self.committed)
            .field("ended", &self.ended)
            .finish()
    }
}

/// Polls one frame of `inner` into `filter` (data, error or end); pending if none is ready.
pub(crate) fn feed<B>(
    inner: Pin<&mut B>,
    filter: &mut StreamFilter,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let frame = match inner.poll_frame(cx) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(f) => f,
    };
    // Entered only while scanning: the span's busy time is the stream's scanning time. Moved
    // out for the scan (no reference count to touch), put back after.
    let span = std::mem::replace(&mut filter.span, tracing::Span::none());
    let scanning = span.enter();
    match frame {
        Some(Ok(frame)) => {
            if let Ok(data) = frame.into_data() {
                filter.on_data(&data);
            }
        }
        Some(Err(e)) => {
            let e: BoxError = e.into();
            filter.fail(Fault::from_error(&*e));
        }
        None => {
            filter.on_eof();
            span.record("deliberate.action", filter.ex.record.action.as_str());
        }
    }
    drop(scanning);
    filter.span = span;
    Poll::Ready(())
}

/// Polls `inner` through `filter` until it has output (`Some`) or is done (`None`).
pub(crate) fn poll_next<B>(
    mut inner: Pin<&mut B>,
    filter: &mut StreamFilter,
    cx: &mut Context<'_>,
) -> Poll<Option<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if filter.checkpoint.is_some() {
        return checkpoint::poll(inner, filter, cx);
    }
    loop {
        if let Some(b) = filter.take_output() {
            return Poll::Ready(Some(b));
        }
        if filter.ended {
            return Poll::Ready(None);
        }
        if feed(inner.as_mut(), filter, cx).is_pending() {
            return Poll::Pending;
        }
    }
}

/// Polls `inner` through `filter` until the response head can go out (some payload is ready,
/// the stream ended, or it failed). Output stays queued in the filter.
pub(crate) fn poll_start<B>(
    mut inner: Pin<&mut B>,
    filter: &mut StreamFilter,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    loop {
        if filter.ready_to_commit() {
            return Poll::Ready(());
        }
        if feed(inner.as_mut(), filter, cx).is_pending() {
            return Poll::Pending;
        }
    }
}

// === impl StreamFilter ===

impl StreamFilter {
    pub fn new(ex: Exchange) -> Self {
        let max = ex.shared.opts.max_event_bytes;
        let rewriter = ex.adapter.stream(&ex.facts);
        let span = super::trace::output_scan(&ex.span, true);
        StreamFilter {
            span,
            ex,
            decoder: SseDecoder::new(max),
            items: Vec::new(),
            out: Emit::default(),
            rewriter,
            state: FilterState::streaming(),
            committed: false,
            ended: false,
            fault: None,
            monitor: false,
            checkpoint: None,
        }
    }

    /// Judges the released text window by window (`checkpoint` mode): nothing is sent before
    /// the judge allowed it; the head goes out at once.
    pub fn checkpoint(&mut self) {
        self.state.collect = true;
        let min = self
            .ex
            .set
            .policies()
            .iter()
            .map(|p| p.judge.checkpoint_bytes)
            .min()
            .unwrap_or(200);
        self.checkpoint = Some(Box::new(checkpoint::Checkpoint::new(min)));
        // The record waits for the last verdict.
        self.ex.hold_record();
    }

    /// Judges escalations (the stream is not judged unprompted, but a judge is configured):
    /// `escalate` rules on content text are flagged instead of acting as their fallback, and
    /// from the event that flags one, everything is held until the judge has read the content
    /// released so far — sent on if it allows, the stream ended in-band if it refuses. Until
    /// an escalation, the stream streams as without a judge (head included).
    pub fn escalations(&mut self) {
        self.state.collect = true;
        self.state.escalating = true;
        self.checkpoint = Some(Box::new(checkpoint::Checkpoint::escalations()));
        self.ex.hold_record();
    }

    /// Whether the stream is judged in `checkpoint` mode (its head goes out at once).
    pub fn is_checkpoint(&self) -> bool {
        self.checkpoint.as_ref().is_some_and(|c| !c.on_escalation)
    }

    /// The escalations flagged since the last call, and the text the judge reads for them:
    /// the content released so far and what the scanners still held when they were flagged.
    pub(crate) fn take_escalations(
        &mut self,
    ) -> (Vec<(usize, crate::engine::judge::Escalation)>, String) {
        let escalations = std::mem::take(&mut self.state.escalations);
        let held = std::mem::take(&mut self.state.escalation_held);
        if escalations.is_empty() {
            return (escalations, String::new());
        }
        let mut text = self.state.collected_text();
        text.push_str(&held);
        (escalations, text)
    }

    pub(crate) fn is_ended_upstream(&self) -> bool {
        self.ended
    }

    /// Ends the stream in-band after a judge refused a window: what is held is dropped, an
    /// error event in the API's shape ends the stream.
    pub(crate) fn refuse_in_band(&mut self, refusal: &str) {
        self.out.buf.clear();
        let info = crate::wire::ErrorInfo::new(
            crate::wire::ErrorKind::PolicyViolation,
            refusal,
            "content_policy_violation",
        );
        self.rewriter.error(&info, &mut self.out);
        self.ended = true;
        self.ex.override_outcome(Outcome::BlockedOutput);
        self.ex.finish(Outcome::BlockedOutput, None, None);
    }

    /// Keeps the released content text for the judge; with `monitor`, judges it in the
    /// background once the stream ended.
    pub fn collect(&mut self, monitor: bool) {
        self.state.collect = true;
        self.monitor = monitor;
    }

    /// The released content text (when collecting).
    pub fn collected_text(&self) -> String {
        self.state.collected_text()
    }

    /// A whole stream refusing every unit with `text`.
    pub fn refusal_bytes(&self, text: &str) -> Bytes {
        self.rewriter.refusal(text)
    }

    /// Headers are going out: from now on faults are reported in-band.
    pub fn commit(&mut self) {
        self.committed = true;
    }

    /// Whether the response head can be sent: some payload was released, or the stream ended.
    pub fn ready_to_commit(&self) -> bool {
        self.out.progress || self.ended
    }

    /// Whether the body has nothing more to send (HTTP servers stop polling a body that says
    /// so): output sent, and nothing held or ready in a judged stream's hold.
    pub fn is_ended(&self) -> bool {
        self.ended
            && self.out.buf.is_empty()
            && self.checkpoint.as_ref().is_none_or(|c| c.is_drained())
    }

    /// A fault before the head was sent; the caller answers it with an error status.
    pub fn take_fault(&mut self) -> Option<Fault> {
        self.fault.take()
    }

    /// What goes out with the response head: the output so far, unless it carries text an
    /// escalation holds for the judge (then the body's hold takes it).
    pub fn take_head_output(&mut self) -> Option<Bytes> {
        if !self.state.escalations.is_empty() {
            return None;
        }
        self.take_output()
    }

    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.buf.is_empty()).then(|| self.out.buf.split().freeze())
    }

    pub fn on_data(&mut self, data: &[u8]) {
        if self.ended {
            return;
        }
        let t = std::time::Instant::now();
        let mut items = std::mem::take(&mut self.items);
        let res = self.decoder.push_into(data, &mut items);
        for item in items.drain(..) {
            if self.ended {
                break;
            }
            match item {
                SseItem::Event(ev) => self.on_event(&ev),
                SseItem::Comment(_) => {
                    // A keep-alive from a slow model: passed on, and it lets the response
                    // head go out, so the client is not left waiting for headers. (A block
                    // after it ends the stream in-band instead of as a whole refusal.) Its
                    // text is the upstream's and nobody scans it: the client gets a comment
                    // of the gateway's own.
                    encode_comment(KEEP_ALIVE, &mut self.out.buf);
                    self.out.progress = true;
                }
                SseItem::Retry(_) => {}
            }
        }
        self.items = items;
        if let Err(e) = res {
            self.fail(Fault::Protocol(e.to_string()));
        }
        self.ex.gateway += t.elapsed();
    }

    pub fn on_eof(&mut self) {
        if self.ended {
            return;
        }
        match self.decoder.finish() {
            Ok(Some(ev)) => self.on_event(&ev),
            Ok(None) => {}
            Err(e) => return self.fail(Fault::Protocol(e.to_string())),
        }
        if self.ended {
            return;
        }
        let mut filter = OutputFilter {
            ex: &mut self.ex,
            state: &mut self.state,
        };
        let end = self.rewriter.end(&mut filter, &mut self.out);
        if !end.complete && !end.all_blocked {
            // The rewriter wrote the API's error event and terminator.
            self.ended = true;
            self.out.progress = true;
            self.ex.finish(
                Outcome::UpstreamError,
                None,
                Some(Fault::Truncated.message()),
            );
            return;
        }
        self.ended_with(
            end,
            Some("upstream stream ended without its terminal event"),
        );
    }

    /// The upstream failed. Before the head: reported to the caller; after: an error event
    /// and the end of the stream. Text still held is not released: it was never fully decided.
    pub fn fail(&mut self, fault: Fault) {
        if self.ended {
            return;
        }
        self.ended = true;
        let outcome = match fault {
            Fault::Timeout(_) => Outcome::Timeout,
            _ => Outcome::UpstreamError,
        };
        if self.committed {
            self.rewriter.error(&fault.info(), &mut self.out);
            self.ex.finish(outcome, None, Some(fault.message()));
        } else {
            self.out.buf.clear();
            self.fault = Some(fault);
        }
    }

    fn on_event(&mut self, ev: &crate::wire::SseEvent) {
        let mut filter = OutputFilter {
            ex: &mut self.ex,
            state: &mut self.state,
        };
        match self.rewriter.event(ev, &mut filter, &mut self.out) {
            Ok(Step::Continue) => {}
            Ok(Step::Ended(end)) => self.ended_with(end, None),
            Err(e) => self.fail(Fault::unreadable("stream event", &e)),
        }
    }

    /// The rewriter ended the stream (terminator written). When every unit was blocked before
    /// the head went out, the client gets a whole refusal instead, like a buffered block.
    fn ended_with(&mut self, end: StreamEnd, no_terminal: Option<&str>) {
        self.ended = true;
        self.out.progress = true;
        if self.monitor && !end.all_blocked {
            let text = self.state.collected_text();
            super::judging::monitor(&mut self.ex, text);
        }
        if end.all_blocked && !self.committed {
            let text = self.state.refusal.clone().unwrap_or_default();
            self.out.buf = BytesMut::from(&self.rewriter.refusal(&text)[..]);
            self.ex.finish(Outcome::BlockedOutput, None, None);
            return;
        }
        let outcome = if end.all_blocked {
            Outcome::BlockedOutput
        } else {
            Outcome::Completed
        };
        let error = (!end.terminal_seen && !end.all_blocked)
            .then_some(no_terminal)
            .flatten()
            .map(str::to_owned);
        self.ex.finish(outcome, None, error);
    }
}
