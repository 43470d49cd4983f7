//! A streamed Responses answer, event by event.
//!
//! One concern: the event-by-event rewrite of one Responses stream (long because each event
//! family's whole-text repeats are reconciled with what its channel released).
//!
//! An output item announced again at an `output_index` that already had events is an upstream
//! protocol fault: the stream ends with an `error` event and nothing held is released.
//!
//! Each delta event (`response.output_text.delta`, `response.function_call_arguments.delta`,
//! …, and any unknown `*.delta` event with a string `delta`) is routed by `output_index` and
//! `content_index` / `summary_index` to its own channel of the [`TextFilter`]; the event goes on
//! with only the released text (or is dropped when nothing was released). Every event that
//! repeats a whole text — each `.done`, `response.content_part.done`,
//! `response.output_item.done`, `response.completed` / `incomplete` / `failed` — first closes
//! the channel (its held text goes out as one more delta event), then carries exactly what was
//! released on that channel, never the upstream's copy. Sequence numbers are rewritten to stay
//! contiguous after events are added or dropped.
//!
//! A block ends the stream in-band: the open parts and items are closed with what was
//! released (`status: "incomplete"`), a refusal message is streamed as one more output item,
//! and `response.incomplete` (`incomplete_details.reason: "content_filter"`) ends it.

use bytes::Bytes;
use serde_json::{Value, json};

use super::answer;
use super::events::{Chan, delta_event, delta_part, done_part, index};
use super::items::{self, Got, Part, SKIP};
use super::refusal::{
    mark_blocked, refusal_item_events, refusal_stream, response_object, write_event,
};
use crate::wire::walk;
use crate::wire::{
    Channel, ChannelKind, Emit, ErrorInfo, ErrorKind, SseEvent, Step, StreamEnd, StreamRewriter,
    TextFilter, Verdict, WireError,
};

/// Top-level members of an event that route it and hold no text: its type, indices and the
/// item id.
const EVENT_SKIP: &[&str] = &[
    "type",
    "sequence_number",
    "output_index",
    "content_index",
    "summary_index",
    "item_id",
];

/// An output item the client saw announced (`response.output_item.added`).
#[derive(Debug)]
struct Item {
    oi: usize,
    /// As sent, with the parts added since; the last version sent once done.
    item: Value,
    done: bool,
    /// `content_index`es of parts added and not yet done.
    open_parts: Vec<usize>,
}

/// How a whole-text event's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// An announcement (`added`): its text, if any, is the first piece of the channel.
    Initial,
    /// A repeat of the whole text (`done`, `completed`): the channel is closed; it carries
    /// what was released.
    Final,
}

/// Rewrites one streamed Responses answer. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ResponsesStream {
    model: String,
    seq: Option<u64>,
    template: Option<Value>,
    chans: Vec<Chan>,
    items: Vec<Item>,
    /// Delta events released by closing channels, to go out before the current event.
    pending: Vec<Value>,
    ended: Option<StreamEnd>,
    terminal_seen: bool,
}

impl ResponsesStream {
    pub(crate) fn new(model: &str) -> Self {
        ResponsesStream {
            model: model.to_owned(),
            seq: None,
            template: None,
            chans: Vec::new(),
            items: Vec::new(),
            pending: Vec::new(),
            ended: None,
            terminal_seen: false,
        }
    }

    fn write(&mut self, event: Value, out: &mut Emit) {
        let mut seq = self.seq.unwrap_or(0);
        write_event(event, &mut seq, &mut out.buf);
        self.seq = Some(seq);
    }

    fn flush_pending(&mut self, out: &mut Emit) {
        for e in std::mem::take(&mut self.pending) {
            out.progress = true;
            self.write(e, out);
        }
    }

    fn chan(
        &mut self,
        filter: &mut dyn TextFilter,
        oi: usize,
        part: &Part,
        item_id: &Value,
    ) -> usize {
        if let Some(i) = self
            .chans
            .iter()
            .position(|c| c.oi == oi && c.part == *part)
        {
            if self.chans[i].item_id.is_null() {
                self.chans[i].item_id = item_id.clone();
            }
            return i;
        }
        let id = filter.open(part.channel(oi));
        self.chans.push(Chan {
            oi,
            part: part.clone(),
            id,
            item_id: item_id.clone(),
            received: 0,
            released: String::new(),
            closed: false,
            stripped: false,
        });
        self.chans.len() - 1
    }

