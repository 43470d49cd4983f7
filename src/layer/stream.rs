//! Output enforcement of a streamed chat completion.
//!
//! [`StreamFilter`] decodes the upstream's server-sent events, feeds each choice's text (and
//! each tool call's arguments, refusal and reasoning) to its own chain of stream scanners, and
//! re-encodes every upstream chunk with only the text the scanners released: `id`, `model`,
//! `created`, `system_fingerprint`, usage chunks and unknown fields stay as they were. A block
//! ends the choice in-band with `finish_reason: "content_filter"` (with the refusal as content
//! when nothing of the choice was sent yet); when every choice is ended the stream ends with
//! `data: [DONE]` and the upstream is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::Body;
use serde_json::{Map, Value};

use super::audit::{Deliberation, Outcome};
use super::chain::{ChainOutput, ChainScanner, PolicyFinding};
use super::deliberation::DeliberationStripper;
use super::error::{BoxError, Fault};
use super::exchange::Exchange;
use super::options::ReasoningMode;
use super::refusal;
use super::response::mask_deliberation;
use crate::openai::chunking::{CONTENT_FILTER, CompletionMeta};
use crate::openai::sse::{DONE, DONE_FRAME, encode_comment, encode_data};
use crate::openai::{
    ChatChunk, ChunkChoice, Delta, FunctionCall, Nullable, SseDecoder, SseItem, ToolCall,
    WireError, from_value, parse_strict,
};
use crate::policy::{Action, Stage};

/// Filters one streamed response. See the [module docs](self).
pub(crate) struct StreamFilter {
    pub ex: Exchange,
    decoder: SseDecoder,
    items: Vec<SseItem>,
    out: BytesMut,
    choices: Vec<ChoiceState>,
    template: Option<Map<String, Value>>,
    committed: bool,
    payload: bool,
    ended: bool,
    fault: Option<Fault>,
}

impl std::fmt::Debug for StreamFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFilter")
            .field("choices", &self.choices.len())
            .field("committed", &self.committed)
            .field("ended", &self.ended)
            .finish()
    }
}

#[derive(Debug)]
struct ChoiceState {
    index: u32,
    content: Option<ChainScanner>,
    refusal: Option<ChainScanner>,
    reasoning_content: Option<ChainScanner>,
    reasoning: Option<ChainScanner>,
    tools: Vec<(u32, ChainScanner)>,
    strippers: Vec<DeliberationStripper>,
    role_sent: bool,
    sent_payload: bool,
    finished: bool,
    blocked: bool,
    finish_seen: bool,
    refusal_text: Option<String>,
}

