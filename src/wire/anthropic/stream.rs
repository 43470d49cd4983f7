//! Streamed answers: Messages server-sent events, rewritten one by one.
//!
//! One concern: the event-by-event rewrite of one Messages stream (long because every event
//! type and its faults are handled here; the text-block run lives in `run.rs`).
//!
//! Each content block is one channel: `text_delta` ([`Content`](ChannelKind::Content)),
//! `thinking_delta` ([`Reasoning`](ChannelKind::Reasoning)) and `input_json_delta`
//! ([`ToolArguments`](ChannelKind::ToolArguments), JSON) are pushed through the layer's
//! [`TextFilter`] and re-encoded with only what it released; a `text`, `thinking` or `input`
//! already in `content_block_start`, tool names, citations, blocks complete in their start
//! event and every string of an event type the adapter does not know are scanned whole.
//! `content_block_stop` closes its channel first: what it still held goes out as one more
//! `content_block_delta` before the stop. Consecutive `text` blocks share one channel (clients
//! show them as one text): a later block's start is held until the earlier block's tail is
//! decided (`run.rs`).
//!
//! A block started again at an index that already had events, a delta or stop for a block
//! before its start or after its stop, and a text block starting while another is open are
//! upstream protocol faults: the stream ends with an `event: error` and nothing held is
//! released (real streams never do this; a fresh channel would drop what the old one held).
//!
//! A `thinking` block's `signature_delta` is held until the block stops: when the gateway
//! changed the block's text (a redaction) the signature no longer signs it and is dropped,
//! and the answer says `partial` ([`SIGNATURE_DROPPED`]); otherwise it goes out as it came,
//! just before the stop. `ping` passes as it is; an upstream `error` event's message is
//! scanned like any text.
//!
//! A block ends the stream the way Anthropic's own classifier does: `content_block_stop` for
//! the open block, `message_delta` with `stop_reason: "refusal"`, `message_stop` (with the
//! refusal as text when no answer text had been sent). Every event keeps its `event:` name.

use serde_json::{Map, Value, json};

use super::answer::SIGNATURE_DROPPED;
use super::answer::scan_input;
use super::block::{Block, Kind, channel_for};
use super::run::{Held, Piece, TextRun};
use super::walk::{apply, scan_rest, scan_signature, scan_value};
use super::write_text_block;
use super::{MessageMeta, REFUSAL, error_body, refusal_stream, write_end, write_event};
use crate::wire::sse::encode_event;
use crate::wire::{
    Channel, ChannelKind, Emit, ErrorInfo, SseEvent, Step, StreamEnd, StreamRewriter, TextFilter,
    Verdict, WireError, parse_strict,
};

/// Rewrites one streamed Messages answer. See the [module docs](self).
#[derive(Debug)]
pub struct MessagesStream {
    model: String,
    meta: Option<MessageMeta>,
    blocks: Vec<Block>,
    /// The consecutive text blocks being streamed (see `run.rs`).
    run: Option<TextRun>,
    /// Answer text (a `text` block's) reached the client.
    sent_text: bool,
    /// `message_delta` with a `stop_reason` came.
    stop_seen: bool,
    ended: Option<StreamEnd>,
}

/// Why a handler stopped early.
enum Stop {
    Blocked(String),
    Wire(WireError),
}

impl From<WireError> for Stop {
    fn from(e: WireError) -> Self {
        Stop::Wire(e)
    }
}

fn blocked(r: Result<bool, String>) -> Result<bool, Stop> {
    r.map_err(Stop::Blocked)
}

fn shape(message: &str) -> WireError {
    WireError::Shape {
        message: message.to_owned(),
    }
}

fn emit(out: &mut Emit, name: Option<&str>, id: Option<&str>, data: &Value) -> Result<(), Stop> {
    let ev = SseEvent {
        event: name.map(str::to_owned),
        data: data.to_string(),
        id: id.map(str::to_owned),
    };
    encode_event(&ev, &mut out.buf).map_err(|e| Stop::Wire(shape(&e.to_string())))
}