    /// Pushes `text` into channel `ci`; returns what may go out now.
    fn push(
        &mut self,
        filter: &mut dyn TextFilter,
        ci: usize,
        text: &str,
    ) -> Result<String, String> {
        let c = &mut self.chans[ci];
        if c.closed || text.is_empty() {
            return Ok(String::new());
        }
        c.received += text.len();
        match filter.push(c.id, text) {
            Verdict::Send(s) if !c.stripped => {
                c.released.push_str(&s);
                Ok(s)
            }
            Verdict::Send(_) | Verdict::Strip => {
                c.stripped = true;
                Ok(String::new())
            }
            Verdict::Block { refusal: r, .. } => Err(r),
        }
    }

    /// Closes channel `ci`, after pushing what `full` has beyond what was received; what comes
    /// out is queued as one more delta event.
    fn finish(
        &mut self,
        filter: &mut dyn TextFilter,
        ci: usize,
        full: Option<&str>,
    ) -> Result<(), String> {
        if self.chans[ci].closed {
            return Ok(());
        }
        let mut out = String::new();
        let received = self.chans[ci].received;
        if let Some(rest) = full
            .filter(|f| f.len() > received)
            .and_then(|f| f.get(received..))
        {
            out = self.push(filter, ci, rest)?;
        }
        let c = &mut self.chans[ci];
        c.closed = true;
        match filter.close(c.id) {
            Verdict::Send(s) if !c.stripped => {
                c.released.push_str(&s);
                out.push_str(&s);
            }
            Verdict::Send(_) | Verdict::Strip => c.stripped = true,
            Verdict::Block { refusal: r, .. } => return Err(r),
        }
        if !out.is_empty() {
            let e = delta_event(&self.chans[ci], &out);
            self.pending.push(e);
        }
        Ok(())
    }

    /// Closes every open channel of output item `oi` (all items when `None`).
    fn finish_all(&mut self, filter: &mut dyn TextFilter, oi: Option<usize>) -> Result<(), String> {
        for ci in 0..self.chans.len() {
            if oi.is_none_or(|o| self.chans[ci].oi == o) {
                self.finish(filter, ci, None)?;
            }
        }
        Ok(())
    }

    /// One text of a whole-text event, read in `mode`.
    fn text(
        &mut self,
        filter: &mut dyn TextFilter,
        mode: Mode,
        oi: usize,
        item_id: &Value,
        part: &Part,
        s: &mut String,
    ) -> Got {
        if matches!(part, Part::Name | Part::Other(_)) {
            let mut changed = false;
            return answer::scan_whole(filter, &part.channel(oi), s, &mut changed);
        }
        let ci = self.chan(filter, oi, part, item_id);
        let r = match mode {
            Mode::Initial => self.push(filter, ci, s).map(|t| *s = t),
            Mode::Final => self.finish(filter, ci, Some(s)).map(|()| {
                s.clone_from(&self.chans[ci].released);
            }),
        };
        match r {
            Err(b) => Got::Block(b),
            Ok(()) if self.chans[ci].stripped => Got::Strip,
            Ok(()) => Got::Keep,
        }
    }

    /// Rewrites an output item in `mode`.
    fn item(
        &mut self,
        filter: &mut dyn TextFilter,
        mode: Mode,
        oi: usize,
        item: &mut Value,
    ) -> Result<(), String> {
        if items::is_encrypted(item) {
            filter.partial(items::ENCRYPTED_REASONING);
        }
        let item_id = item.get("id").cloned().unwrap_or(Value::Null);
        let flow = items::rewrite_item(item, oi, &mut |part, _, s| {
            self.text(filter, mode, oi, &item_id, part, s)
        });
        if let std::ops::ControlFlow::Break(b) = flow {
            return Err(b);
        }
        if mode == Mode::Final {
            self.finish_all(filter, Some(oi))?;
            answer::drop_logprobs(item, true);
        }
        Ok(())
    }

    /// Generic whole-text scan of every string of an event (unknown events, annotations).
    fn generic(filter: &mut dyn TextFilter, v: &mut Value, at: &str) -> Result<(), String> {
        let mut skip = SKIP.to_vec();
        skip.extend(["sequence_number", "output_index", "content_index"]);
        let flow = walk::strings(v, at, &skip, &mut |s, loc| {
            let ch = Channel::new(ChannelKind::Other, 0, loc);
            match answer::scan_whole(filter, &ch, s, &mut false) {
                Got::Block(b) => std::ops::ControlFlow::Break(b),
                _ => std::ops::ControlFlow::Continue(()),
            }
        });
        match flow {
            std::ops::ControlFlow::Break(b) => Err(b),
            std::ops::ControlFlow::Continue(()) => Ok(()),
        }
    }