/// Polls one frame of `inner` into `filter` (data, error or end); pending if none is ready.
fn feed<B>(inner: Pin<&mut B>, filter: &mut StreamFilter, cx: &mut Context<'_>) -> Poll<()>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match inner.poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => {
            if let Ok(data) = frame.into_data() {
                filter.on_data(&data);
            }
        }
        Poll::Ready(Some(Err(e))) => {
            let e: BoxError = e.into();
            filter.fail(Fault::from_error(&*e));
        }
        Poll::Ready(None) => filter.on_eof(),
        Poll::Pending => return Poll::Pending,
    }
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
        StreamFilter {
            ex,
            decoder: SseDecoder::new(max),
            items: Vec::new(),
            out: BytesMut::new(),
            choices: Vec::new(),
            template: None,
            committed: false,
            payload: false,
            ended: false,
            fault: None,
        }
    }

    /// Headers are going out: from now on faults are reported in-band.
    pub fn commit(&mut self) {
        self.committed = true;
    }

    /// Whether the response head can be sent: some payload was released, or the stream ended.
    pub fn ready_to_commit(&self) -> bool {
        self.payload || self.ended
    }

    pub fn is_ended(&self) -> bool {
        self.ended && self.out.is_empty()
    }

    /// A fault before the head was sent; the caller answers it with an error status.
    pub fn take_fault(&mut self) -> Option<Fault> {
        self.fault.take()
    }

    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
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
                SseItem::Event(ev) => self.on_event(&ev.data),
                SseItem::Comment(c) => {
                    if self.committed {
                        encode_comment(&c, &mut self.out);
                    }
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
            Ok(Some(ev)) => self.on_event(&ev.data),
            Ok(None) => {}
            Err(e) => return self.fail(Fault::Protocol(e.to_string())),
        }
        if !self.ended {
            self.end(false);
        }
    }

    /// The upstream failed. Before the head: reported to the caller; after: an error event
    /// and `[DONE]`. Text still held is not released: it was never fully decided.
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
            encode_data(&fault.body().to_string(), &mut self.out);
            self.out.extend_from_slice(DONE_FRAME);
            self.ex.finish(outcome, None, Some(fault.message()));
        } else {
            self.out.clear();
            self.fault = Some(fault);
        }
    }

    fn on_event(&mut self, data: &str) {
        if data == DONE {
            return self.end(true);
        }
        match parse_strict(data.as_bytes()).and_then(chunk_from_value) {
            Ok(chunk) => self.on_chunk(chunk),
            Err(e) => self.fail(Fault::Protocol(format!("stream event: {e}"))),
        }
    }

    fn on_chunk(&mut self, mut chunk: ChatChunk) {
        if self.template.is_none() {
            let mut t = chunk.extra.clone();
            t.remove("usage");
            self.template = Some(t);
        }
        let had_choices = !chunk.choices.is_empty();
        let mut out = Vec::with_capacity(chunk.choices.len());
        for choice in std::mem::take(&mut chunk.choices) {
            let i = self.state_index(choice.index);
            if let Some(c) = process_choice(&mut self.choices[i], &mut self.ex, choice) {
                out.push(c);
            }
        }
        let has_usage = chunk.extra.get("usage").is_some_and(|u| !u.is_null());
        if !had_choices || !out.is_empty() || has_usage {
            self.payload |= !had_choices || out.iter().any(has_payload);
            chunk.choices = out;
            self.emit(&chunk);
        }
        let n = self.ex.n as usize;
        let ended = self.choices.iter().filter(|c| c.finished).count() >= n;
        if ended && self.choices.iter().any(|c| c.blocked) {
            if !self.committed && self.choices.iter().all(|c| c.blocked) {
                return self.refuse_whole();
            }
            // Every choice is over and one was blocked: stop reading the upstream.
            self.out.extend_from_slice(DONE_FRAME);
            self.payload = true;
            self.ended = true;
            let outcome = if self.choices.iter().all(|c| c.blocked) {
                Outcome::BlockedOutput
            } else {
                Outcome::Completed
            };
            self.ex.finish(outcome, None, None);
        }
    }

    /// The upstream stream is over (`[DONE]` when `done`, else end of body): release what is
    /// held, then `[DONE]`.
    fn end(&mut self, done: bool) {
        for i in 0..self.choices.len() {
            if self.choices[i].finished {
                continue;
            }
            let index = self.choices[i].index;
            let choice = ChunkChoice {
                index,
                delta: Delta::default(),
                finish_reason: Nullable::Absent,
                extra: Map::new(),
            };
            if let Some(c) = flush_choice(&mut self.choices[i], &mut self.ex, choice)
                && (has_payload(&c) || !c.finish_reason.is_absent())
            {
                let chunk = ChatChunk {
                    choices: vec![c],
                    extra: self.template.clone().unwrap_or_default(),
                };
                self.emit(&chunk);
            }
        }
        if !self.committed && !self.choices.is_empty() && self.choices.iter().all(|c| c.blocked) {
            return self.refuse_whole();
        }
        let complete = done
            || (!self.choices.is_empty()
                && self.choices.iter().all(|c| c.finish_seen || c.blocked));
        let mut outcome = if !self.choices.is_empty() && self.choices.iter().all(|c| c.blocked) {
            Outcome::BlockedOutput
        } else {
            Outcome::Completed
        };
        let mut error = None;
        if !complete {
            let fault = Fault::Truncated;
            encode_data(&fault.body().to_string(), &mut self.out);
            outcome = Outcome::UpstreamError;
            error = Some(fault.message());
        } else if !done {
            error = Some("upstream stream ended without [DONE]".to_owned());
        }
        self.out.extend_from_slice(DONE_FRAME);
        self.payload = true;
        self.ended = true;
        self.ex.finish(outcome, None, error);
    }

    /// Every choice was blocked before the head went out: drop what was queued and answer like
    /// a buffered block, as a whole refusal stream.
    fn refuse_whole(&mut self) {
        self.out.clear();
        let text = self
            .choices
            .iter()
            .find_map(|c| c.refusal_text.clone())
            .unwrap_or_default();
        let template = self.template.clone().unwrap_or_default();
        let meta = CompletionMeta::from_extra(&template, &self.ex.model);
        self.out.extend_from_slice(&refusal::stream_with(
            &meta,
            self.ex.n,
            self.ex.include_usage,
            &text,
        ));
        self.payload = true;
        self.ended = true;
        self.ex.finish(Outcome::BlockedOutput, None, None);
    }

    /// Queues `chunk` as one `data:` event. Compact JSON holds no line break (serde_json
    /// escapes them inside strings), so the event is one `data:` line, written straight into
    /// the output buffer: what `encode_data` would write, without the copy and the line scan.
    fn emit(&mut self, chunk: &ChatChunk) {
        let start = self.out.len();
        self.out.extend_from_slice(b"data: ");
        match serde_json::to_writer((&mut self.out).writer(), chunk) {
            Ok(()) => self.out.extend_from_slice(b"\n\n"),
            Err(e) => {
                self.out.truncate(start);
                self.fail(Fault::Protocol(e.to_string()));
            }
        }
    }

    fn state_index(&mut self, index: u32) -> usize {
        if let Some(i) = self.choices.iter().position(|c| c.index == index) {
            return i;
        }
        let strippers = self
            .ex
            .set
            .policies()
            .iter()
            .filter_map(|p| p.spec.deliberation_tag.as_deref())
            .map(|t| DeliberationStripper::new(t, self.ex.shared.opts.max_audit_deliberation_bytes))
            .collect();
        self.choices.push(ChoiceState {
            index,
            content: None,
            refusal: None,
            reasoning_content: None,
            reasoning: None,
            tools: Vec::new(),
            strippers,
            role_sent: false,
            sent_payload: false,
            finished: false,
            blocked: false,
            finish_seen: false,
            refusal_text: None,
        });
        self.choices.len() - 1
    }
}