// === impl MessagesStream ===

impl MessagesStream {
    /// A rewriter for a stream answering a request for `model`.
    pub fn new(model: &str) -> Self {
        MessagesStream {
            model: model.to_owned(),
            meta: None,
            blocks: Vec::new(),
            run: None,
            sent_text: false,
            stop_seen: false,
            ended: None,
        }
    }

    /// The position of block `index`, if it started.
    fn find(&self, index: u64) -> Option<usize> {
        self.blocks.iter().position(|b| b.index == index)
    }

    /// The position of block `index`, started and not stopped; anything else is a protocol
    /// fault (a delta before its block's start, or after its stop, would open a fresh text).
    fn open_block(&self, index: u64, what: &str) -> Result<usize, Stop> {
        match self.find(index) {
            Some(bi) if !self.blocks[bi].ended => Ok(bi),
            Some(_) => {
                Err(shape(&format!("{what} for content block {index} after its stop")).into())
            }
            None => Err(shape(&format!(
                "{what} for content block {index} before its start"
            ))
            .into()),
        }
    }

    fn block(&mut self, index: u64, kind: Kind) -> usize {
        if let Some(i) = self.find(index) {
            return i;
        }
        self.blocks.push(Block {
            index,
            kind,
            channel: None,
            sent: false,
            stopped: false,
            announced: kind != Kind::Text,
            ended: false,
            pending: String::new(),
            edited: false,
            signature: None,
        });
        self.blocks.len() - 1
    }

    /// Pushes `text` through block `bi`'s channel; `Some(released)` when something may go out.
    fn push(
        &mut self,
        bi: usize,
        text: &str,
        filter: &mut dyn TextFilter,
    ) -> Result<Option<String>, Stop> {
        let b = &mut self.blocks[bi];
        let ch = match b.channel {
            Some(ch) => ch,
            None => {
                let ch = filter.open(channel_for(b.kind, b.index));
                b.channel = Some(ch);
                ch
            }
        };
        let verdict = filter.push(ch, text);
        if b.kind == Kind::Thinking {
            b.pending.push_str(text);
            b.track(&verdict);
        }
        match verdict {
            Verdict::Send(s) if !s.is_empty() => {
                b.sent = true;
                self.sent_text |= b.kind == Kind::Text;
                Ok(Some(s))
            }
            Verdict::Send(_) | Verdict::Strip => Ok(None),
            Verdict::Block { refusal: r, .. } => Err(Stop::Blocked(r)),
        }
    }