    /// Every top-level member of event `v` but `handled` and [`EVENT_SKIP`], scanned by
    /// [`generic`](Self::generic): an extra field of a known event is read like an unknown
    /// event's.
    fn rest(filter: &mut dyn TextFilter, v: &mut Value, handled: &[&str]) -> Result<(), String> {
        let Value::Object(m) = v else {
            return Ok(());
        };
        for (k, e) in m.iter_mut() {
            if handled.contains(&k.as_str()) || EVENT_SKIP.contains(&k.as_str()) {
                continue;
            }
            Self::generic(filter, e, k)?;
        }
        Ok(())
    }

    fn on_event(
        &mut self,
        mut v: Value,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<bool, String> {
        let t = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let oi = index(&v, "output_index");
        let item_id = v.get("item_id").cloned().unwrap_or(Value::Null);
        if let Some((part, field)) = delta_part(&t, &v) {
            Self::rest(filter, &mut v, &[field])?;
            let ci = self.chan(filter, oi, &part, &item_id);
            let text = v
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let sent = self.push(filter, ci, &text)?;
            if sent.is_empty() {
                return Ok(false);
            }
            if sent != text && v.get("logprobs").is_some() {
                v["logprobs"] = json!([]);
            }
            v[field] = Value::String(sent);
            out.progress = true;
            self.write(v, out);
            return Ok(false);
        }
        if let Some((part, field)) = done_part(&t, &v) {
            // `logprobs` goes out emptied, `name` is scanned below.
            let name = if v.get("name").is_some_and(Value::is_string) {
                "name"
            } else {
                field
            };
            Self::rest(filter, &mut v, &[field, name, "logprobs"])?;
            let ci = self.chan(filter, oi, &part, &item_id);
            let full = v.get(field).and_then(Value::as_str).map(str::to_owned);
            self.finish(filter, ci, full.as_deref())?;
            if let Some(Value::String(name)) = v.get_mut("name") {
                let ch = Part::Name.channel(oi);
                if let Got::Block(b) = answer::scan_whole(filter, &ch, name, &mut false) {
                    return Err(b);
                }
            }
            self.flush_pending(out);
            if self.chans[ci].stripped {
                return Ok(false);
            }
            v[field] = Value::String(self.chans[ci].released.clone());
            if v.get("logprobs").is_some() {
                v["logprobs"] = json!([]);
            }
            self.write(v, out);
            return Ok(false);
        }
        match t.as_str() {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = v.get_mut("response") {
                    answer::hide_spec(r);
                    if let std::ops::ControlFlow::Break(b) =
                        answer::rewrite_response(r, filter, &mut false)
                    {
                        return Err(b);
                    }
                    self.template = Some(r.clone());
                }
                Self::rest(filter, &mut v, &["response"])?;
            }
            "response.output_item.added" | "response.output_item.done" => {
                let mode = if t.ends_with("added") {
                    Mode::Initial
                } else {
                    Mode::Final
                };
                if let Some(item) = v.get_mut("item") {
                    self.item(filter, mode, oi, item)?;
                    let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
                    out.progress |= kind.ends_with("_call");
                    let snapshot = item.clone();
                    match self.items.iter_mut().find(|i| i.oi == oi) {
                        Some(i) => {
                            i.item = snapshot;
                            i.done = mode == Mode::Final;
                        }
                        None => self.items.push(Item {
                            oi,
                            item: snapshot,
                            done: mode == Mode::Final,
                            open_parts: Vec::new(),
                        }),
                    }
                }
                Self::rest(filter, &mut v, &["item"])?;
                self.flush_pending(out);
            }
            "response.content_part.added" | "response.content_part.done" => {
                let mode = if t.ends_with("added") {
                    Mode::Initial
                } else {
                    Mode::Final
                };
                let cx = index(&v, "content_index");
                if let Some(p) = v.get_mut("part") {
                    let flow = items::content_part(p, cx, &mut |part, s| match self
                        .text(filter, mode, oi, &item_id, &part, s)
                    {
                        Got::Keep => std::ops::ControlFlow::Continue(true),
                        Got::Strip => std::ops::ControlFlow::Continue(false),
                        Got::Block(b) => std::ops::ControlFlow::Break(b),
                    });
                    if let std::ops::ControlFlow::Break(b) = flow {
                        return Err(b);
                    }
                    let part = p.clone();
                    if let Some(i) = self.items.iter_mut().find(|i| i.oi == oi) {
                        i.open_parts.retain(|&c| c != cx);
                        if mode == Mode::Initial {
                            i.open_parts.push(cx);
                        }
                        if let Some(Value::Array(content)) = i.item.get_mut("content") {
                            if cx < content.len() {
                                content[cx] = part;
                            } else if cx == content.len() {
                                content.push(part);
                            }
                        }
                    }
                }
                Self::rest(filter, &mut v, &["part"])?;
                self.flush_pending(out);
            }
            "response.reasoning_summary_part.added" | "response.reasoning_summary_part.done" => {
                let mode = if t.ends_with("added") {
                    Mode::Initial
                } else {
                    Mode::Final
                };
                let part = Part::Summary(index(&v, "summary_index"));
                if let Some(Value::Object(p)) = v.get_mut("part") {
                    for (k, e) in p.iter_mut() {
                        let read_below = k == "text" && e.is_string();
                        if !read_below && !SKIP.contains(&k.as_str()) {
                            Self::generic(filter, e, &format!("part.{k}"))?;
                        }
                    }
                } else if let Some(p) = v.get_mut("part") {
                    Self::generic(filter, p, "part")?;
                }
                Self::rest(filter, &mut v, &["part"])?;
                if let Some(Value::String(s)) = v.get_mut("part").and_then(|p| p.get_mut("text")) {
                    let mut text = std::mem::take(s);
                    let got = self.text(filter, mode, oi, &item_id, &part, &mut text);
                    *s = text;
                    match got {
                        Got::Block(b) => return Err(b),
                        Got::Strip => {
                            self.flush_pending(out);
                            return Ok(false);
                        }
                        Got::Keep => {}
                    }
                }
                self.flush_pending(out);
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.finish_all(filter, None)?;
                if let Some(r) = v.get_mut("response") {
                    answer::hide_spec(r);
                    if let Some(Value::Array(output)) = r.get_mut("output") {
                        for (i, item) in output.iter_mut().enumerate() {
                            self.item(filter, Mode::Final, i, item)?;
                        }
                    }
                    if let std::ops::ControlFlow::Break(b) =
                        answer::rewrite_members(r, filter, &mut false)
                    {
                        return Err(b);
                    }
                    answer::fix_output_text(r);
                    self.template = Some(r.clone());
                }
                Self::rest(filter, &mut v, &["response"])?;
                self.flush_pending(out);
                out.progress = true;
                self.write(v, out);
                return Ok(true);
            }
            "response.audio.delta" => {
                // The audio itself is base64, not text; the event's other members are read.
                filter.partial("audio output not scanned");
                Self::rest(filter, &mut v, &["delta"])?;
            }
            "error" => {
                Self::generic(filter, &mut v, "")?;
                out.progress = true;
            }
            _ => {
                if let Some(base) = t.strip_suffix(".done") {
                    let part = Part::Other(base.to_owned());
                    if let Some(ci) = self.chans.iter().position(|c| c.oi == oi && c.part == part) {
                        self.finish(filter, ci, None)?;
                    }
                }
                Self::generic(filter, &mut v, "")?;
                self.flush_pending(out);
            }
        }
        self.write(v, out);
        Ok(false)
    }