// === decoding an event ===

/// The [`ChatChunk`] of a parsed event, as `from_value` would make it.
///
/// `from_value` goes through serde's `flatten` machinery, which copies every field into an
/// intermediate buffer: per event that cost as much as parsing the JSON. The usual shape (text
/// deltas: no tool calls) is taken apart by hand here instead, moving the parsed strings; every
/// other shape, and everything serde would reject, still goes through `from_value`, so errors
/// and edge cases are serde's own.
fn chunk_from_value(v: Value) -> Result<ChatChunk, WireError> {
    match v {
        Value::Object(map) if is_text_chunk(&map) => Ok(take_chunk(map)),
        v => from_value(v),
    }
}

/// Whether `take_chunk` reads `map` exactly as serde would.
fn is_text_chunk(map: &Map<String, Value>) -> bool {
    let nullable_str = |v: Option<&Value>| matches!(v, None | Some(Value::Null | Value::String(_)));
    let text_delta = |d: &Map<String, Value>| {
        [
            "role",
            "content",
            "refusal",
            "reasoning_content",
            "reasoning",
        ]
        .iter()
        .all(|k| nullable_str(d.get(*k)))
            && matches!(d.get("tool_calls"), None | Some(Value::Null))
    };
    let text_choice = |c: &Value| {
        let Value::Object(c) = c else {
            return false;
        };
        let index_ok = match c.get("index") {
            None => true,
            Some(i) => i.as_u64().is_some_and(|i| u32::try_from(i).is_ok()),
        };
        let delta_ok = match c.get("delta") {
            None | Some(Value::Null) => true,
            Some(Value::Object(d)) => text_delta(d),
            Some(_) => false,
        };
        index_ok && delta_ok && nullable_str(c.get("finish_reason"))
    };
    match map.get("choices") {
        None => true,
        Some(Value::Array(cs)) => cs.iter().all(text_choice),
        Some(_) => false,
    }
}