    /// Closes block `bi`'s channel: what it held goes out as one more delta.
    fn release(
        &mut self,
        bi: usize,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<(), Stop> {
        let b = &mut self.blocks[bi];
        let Some(ch) = b.channel.take() else {
            return self.release_signature(bi, filter, out);
        };
        let verdict = filter.close(ch);
        if b.kind == Kind::Thinking {
            b.track(&verdict);
            // What is still pending was held and never released: the text changed.
            b.edited |= !b.pending.is_empty() && !matches!(verdict, Verdict::Strip);
        }
        match verdict {
            Verdict::Send(s) if !s.is_empty() => {
                let Some((delta_type, field)) = b.kind.delta() else {
                    return Ok(());
                };
                b.sent = true;
                self.sent_text |= b.kind == Kind::Text;
                let data = json!({"type": "content_block_delta", "index": b.index,
                                  "delta": {"type": delta_type, field: s}});
                out.progress = true;
                emit(out, Some("content_block_delta"), None, &data)?;
            }
            Verdict::Send(_) | Verdict::Strip => {}
            Verdict::Block { refusal: r, .. } => return Err(Stop::Blocked(r)),
        }
        self.release_signature(bi, filter, out)
    }

    /// The `signature_delta` held for block `bi`: sent when the block's text went out as it
    /// came, dropped (and the answer marked partial) when the gateway changed it.
    fn release_signature(
        &mut self,
        bi: usize,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<(), Stop> {
        let b = &mut self.blocks[bi];
        let Some(sig) = b.signature.take() else {
            return Ok(());
        };
        if b.edited {
            filter.partial(SIGNATURE_DROPPED);
            return Ok(());
        }
        emit(out, sig.name.as_deref(), sig.id.as_deref(), &sig.data)
    }

    fn release_all(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) -> Result<(), Stop> {
        self.end_run(filter, out)?;
        for bi in 0..self.blocks.len() {
            self.release(bi, filter, out)?;
        }
        Ok(())
    }

    /// Pushes `text` of a text block through the run's channel and sends what it released.
    fn push_text(
        &mut self,
        text: &str,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<(), Stop> {
        let Some(run) = self.run.as_mut() else {
            return Err(shape("text outside a text block").into());
        };
        if text.is_empty() {
            return Ok(());
        }
        run.pushed(text);
        let mut pieces = Vec::new();
        match filter.push(run.channel, text) {
            Verdict::Send(s) => run.release(&s, &mut pieces),
            Verdict::Strip => {}
            Verdict::Block { refusal: r, .. } => return Err(Stop::Blocked(r)),
        }
        self.write_pieces(pieces, out)
    }

    /// Closes the run of text blocks: what it held goes out, then the stops and starts it
    /// kept back.
    fn end_run(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) -> Result<(), Stop> {
        let Some(mut run) = self.run.take() else {
            return Ok(());
        };
        let mut pieces = Vec::new();
        match filter.close(run.channel) {
            Verdict::Send(s) => run.release(&s, &mut pieces),
            Verdict::Strip => {}
            Verdict::Block { refusal: r, .. } => return Err(Stop::Blocked(r)),
        }
        run.finish(&mut pieces);
        self.write_pieces(pieces, out)
    }

    fn write_pieces(&mut self, pieces: Vec<Piece>, out: &mut Emit) -> Result<(), Stop> {
        for p in pieces {
            out.progress = true;
            match p {
                Piece::Text(index, text) => {
                    self.sent_text = true;
                    if let Some(bi) = self.find(index) {
                        self.blocks[bi].sent = true;
                    }
                    let data = json!({"type": "content_block_delta", "index": index,
                                      "delta": {"type": "text_delta", "text": text}});
                    emit(out, Some("content_block_delta"), None, &data)?;
                }
                Piece::Event(h) => {
                    let index = h.data.get("index").and_then(Value::as_u64);
                    if let Some(bi) = index.and_then(|i| self.find(i)) {
                        match h.data.get("type").and_then(Value::as_str) {
                            Some("content_block_start") => self.blocks[bi].announced = true,
                            Some("content_block_stop") => self.blocks[bi].stopped = true,
                            _ => {}
                        }
                    }
                    emit(out, h.name.as_deref(), h.id.as_deref(), &h.data)?;
                }
            }
        }
        Ok(())
    }

    fn handle(
        &mut self,
        ev: &SseEvent,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<Step, Stop> {
        let mut data = parse_strict(ev.data.as_bytes())?;
        let Some(obj) = data.as_object_mut() else {
            return Err(shape("a Messages stream event is a JSON object").into());
        };
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("")
            .to_owned();
        let name = ev.event.as_deref();
        let id = ev.id.as_deref();
        match kind.as_str() {
            "message_start" => {
                let message = obj
                    .get_mut("message")
                    .ok_or(shape("message_start without message"))?;
                self.meta = Some(MessageMeta::from_message(message, &self.model));
                if let Some(m) = message.as_object_mut() {
                    // Identifiers and enums; `content`, `stop_sequence`, `usage` and unknown
                    // members are read.
                    const META: &[&str] = &["id", "type", "role", "model", "stop_reason"];
                    blocked(scan_rest(filter, m, META, "message"))?;
                }
                blocked(scan_rest(filter, obj, &["type", "message"], ""))?;
            }
            "content_block_start" => {
                if !self.block_start(obj, name, id, filter, out)? {
                    return Ok(Step::Continue);
                }
            }
            "content_block_delta" => {
                if !self.block_delta(obj, filter, out)? {
                    return Ok(Step::Continue);
                }
                let index = index_of(obj)?;
                if let Some(bi) = self.find(index)
                    && self.blocks[bi].kind == Kind::Thinking
                    && obj
                        .get("delta")
                        .and_then(|d| d.get("type"))
                        .and_then(Value::as_str)
                        == Some("signature_delta")
                {
                    self.blocks[bi].signature = Some(held(name, id, data));
                    return Ok(Step::Continue);
                }
                if let Some(run) = self.run.as_mut().filter(|r| r.is_held(index)) {
                    run.hold(index, held(name, id, data));
                    return Ok(Step::Continue);
                }
            }
            "content_block_stop" => {
                let index = index_of(obj)?;
                let bi = self.open_block(index, "content_block_stop")?;
                blocked(scan_rest(filter, obj, &["type", "index"], ""))?;
                self.blocks[bi].ended = true;
                if let Some(run) = self.run.as_mut().filter(|r| r.contains(index)) {
                    run.stop(index, held(name, id, data));
                    return Ok(Step::Continue);
                }
                self.release(bi, filter, out)?;
                self.blocks[bi].stopped = true;
            }
            "message_delta" => {
                self.release_all(filter, out)?;
                if let Some(Value::Object(d)) = obj.get_mut("delta") {
                    self.stop_seen |= d.get("stop_reason").is_some_and(Value::is_string);
                    // `stop_reason` is an enum; the `stop_sequence` the upstream says it met is
                    // text it writes, read like any other.
                    blocked(scan_rest(filter, d, &["stop_reason"], "delta"))?;
                }
                blocked(scan_rest(filter, obj, &["type", "delta"], ""))?;
                out.progress = true;
            }
            "message_stop" => {
                self.release_all(filter, out)?;
                blocked(scan_rest(filter, obj, &["type"], ""))?;
                emit(out, name, id, &data)?;
                out.progress = true;
                let end = StreamEnd {
                    all_blocked: false,
                    complete: true,
                    terminal_seen: true,
                };
                self.ended = Some(end);
                return Ok(Step::Ended(end));
            }
            "ping" => {
                blocked(scan_rest(filter, obj, &["type"], ""))?;
            }
            "error" => {
                if let Some(Value::Object(e)) = obj.get_mut("error") {
                    if let Some(Value::String(m)) = e.get_mut("message") {
                        let ch = Channel::new(ChannelKind::Other, 0, "error.message");
                        let verdict = filter.scan(&ch, m);
                        if apply(verdict, m).is_err() {
                            *m = "upstream error (its message was withheld by policy)".to_owned();
                        }
                    }
                    if scan_rest(filter, e, &["type", "message"], "error").is_err() {
                        e.retain(|k, _| k == "type" || k == "message");
                    }
                }
                if scan_rest(filter, obj, &["type", "error"], "").is_err() {
                    obj.retain(|k, _| k == "type" || k == "error");
                }
                emit(out, name, id, &data)?;
                out.progress = true;
                let end = StreamEnd {
                    all_blocked: filter.is_blocked(0),
                    complete: false,
                    terminal_seen: true,
                };
                self.ended = Some(end);
                return Ok(Step::Ended(end));
            }
            _ => {
                blocked(scan_rest(filter, obj, &[], ""))?;
                out.progress = true;
            }
        }
        emit(out, name, id, &data)?;
        Ok(Step::Continue)
    }

    /// Returns whether the (rewritten) start is to be sent as it is; a text block's start is
    /// sent or kept back here.
    fn block_start(
        &mut self,
        obj: &mut Map<String, Value>,
        name: Option<&str>,
        id: Option<&str>,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<bool, Stop> {
        let index = index_of(obj)?;
        let Some(Value::Object(cb)) = obj.get_mut("content_block") else {
            return Err(shape("content_block_start without content_block").into());
        };
        let loc = format!("content[{index}]");
        let block_type = cb
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind = match block_type.as_str() {
            "text" => Kind::Text,
            "thinking" => Kind::Thinking,
            "tool_use" | "server_tool_use" | "mcp_tool_use" => Kind::Tool,
            _ => Kind::Other,
        };
        // A block restarted at an index that already had events is a protocol fault: starting
        // afresh would drop what the old block's channel still held, and a client joining text
        // by index would read the old block's released end next to the new text.
        if self.find(index).is_some() {
            return Err(shape(&format!("content block {index} started again")).into());
        }
        if kind == Kind::Text {
            return self.text_start(index, obj, name, id, filter, out);
        }
        self.end_run(filter, out)?;
        let bi = self.block(index, kind);
        let handled: &[&str] = match kind {
            Kind::Text | Kind::Thinking => {
                let field = if kind == Kind::Text {
                    "text"
                } else {
                    "thinking"
                };
                if let Some(Value::String(s)) = cb.get_mut(field)
                    && !s.is_empty()
                {
                    let text = std::mem::take(s);
                    if let Some(released) = self.push(bi, &text, filter)? {
                        out.progress = true;
                        *s = released;
                    }
                }
                match cb.get(field) {
                    Some(v) if !v.is_string() => &[],
                    _ if kind == Kind::Text => &["text"],
                    _ => &["thinking"],
                }
            }
            Kind::Tool => {
                if let Some(Value::String(s)) = cb.get_mut("name") {
                    let ch = Channel::new(ChannelKind::ToolName, 0, format!("{loc}.name"));
                    blocked(apply(filter.scan(&ch, s), s))?;
                }
                if let Some(input) = cb.get_mut("input")
                    && input.as_object().is_some_and(|m| !m.is_empty())
                {
                    blocked(scan_input(filter, input, &format!("{loc}.input")))?;
                }
                out.progress = true;
                // A name that is not a string, or an input that is not an object, is read by
                // the walk below like any other member.
                match (
                    cb.get("name").is_none_or(Value::is_string),
                    cb.get("input").is_none_or(Value::is_object),
                ) {
                    (true, true) => &["name", "input"],
                    (true, false) => &["name"],
                    (false, true) => &["input"],
                    (false, false) => &[],
                }
            }
            Kind::Other => {
                if block_type == "redacted_thinking" {
                    filter.partial("redacted thinking not scanned");
                    if cb.get("data").is_none_or(Value::is_string) {
                        &["data"]
                    } else {
                        &[]
                    }
                } else {
                    out.progress = true;
                    &[]
                }
            }
        };
        blocked(scan_rest(filter, cb, handled, &loc))?;
        blocked(scan_signature(filter, cb, &loc))?;
        blocked(scan_rest(
            filter,
            obj,
            &["type", "index", "content_block"],
            "",
        ))?;
        Ok(true)
    }

    /// A text block starts: the first of a run is sent (its text as a delta after it), a
    /// later one joins the run with its start kept back.
    fn text_start(
        &mut self,
        index: u64,
        obj: &mut Map<String, Value>,
        name: Option<&str>,
        id: Option<&str>,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<bool, Stop> {
        if let Some(run) = &self.run
            && !run.last_ended()
        {
            let last = run.last_index();
            return Err(shape(&format!(
                "content block {index} started before block {last} stopped"
            ))
            .into());
        }
        let bi = self.block(index, Kind::Text);
        let mut text = String::new();
        if let Some(Value::Object(cb)) = obj.get_mut("content_block") {
            let handled: &[&str] = match cb.get_mut("text") {
                Some(Value::String(s)) => {
                    text = std::mem::take(s);
                    &["text"]
                }
                // A `text` that is not a string is read by the generic walk.
                _ => &[],
            };
            let loc = format!("content[{index}]");
            blocked(scan_rest(filter, cb, handled, &loc))?;
            blocked(scan_signature(filter, cb, &loc))?;
        }
        blocked(scan_rest(
            filter,
            obj,
            &["type", "index", "content_block"],
            "",
        ))?;
        let start = held(name, id, Value::Object(std::mem::take(obj)));
        match self.run.as_mut() {
            Some(run) => run.join(index, start),
            None => {
                let ch = filter.open(channel_for(Kind::Text, index));
                self.run = Some(TextRun::new(ch, index));
                out.progress = true;
                emit(out, start.name.as_deref(), start.id.as_deref(), &start.data)?;
                self.blocks[bi].announced = true;
            }
        }
        self.push_text(&text, filter, out)?;
        Ok(false)
    }

    /// Returns whether the (rewritten) delta is to be sent.
    fn block_delta(
        &mut self,
        obj: &mut Map<String, Value>,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<bool, Stop> {
        let index = index_of(obj)?;
        let Some(Value::Object(delta)) = obj.get_mut("delta") else {
            return Err(shape("content_block_delta without delta").into());
        };
        let delta_type = delta
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let loc = format!("content[{index}].delta");
        let kind = Kind::of_delta(&delta_type);
        let bi = self.open_block(index, "a delta")?;
        let send = match kind.delta() {
            Some((_, field)) if kind == Kind::Text && self.blocks[bi].kind == kind => {
                let text = match delta.remove(field) {
                    Some(Value::String(s)) => s,
                    _ => String::new(),
                };
                blocked(scan_rest(filter, delta, &[], &loc))?;
                blocked(scan_rest(filter, obj, &["type", "index", "delta"], ""))?;
                self.push_text(&text, filter, out)?;
                return Ok(false);
            }
            Some((_, field)) if self.blocks[bi].kind == kind => {
                let text = match delta.get_mut(field) {
                    Some(Value::String(s)) => std::mem::take(s),
                    _ => String::new(),
                };
                let released = self.push(bi, &text, filter)?;
                blocked(scan_rest(filter, delta, &[field], &loc))?;
                match released {
                    Some(s) => {
                        delta.insert(field.to_owned(), Value::String(s));
                        out.progress = true;
                        true
                    }
                    None => false,
                }
            }
            // A text, thinking or tool-input delta for a block of another kind: real streams
            // never send one, and scanned event by event (as an unknown delta is) a secret
            // split across two of them would pass. An upstream fault.
            Some(_) => {
                return Err(shape(&format!(
                    "a {delta_type} for content block {index} of another kind"
                ))
                .into());
            }
            _ if delta_type == "signature_delta" && self.blocks[bi].kind != Kind::Thinking => {
                // Only a thinking block is signed: a signature on any other block signs
                // nothing a client can use, and is left out.
                return Ok(false);
            }
            _ => {
                // Signatures pass while they read as signatures (`scan_signature`);
                // citations, deltas of a type that does not fit the block, and unknown
                // deltas are scanned whole.
                blocked(scan_signature(filter, delta, &loc))?;
                let mut d = Value::Object(std::mem::take(delta));
                let r = scan_value(filter, "", &mut d, &loc);
                if let Value::Object(d) = d {
                    *delta = d;
                }
                blocked(r)?;
                if delta_type != "signature_delta" {
                    out.progress = true;
                }
                true
            }
        };
        blocked(scan_rest(filter, obj, &["type", "index", "delta"], ""))?;
        Ok(send)
    }

    /// Ends the stream in-band for a block: stops for the open blocks, `stop_reason:
    /// "refusal"`, `message_stop`.
    fn block_end(&mut self, refusal: &str, out: &mut Emit) -> StreamEnd {
        let meta = match &self.meta {
            Some(m) => m.clone(),
            None => {
                let m = MessageMeta::new(&self.model);
                out.buf.extend_from_slice(&refusal_stream(&m, refusal));
                return self.finish_blocked(out);
            }
        };
        let mut written = self.sent_text;
        let mut next = 0;
        self.run = None;
        for b in self.blocks.iter_mut() {
            b.channel = None;
            if !b.announced {
                continue;
            }
            next = next.max(b.index + 1);
            if b.stopped {
                continue;
            }
            if !written && b.kind == Kind::Text {
                let data = json!({"type": "content_block_delta", "index": b.index,
                                  "delta": {"type": "text_delta", "text": refusal}});
                write_event(&mut out.buf, "content_block_delta", &data);
                written = true;
            }
            let stop = json!({"type": "content_block_stop", "index": b.index});
            write_event(&mut out.buf, "content_block_stop", &stop);
            b.stopped = true;
        }
        if !written {
            write_text_block(&mut out.buf, next, refusal);
        }
        let tokens = meta
            .usage
            .get("output_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        write_end(&mut out.buf, REFUSAL, tokens);
        self.finish_blocked(out)
    }

    fn finish_blocked(&mut self, out: &mut Emit) -> StreamEnd {
        out.progress = true;
        let end = StreamEnd {
            all_blocked: true,
            complete: true,
            terminal_seen: false,
        };
        self.ended = Some(end);
        end
    }

    fn write_error(&self, message: &str, out: &mut Emit) {
        let e = ErrorInfo::new(
            crate::wire::ErrorKind::Upstream,
            message,
            "upstream_truncated",
        );
        write_event(&mut out.buf, "error", &error_body(&e));
        out.progress = true;
    }
}

fn held(name: Option<&str>, id: Option<&str>, data: Value) -> Held {
    Held {
        name: name.map(str::to_owned),
        id: id.map(str::to_owned),
        data,
    }
}

fn index_of(obj: &Map<String, Value>) -> Result<u64, Stop> {
    obj.get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| Stop::Wire(shape("content block event without a valid index")))
}

impl StreamRewriter for MessagesStream {
    fn event(
        &mut self,
        event: &SseEvent,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<Step, WireError> {
        if let Some(end) = self.ended {
            return Ok(Step::Ended(end));
        }
        let mark = out.buf.len();
        match self.handle(event, filter, out) {
            Ok(step) => Ok(step),
            Err(Stop::Wire(e)) => Err(e),
            Err(Stop::Blocked(refusal)) => {
                // Nothing of the event that blocked goes out.
                out.buf.truncate(mark);
                Ok(Step::Ended(self.block_end(&refusal, out)))
            }
        }
    }

    fn end(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) -> StreamEnd {
        if let Some(end) = self.ended {
            return end;
        }
        let incomplete = StreamEnd {
            all_blocked: false,
            complete: false,
            terminal_seen: false,
        };
        if self.meta.is_none() {
            self.write_error("upstream stream ended before message_start", out);
            self.ended = Some(incomplete);
            return incomplete;
        }
        let mark = out.buf.len();
        match self.release_all(filter, out) {
            Ok(()) => {}
            Err(Stop::Blocked(refusal)) => {
                out.buf.truncate(mark);
                return self.block_end(&refusal, out);
            }
            Err(Stop::Wire(_)) => {}
        }
        let end = if self.stop_seen {
            write_event(
                &mut out.buf,
                "message_stop",
                &json!({"type": "message_stop"}),
            );
            out.progress = true;
            StreamEnd {
                complete: true,
                ..incomplete
            }
        } else {
            self.write_error("upstream stream ended before message_stop", out);
            incomplete
        };
        self.ended = Some(end);
        end
    }

    fn refusal(&self, text: &str) -> bytes::Bytes {
        let meta = self
            .meta
            .clone()
            .unwrap_or_else(|| MessageMeta::new(&self.model));
        refusal_stream(&meta, text)
    }

    fn error(&self, error: &ErrorInfo, out: &mut Emit) {
        write_event(&mut out.buf, "error", &error_body(error));
        out.progress = true;
    }
}