    /// Ends the stream in-band after a block: the open parts and items closed with what was
    /// released, a refusal message, `response.incomplete`.
    fn block(&mut self, refusal: &str, out: &mut Emit) -> StreamEnd {
        self.flush_pending(out);
        let mut output = Vec::new();
        let items = std::mem::take(&mut self.items);
        for mut it in items {
            if !it.done {
                let item_id = it.item.get("id").cloned().unwrap_or(Value::Null);
                self.released_item(it.oi, &mut it.item);
                for cx in std::mem::take(&mut it.open_parts) {
                    let part = it.item.get("content").and_then(|c| c.get(cx)).cloned();
                    if let Some(part) = part {
                        self.write(
                            json!({"type": "response.content_part.done", "item_id": item_id,
                            "output_index": it.oi, "content_index": cx, "part": part}),
                            out,
                        );
                    }
                }
                it.item["status"] = "incomplete".into();
                self.write(json!({"type": "response.output_item.done", "output_index": it.oi, "item": it.item}), out);
            }
            output.push(it.item);
        }
        let next = self.items_next(&output);
        let (events, msg) = refusal_item_events(next, refusal);
        for e in events {
            self.write(e, out);
        }
        output.push(msg);
        let mut r = self
            .template
            .take()
            .unwrap_or_else(|| response_object(&self.model));
        mark_blocked(&mut r, output);
        self.write(json!({"type": "response.incomplete", "response": r}), out);
        out.progress = true;
        let end = StreamEnd {
            all_blocked: true,
            complete: true,
            terminal_seen: false,
        };
        self.ended = Some(end);
        end
    }