/// Takes apart a chunk `is_text_chunk` accepted.
fn take_chunk(mut map: Map<String, Value>) -> ChatChunk {
    let choices = match map.remove("choices") {
        Some(Value::Array(cs)) => cs
            .into_iter()
            .filter_map(|c| match c {
                Value::Object(c) => Some(take_choice(c)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    ChatChunk {
        choices,
        extra: map,
    }
}

fn take_choice(mut c: Map<String, Value>) -> ChunkChoice {
    let index = c
        .remove("index")
        .and_then(|i| i.as_u64())
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(0);
    let delta = match c.remove("delta") {
        Some(Value::Object(mut d)) => Delta {
            role: take_nullable_str(&mut d, "role"),
            content: take_nullable_str(&mut d, "content"),
            refusal: take_nullable_str(&mut d, "refusal"),
            tool_calls: match d.remove("tool_calls") {
                Some(Value::Null) => Nullable::Null,
                _ => Nullable::Absent,
            },
            reasoning_content: take_nullable_str(&mut d, "reasoning_content"),
            reasoning: take_nullable_str(&mut d, "reasoning"),
            extra: d,
        },
        _ => Delta::default(),
    };
    let finish_reason = take_nullable_str(&mut c, "finish_reason");
    ChunkChoice {
        index,
        delta,
        finish_reason,
        extra: c,
    }
}

fn take_nullable_str(map: &mut Map<String, Value>, key: &str) -> Nullable<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Nullable::Present(s),
        Some(Value::Null) => Nullable::Null,
        _ => Nullable::Absent,
    }
}

/// Whether a choice of an outgoing chunk carries something the client reads as progress.
fn has_payload(c: &ChunkChoice) -> bool {
    let d = &c.delta;
    let text = |n: &Nullable<String>| n.get().is_some_and(|s| !s.is_empty());
    text(&d.content)
        || text(&d.refusal)
        || text(&d.reasoning_content)
        || text(&d.reasoning)
        || d.tool_calls.get().is_some_and(|v| !v.is_empty())
        || c.finish_reason.get().is_some()
}

fn scanner<'a>(
    slot: &'a mut Option<ChainScanner>,
    ex: &Exchange,
    stage: Stage,
) -> &'a mut ChainScanner {
    slot.get_or_insert_with(|| ChainScanner::new(&ex.set, stage))
}

fn note(ex: &mut Exchange, o: &ChainOutput, index: u32, field: &str) {
    for f in &o.findings {
        ex.finding(f, || format!("choices[{index}].{field}"));
    }
}

/// Runs one text field of a delta through `slot`'s scanner; returns the block, if any.
fn run_field(
    field: &mut Nullable<String>,
    slot: &mut Option<ChainScanner>,
    ex: &mut Exchange,
    stage: Stage,
    index: u32,
    name: &str,
) -> Option<PolicyFinding> {
    let Nullable::Present(text) = field else {
        return None;
    };
    if text.is_empty() {
        return None;
    }
    let o = scanner(slot, ex, stage).push(text);
    note(ex, &o, index, name);
    *text = o.text;
    o.block
}

/// Processes one upstream choice delta; `None` when the choice is already over (blocked).
fn process_choice(
    st: &mut ChoiceState,
    ex: &mut Exchange,
    mut choice: ChunkChoice,
) -> Option<ChunkChoice> {
    if st.finished {
        return None;
    }
    let index = st.index;
    let reasoning = ex.shared.opts.reasoning;
    let d = &mut choice.delta;
    let mut block: Option<PolicyFinding> = None;

    // Content: deliberation block out first, then the scanners.
    if let Nullable::Present(text) = &mut d.content
        && !text.is_empty()
    {
        let mut visible = std::mem::take(text);
        for s in st.strippers.iter_mut() {
            visible = s.push(&visible);
        }
        *text = visible;
        block = run_field(
            &mut d.content,
            &mut st.content,
            ex,
            Stage::Output,
            index,
            "content",
        );
    }
    if block.is_none() {
        block = run_field(
            &mut d.refusal,
            &mut st.refusal,
            ex,
            Stage::Output,
            index,
            "refusal",
        );
    } else {
        d.refusal = Nullable::Absent;
    }
    for (name, field, slot) in [
        (
            "reasoning_content",
            &mut d.reasoning_content,
            &mut st.reasoning_content,
        ),
        ("reasoning", &mut d.reasoning, &mut st.reasoning),
    ] {
        if block.is_some() {
            *field = Nullable::Absent;
            continue;
        }
        match reasoning {
            ReasoningMode::Pass => {
                if field.get().is_some_and(|s| !s.is_empty()) {
                    ex.partial("reasoning not scanned");
                }
            }
            ReasoningMode::Strip => *field = Nullable::Absent,
            ReasoningMode::Scan => {
                block = run_field(field, slot, ex, Stage::Reasoning, index, name)
            }
        }
    }
    if let Nullable::Present(calls) = &mut d.tool_calls {
        let mut kept = Vec::with_capacity(calls.len());
        for (pos, mut call) in std::mem::take(calls).into_iter().enumerate() {
            if block.is_some() {
                break;
            }
            let ti = call.index.get().copied().unwrap_or(pos as u32);
            if let Some(args) = call.function.get_mut().and_then(|f| f.arguments.get_mut())
                && !args.is_empty()
            {
                let sc = tool_scanner(st, ex, ti);
                let o = sc.push(args);
                note(ex, &o, index, &format!("tool_calls[{ti}].arguments"));
                *args = o.text;
                block = o.block;
            }
            kept.push(call);
        }
        *calls = kept;
    }
    if d.extra.contains_key("audio") {
        ex.partial("audio output not scanned");
    }
    if d.role.get().is_some() {
        st.role_sent = true;
    }
    if block.is_none() && choice.finish_reason.get().is_some() {
        st.finish_seen = true;
        return flush_choice(st, ex, choice);
    }
    finalize(st, ex, choice, block)
}