    /// An output item announced at an `output_index` that already had events is a protocol
    /// fault: a new item there would start fresh channels and drop what the old ones still
    /// held, and a client joining text by index would read the old item's released end next
    /// to the new text. Real streams never do it.
    fn restarted(&self, v: &Value) -> Result<(), WireError> {
        if v.get("type").and_then(Value::as_str) != Some("response.output_item.added") {
            return Ok(());
        }
        let oi = index(v, "output_index");
        if self.items.iter().any(|i| i.oi == oi) || self.chans.iter().any(|c| c.oi == oi) {
            return Err(WireError::Shape {
                message: format!("output item {oi} started again"),
            });
        }
        Ok(())
    }

    /// The next free output index.
    fn items_next(&self, output: &[Value]) -> usize {
        let max_chan = self.chans.iter().map(|c| c.oi + 1).max().unwrap_or(0);
        output.len().max(max_chan)
    }

    /// Puts what each channel of item `oi` released into the item (no scanning).
    fn released_item(&self, oi: usize, item: &mut Value) {
        let _ = items::rewrite_item(item, oi, &mut |part, _, s| {
            match self.chans.iter().find(|c| c.oi == oi && c.part == *part) {
                Some(c) if c.stripped => return Got::Strip,
                Some(c) => s.clone_from(&c.released),
                None if matches!(part, Part::Name | Part::Other(_)) => {}
                None => s.clear(),
            }
            Got::Keep
        });
    }
}

impl StreamRewriter for ResponsesStream {
    fn event(
        &mut self,
        event: &SseEvent,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<Step, WireError> {
        if let Some(end) = self.ended {
            return Ok(Step::Ended(end));
        }
        if event.data == crate::wire::sse::DONE {
            self.terminal_seen = true;
            return Ok(Step::Continue);
        }
        let v = crate::wire::parse_strict(event.data.as_bytes())?;
        if !v.is_object() {
            return Err(WireError::Shape {
                message: "a stream event is a JSON object".to_owned(),
            });
        }
        // A client dispatches on the `event:` name, the gateway on the JSON `type`: when they
        // disagree, what the gateway reads as one event the client would show as another
        // (a `delta` read as part of `response.in_progress`, shown as output text). Real
        // streams name every event by its type; anything else is an upstream fault.
        if let Some(name) = event.event.as_deref().filter(|n| !n.is_empty())
            && v.get("type").and_then(Value::as_str) != Some(name)
        {
            return Err(WireError::Shape {
                message: "a stream event's name disagrees with its type".to_owned(),
            });
        }
        self.restarted(&v)?;
        if self.seq.is_none() {
            self.seq = Some(
                v.get("sequence_number")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            );
        }
        match self.on_event(v, filter, out) {
            Err(refusal) => Ok(Step::Ended(self.block(&refusal, out))),
            Ok(true) => {
                let end = StreamEnd {
                    all_blocked: false,
                    complete: true,
                    terminal_seen: true,
                };
                self.ended = Some(end);
                Ok(Step::Ended(end))
            }
            Ok(false) => Ok(Step::Continue),
        }
    }

    fn end(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) -> StreamEnd {
        if let Some(end) = self.ended {
            return end;
        }
        if let Err(refusal) = self.finish_all(filter, None) {
            return self.block(&refusal, out);
        }
        self.flush_pending(out);
        // No terminal event: the client is told with an `error` event.
        let e = ErrorInfo::new(
            ErrorKind::Upstream,
            "upstream stream ended before it was complete",
            "upstream_truncated",
        );
        self.error(&e, out);
        let end = StreamEnd {
            all_blocked: false,
            complete: false,
            terminal_seen: self.terminal_seen,
        };
        self.ended = Some(end);
        end
    }

    fn refusal(&self, text: &str) -> Bytes {
        let model = self
            .template
            .as_ref()
            .and_then(|t| t.get("model"))
            .and_then(Value::as_str)
            .unwrap_or(&self.model);
        refusal_stream(model, text).freeze()
    }

    fn error(&self, error: &ErrorInfo, out: &mut Emit) {
        let mut seq = self.seq.unwrap_or(0);
        let e = json!({"type": "error", "code": error.code, "message": error.message, "param": error.param});
        write_event(e, &mut seq, &mut out.buf);
        out.progress = true;
    }
}