fn tool_scanner<'a>(st: &'a mut ChoiceState, ex: &Exchange, ti: u32) -> &'a mut ChainScanner {
    let i = match st.tools.iter().position(|(t, _)| *t == ti) {
        Some(i) => i,
        None => {
            st.tools
                .push((ti, ChainScanner::new(&ex.set, Stage::Output)));
            st.tools.len() - 1
        }
    };
    &mut st.tools[i].1
}

/// Ends a choice: releases everything its scanners hold into `choice` (which keeps its own
/// `finish_reason`, if any).
fn flush_choice(
    st: &mut ChoiceState,
    ex: &mut Exchange,
    mut choice: ChunkChoice,
) -> Option<ChunkChoice> {
    let index = st.index;
    let mut block: Option<PolicyFinding> = None;
    let d = &mut choice.delta;

    // Content: what the strippers held, then what the scanners held.
    let mut tail = String::new();
    let n = st.strippers.len();
    for k in 0..n {
        let mut t = st.strippers[k].push(&tail);
        t.push_str(&st.strippers[k].finish());
        tail = t;
    }
    for s in &st.strippers {
        if s.blocks() > 0 {
            let text = mask_deliberation(ex, s.hidden());
            ex.record.deliberation.push(Deliberation {
                choice: index,
                text,
                truncated: s.truncated(),
            });
        }
    }
    st.strippers.clear();
    if !tail.is_empty() || st.content.is_some() {
        let sc = scanner(&mut st.content, ex, Stage::Output);
        let mut o = sc.push(&tail);
        if o.block.is_none() {
            let f = sc.finish();
            o.text.push_str(&f.text);
            o.findings.extend(f.findings);
            o.block = f.block;
        }
        note(ex, &o, index, "content");
        append(&mut d.content, &o.text);
        block = block.or(o.block);
    }
    for (name, field, slot) in [
        ("refusal", &mut d.refusal, &mut st.refusal),
        (
            "reasoning_content",
            &mut d.reasoning_content,
            &mut st.reasoning_content,
        ),
        ("reasoning", &mut d.reasoning, &mut st.reasoning),
    ] {
        if block.is_some() {
            break;
        }
        if let Some(sc) = slot.as_mut() {
            let o = sc.finish();
            note(ex, &o, index, name);
            append(field, &o.text);
            block = o.block;
        }
    }
    for (ti, sc) in st.tools.iter_mut() {
        if block.is_some() {
            break;
        }
        let o = sc.finish();
        note(ex, &o, index, &format!("tool_calls[{ti}].arguments"));
        block = o.block;
        if o.text.is_empty() {
            continue;
        }
        let calls = match &mut d.tool_calls {
            Nullable::Present(c) => c,
            slot => {
                *slot = Nullable::Present(Vec::new());
                match slot {
                    Nullable::Present(c) => c,
                    // Just set above.
                    _ => continue,
                }
            }
        };
        match calls.iter_mut().find(|c| c.index.get() == Some(ti)) {
            Some(c) => {
                if let Some(f) = c.function.get_mut() {
                    append(&mut f.arguments, &o.text);
                }
            }
            None => calls.push(ToolCall {
                index: Nullable::Present(*ti),
                id: Nullable::Absent,
                type_: Nullable::Absent,
                function: Nullable::Present(FunctionCall {
                    name: Nullable::Absent,
                    arguments: Nullable::Present(o.text),
                    extra: Map::new(),
                }),
                extra: Map::new(),
            }),
        }
    }
    st.finished = true;
    finalize(st, ex, choice, block)
}

fn append(field: &mut Nullable<String>, text: &str) {
    if text.is_empty() {
        return;
    }
    match field {
        Nullable::Present(s) => s.push_str(text),
        _ => *field = Nullable::Present(text.to_owned()),
    }
}

/// Applies a block (if any) to an outgoing choice, tidies it, and drops it when empty.
fn finalize(
    st: &mut ChoiceState,
    ex: &mut Exchange,
    mut choice: ChunkChoice,
    block: Option<PolicyFinding>,
) -> Option<ChunkChoice> {
    if let Some(lp) = choice.extra.get_mut("logprobs")
        && !lp.is_null()
    {
        // Log probabilities carry the tokens of the text as the upstream sent it.
        *lp = Value::Null;
    }
    if let Some((pi, f)) = block {
        ex.act(Action::Block);
        st.blocked = true;
        st.finished = true;
        let refusal = ex
            .set
            .policies()
            .get(pi)
            .map(|p| p.refusal_for(p.rule(&f.rule)))
            .unwrap_or_default();
        st.refusal_text = Some(refusal.clone());
        if !st.sent_payload && !has_payload(&choice) {
            choice.delta.content = Nullable::Present(refusal);
            if !st.role_sent {
                choice.delta.role = Nullable::Present("assistant".to_owned());
            }
        }
        choice.finish_reason = Nullable::Present(CONTENT_FILTER.to_owned());
        return Some(choice);
    }
    if has_payload(&choice) {
        st.sent_payload = true;
    }
    // Sent even when its text is held back, so every upstream chunk (and its fields) goes on.
    Some(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `emit` writes what `encode_data` of the serialized chunk writes, line breaks in the
    /// text included.
    #[test]
    fn emit_matches_encode_data() {
        let v = parse_strict(
            br#"{"id":"c","choices":[{"index":0,"delta":{"content":"a\nb\r\nc\u2028"}}]}"#,
        )
        .expect("valid");
        let chunk = chunk_from_value(v).expect("a chunk");
        let mut want = BytesMut::new();
        encode_data(
            &serde_json::to_string(&chunk).expect("serializable"),
            &mut want,
        );
        let mut out = BytesMut::new();
        out.extend_from_slice(b"data: ");
        serde_json::to_writer((&mut out).writer(), &chunk).expect("serializable");
        out.extend_from_slice(b"\n\n");
        assert_eq!(out, want);
    }

    /// The hand-made decoding of text chunks must give what serde gives, and leave every other
    /// shape (and every error) to serde.
    #[test]
    fn chunk_from_value_matches_serde() {
        let cases = [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":1,"delta":{"content":null,"refusal":"no","reasoning":"r","reasoning_content":"rc","x":1},"finish_reason":"stop","content_filter_results":{}}]}"#,
            r#"{"id":"c1","choices":[{"delta":null}]}"#,
            r#"{"id":"c1","choices":[{}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"id":"c1","usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":null}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"function_call":{"arguments":"{"}}}]}"#,
            r#"{"choices":[{"index":4294967295,"delta":{"content":"a"}},{"index":2,"delta":{"content":"b"}}]}"#,
            // Shapes serde rejects: the same error either way.
            r#"{"choices":null}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[1]}"#,
            r#"{"choices":[{"index":-1}]}"#,
            r#"{"choices":[{"index":4294967296}]}"#,
            r#"{"choices":[{"index":1.5}]}"#,
            r#"{"choices":[{"index":null}]}"#,
            r#"{"choices":[{"delta":"x"}]}"#,
            r#"{"choices":[{"delta":{"content":1}}]}"#,
            r#"{"choices":[{"delta":{"role":false}}]}"#,
            r#"{"choices":[{"finish_reason":3}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":"x"}}]}"#,
            r#"[1,2]"#,
            r#""text""#,
        ];
        for case in cases {
            let v = parse_strict(case.as_bytes()).expect(case);
            let fast = chunk_from_value(v.clone());
            let serde = from_value::<ChatChunk>(v);
            assert_eq!(fast, serde, "{case}");
            if let Ok(c) = fast {
                assert_eq!(
                    serde_json::to_string(&c).ok(),
                    serde_json::to_string(&serde.expect(case)).ok(),
                    "{case}"
                );
            }
        }
    }
}
