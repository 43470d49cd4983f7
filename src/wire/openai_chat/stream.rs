//! Streamed chat completions: each choice's channels (content, refusal, reasoning, every tool
//! call's arguments, a legacy `function_call`) go through the filter; every upstream chunk is
//! re-encoded with only the text the filter released, keeping `id`, `model`, `created`,
//! `system_fingerprint`, usage chunks and unknown fields. A block ends the choice in-band with
//! `finish_reason: "content_filter"` (with the refusal as content when nothing of the choice was
//! sent yet); when every choice is over the stream ends with `data: [DONE]`.
//!
//! One concern in one file (over 600 lines): rewriting one Chat Completions stream.

use bytes::{BufMut, Bytes};
use serde_json::{Map, Value};

use super::chunk::chunk_from_value;
use super::refusal::{CONTENT_FILTER, CompletionMeta, stream_with};
use super::types::{ChatChunk, ChunkChoice, Delta, FunctionCall, Nullable, ToolCall};
use crate::wire::json::parse_strict;
use crate::wire::sse::{DONE, DONE_FRAME, encode_data};
use crate::wire::walk::{self, Edit};
use crate::wire::{
    Channel, ChannelId, ChannelKind, Emit, ErrorInfo, RequestFacts, SseEvent, Step, StreamEnd,
    StreamRewriter, TextFilter, Verdict, WireError,
};

/// Fields of a chunk that are read as identifiers or enums, not text, and pass unread: the
/// completion's `id`, `object` (`chat.completion.chunk`), `created` (a number), `model` (the
/// model's name), `system_fingerprint` (a backend configuration id) and `service_tier` (an
/// enum). No model writes them. They are also the only fields the chunks the gateway writes
/// itself copy. Everything else of a chunk — `usage` (numbers, and whatever strings a vendor
/// nests there), `obfuscation` (random padding, free text), an `error` object, vendor fields —
/// is scanned.
const CHUNK_META: [&str; 6] = super::UNREAD_TOP_LEVEL;

/// Fields of a chunk choice that pass unread: `logprobs` only, and it is never sent (it is set
/// to `null`: it carries the tokens of the text as the upstream sent it). `stop_reason` (vLLM:
/// the stop string that matched) and `content_filter_results` (Azure) can carry text: scanned.
const CHOICE_META: [&str; 1] = ["logprobs"];

/// The rewriter of one streamed chat completion.
#[derive(Debug)]
pub(crate) struct ChatStream {
    facts: RequestFacts,
    choices: Vec<ChoiceState>,
    template: Option<Map<String, Value>>,
}

#[derive(Debug)]
struct ChoiceState {
    index: u32,
    content: Option<ChannelId>,
    refusal: Option<ChannelId>,
    reasoning_content: Option<ChannelId>,
    reasoning: Option<ChannelId>,
    tools: Vec<(u32, ChannelId)>,
    function_call: Option<ChannelId>,
    role_sent: bool,
    sent_payload: bool,
    finished: bool,
    blocked: bool,
    finish_seen: bool,
}

impl ChoiceState {
    fn new(index: u32) -> Self {
        ChoiceState {
            index,
            content: None,
            refusal: None,
            reasoning_content: None,
            reasoning: None,
            tools: Vec::new(),
            function_call: None,
            role_sent: false,
            sent_payload: false,
            finished: false,
            blocked: false,
            finish_seen: false,
        }
    }
}

impl ChatStream {
    pub(crate) fn new(facts: &RequestFacts) -> Self {
        ChatStream {
            facts: facts.clone(),
            choices: Vec::new(),
            template: None,
        }
    }

    fn state_index(&mut self, index: u32) -> usize {
        if let Some(i) = self.choices.iter().position(|c| c.index == index) {
            return i;
        }
        self.choices.push(ChoiceState::new(index));
        self.choices.len() - 1
    }

    fn on_chunk(
        &mut self,
        mut chunk: ChatChunk,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Step {
        if self.template.is_none() {
            // The chunks the gateway writes itself copy the identifiers only: never a field
            // that is scanned (its text may be blocked, or redacted below).
            let t = chunk
                .extra
                .iter()
                .filter(|(k, _)| CHUNK_META.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.template = Some(t);
        }
        // Strings of the chunk itself that the format does not define (an `error` object, a
        // vendor field, usage, padding): scanned whole; a block there ends every choice (and
        // this chunk is not sent).
        let mut chunk_block = None;
        scan_fields(
            filter,
            0,
            &mut chunk.extra,
            &CHUNK_META,
            &|k| k.to_owned(),
            &mut chunk_block,
        );
        if let Some(refusal) = chunk_block {
            return self.block_all(out, &refusal);
        }
        let had_choices = !chunk.choices.is_empty();
        let mut kept = Vec::with_capacity(chunk.choices.len());
        for choice in std::mem::take(&mut chunk.choices) {
            let i = self.state_index(choice.index);
            if let Some(c) = process_choice(&mut self.choices[i], filter, choice) {
                kept.push(c);
            }
        }
        let has_usage = chunk.extra.get("usage").is_some_and(|u| !u.is_null());
        // Fields of the chunk itself that the format does not define go on even when every
        // choice in it is held back (padding alone does not make a chunk worth sending).
        let has_own_fields = chunk
            .extra
            .iter()
            .any(|(k, v)| !CHUNK_META.contains(&k.as_str()) && k != "obfuscation" && !v.is_null());
        if !had_choices || !kept.is_empty() || has_usage || has_own_fields {
            out.progress |= !had_choices || kept.iter().any(has_payload);
            chunk.choices = kept;
            emit(out, &chunk);
        }
        let n = self.facts.n as usize;
        let ended = self.choices.iter().filter(|c| c.finished).count() >= n;
        if ended && self.choices.iter().any(|c| c.blocked) {
            // Every choice is over and one was blocked: stop reading the upstream.
            out.buf.extend_from_slice(DONE_FRAME);
            out.progress = true;
            return Step::Ended(StreamEnd {
                all_blocked: self.choices.iter().all(|c| c.blocked),
                complete: true,
                terminal_seen: false,
            });
        }
        Step::Continue
    }

    /// A block outside any choice: every choice ends with `content_filter`.
    fn block_all(&mut self, out: &mut Emit, refusal: &str) -> Step {
        for i in 0..self.facts.n.max(1) {
            self.state_index(i);
        }
        let template = self.template.clone().unwrap_or_default();
        for st in self.choices.iter_mut().filter(|c| !c.finished) {
            let choice = ChunkChoice {
                index: st.index,
                delta: Delta::default(),
                finish_reason: Nullable::Absent,
                extra: Map::new(),
            };
            let c = finalize(st, choice, Some(refusal.to_owned()));
            emit(
                out,
                &ChatChunk {
                    choices: c.into_iter().collect(),
                    extra: template.clone(),
                },
            );
        }
        out.buf.extend_from_slice(DONE_FRAME);
        out.progress = true;
        Step::Ended(StreamEnd {
            all_blocked: true,
            complete: true,
            terminal_seen: false,
        })
    }
}

impl StreamRewriter for ChatStream {
    fn event(
        &mut self,
        event: &SseEvent,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<Step, WireError> {
        if event.data == DONE {
            let mut end = self.flush_all(filter, out);
            end.terminal_seen = true;
            end.complete = true;
            out.buf.extend_from_slice(DONE_FRAME);
            out.progress = true;
            return Ok(Step::Ended(end));
        }
        let chunk = parse_strict(event.data.as_bytes()).and_then(chunk_from_value)?;
        Ok(self.on_chunk(chunk, filter, out))
    }

    fn end(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) -> StreamEnd {
        let end = self.flush_all(filter, out);
        if !end.complete {
            let info = ErrorInfo::new(
                crate::wire::ErrorKind::Upstream,
                "upstream stream ended before it was complete",
                "upstream_truncated",
            );
            encode_data(&info.openai_body().to_string(), &mut out.buf);
        }
        out.buf.extend_from_slice(DONE_FRAME);
        out.progress = true;
        end
    }

    fn refusal(&self, text: &str) -> Bytes {
        let template = self.template.clone().unwrap_or_default();
        let meta = CompletionMeta::from_extra(&template, &self.facts.model);
        stream_with(&meta, self.facts.n, self.facts.include_usage, text)
    }

    fn error(&self, error: &ErrorInfo, out: &mut Emit) {
        encode_data(&error.openai_body().to_string(), &mut out.buf);
        out.buf.extend_from_slice(DONE_FRAME);
        out.progress = true;
    }
}

impl ChatStream {
    /// Releases what every unfinished choice holds; says whether the stream was complete.
    fn flush_all(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) -> StreamEnd {
        for i in 0..self.choices.len() {
            if self.choices[i].finished {
                continue;
            }
            let choice = ChunkChoice {
                index: self.choices[i].index,
                delta: Delta::default(),
                finish_reason: Nullable::Absent,
                extra: Map::new(),
            };
            if let Some(c) = flush_choice(&mut self.choices[i], filter, choice)
                && (has_payload(&c) || !c.finish_reason.is_absent())
            {
                out.progress = true;
                let chunk = ChatChunk {
                    choices: vec![c],
                    extra: self.template.clone().unwrap_or_default(),
                };
                emit(out, &chunk);
            }
        }
        let all_blocked = !self.choices.is_empty() && self.choices.iter().all(|c| c.blocked);
        StreamEnd {
            all_blocked,
            complete: !self.choices.is_empty()
                && self.choices.iter().all(|c| c.finish_seen || c.blocked),
            terminal_seen: false,
        }
    }
}

/// Queues `chunk` as one `data:` event. Compact JSON holds no line break (serde_json escapes
/// them inside strings), so the event is one `data:` line, written straight into the output
/// buffer: what `encode_data` would write, without the copy and the line scan.
fn emit(out: &mut Emit, chunk: &ChatChunk) {
    let start = out.buf.len();
    out.buf.extend_from_slice(b"data: ");
    match serde_json::to_writer((&mut out.buf).writer(), chunk) {
        Ok(()) => out.buf.extend_from_slice(b"\n\n"),
        // Serializing a value that was parsed from JSON cannot fail; leave nothing half-written.
        Err(_) => out.buf.truncate(start),
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
        || d.extra.contains_key("function_call")
        || c.finish_reason.get().is_some()
}

/// Scans every string inside `v` whole, as [`ChannelKind::Other`]; rewrites redactions in
/// place; returns the refusal on a block.
fn scan_strings(
    filter: &mut dyn TextFilter,
    unit: u32,
    path: &str,
    v: &mut Value,
) -> Option<String> {
    match walk::scan_strings(filter, unit, path, "", v, &|_| false) {
        Edit::Blocked(refusal) => Some(refusal),
        Edit::Kept | Edit::Changed => None,
    }
}

/// Scans the fields of `m` in order with [`scan_strings`] (its path `at(key)`); keys in
/// `unread` pass as they are. Once `block` is set — by a field before `m` or by one of `m`'s —
/// the field that blocked and every field after it (not read) are removed from `m`: nothing
/// blocked or unread goes out beside the choice's `content_filter` end.
fn scan_fields(
    filter: &mut dyn TextFilter,
    unit: u32,
    m: &mut Map<String, Value>,
    unread: &[&str],
    at: &dyn Fn(&str) -> String,
    block: &mut Option<String>,
) {
    m.retain(|k, v| {
        if block.is_some() {
            return false;
        }
        if unread.contains(&k.as_str()) {
            return true;
        }
        *block = scan_strings(filter, unit, &at(k), v);
        block.is_none()
    });
}

fn channel(
    slot: &mut Option<ChannelId>,
    filter: &mut dyn TextFilter,
    make: impl FnOnce() -> Channel,
) -> ChannelId {
    *slot.get_or_insert_with(|| filter.open(make()))
}

/// Runs one text field of a delta through its channel; returns the block, if any.
fn run_field(
    field: &mut Nullable<String>,
    slot: &mut Option<ChannelId>,
    filter: &mut dyn TextFilter,
    make: impl FnOnce() -> Channel,
) -> Option<String> {
    let Nullable::Present(text) = field else {
        return None;
    };
    if text.is_empty() {
        return None;
    }
    let id = channel(slot, filter, make);
    match filter.push(id, text) {
        Verdict::Send(t) => {
            *text = t;
            None
        }
        Verdict::Strip => {
            *field = Nullable::Absent;
            None
        }
        Verdict::Block { refusal, released } => {
            *text = released;
            Some(refusal)
        }
    }
}

/// Processes one upstream choice delta; `None` when the choice is already over (blocked).
fn process_choice(
    st: &mut ChoiceState,
    filter: &mut dyn TextFilter,
    mut choice: ChunkChoice,
) -> Option<ChunkChoice> {
    if st.finished {
        return None;
    }
    let index = st.index;
    let d = &mut choice.delta;
    let loc = |f: &str| format!("choices[{index}].{f}");
    let mut block = run_field(&mut d.content, &mut st.content, filter, || {
        Channel::new(ChannelKind::Content, index, loc("content"))
    });
    if block.is_none() {
        block = run_field(&mut d.refusal, &mut st.refusal, filter, || {
            Channel::new(ChannelKind::Refusal, index, loc("refusal"))
        });
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
        block = run_field(field, slot, filter, || {
            Channel::new(ChannelKind::Reasoning, index, loc(name))
        });
    }
    if let Nullable::Present(calls) = &mut d.tool_calls {
        let mut kept = Vec::with_capacity(calls.len());
        for (pos, mut call) in std::mem::take(calls).into_iter().enumerate() {
            if block.is_some() {
                // This call and the ones after it were not read.
                break;
            }
            let ti = call.index.get().copied().unwrap_or(pos as u32);
            block = process_call(st, filter, ti, &mut call);
            kept.push(call);
        }
        *calls = kept;
    }
    delta_extra(st, filter, d, &mut block);
    scan_fields(
        filter,
        index,
        &mut choice.extra,
        &CHOICE_META,
        &|k| loc(k),
        &mut block,
    );
    if choice.delta.role.get().is_some() {
        st.role_sent = true;
    }
    if block.is_none() && choice.finish_reason.get().is_some() {
        st.finish_seen = true;
        return flush_choice(st, filter, choice);
    }
    finalize(st, choice, block)
}

/// One tool call of a delta: its name, its arguments (streamed as JSON text), and every other
/// string of it (a custom tool's `input`, unknown fields) whole. On a block, whatever of the
/// call blocked or was not read yet is removed; released arguments stay.
fn process_call(
    st: &mut ChoiceState,
    filter: &mut dyn TextFilter,
    ti: u32,
    call: &mut ToolCall,
) -> Option<String> {
    let index = st.index;
    let loc = |f: &str| format!("choices[{index}].tool_calls[{ti}].{f}");
    let mut block = None;
    if let Some(f) = call.function.get_mut() {
        if let Some(name) = f.name.get_mut() {
            let c = Channel::new(ChannelKind::ToolName, index, loc("name"));
            match filter.scan(&c, name) {
                Verdict::Send(t) => *name = t,
                Verdict::Strip => name.clear(),
                Verdict::Block { refusal, .. } => {
                    f.name = Nullable::Absent;
                    f.arguments = Nullable::Absent;
                    block = Some(refusal);
                }
            }
        }
        if block.is_none()
            && let Some(args) = f.arguments.get_mut()
            && !args.is_empty()
        {
            let id = tool_channel(st, filter, ti);
            match filter.push(id, args) {
                Verdict::Send(t) => *args = t,
                Verdict::Strip => args.clear(),
                Verdict::Block { refusal, released } => {
                    *args = released;
                    block = Some(refusal);
                }
            }
        }
        scan_fields(
            filter,
            index,
            &mut f.extra,
            &[],
            &|k| loc(&format!("function.{k}")),
            &mut block,
        );
    }
    // Custom tool calls (`{"type":"custom","custom":{"name","input"}}`) and anything else a
    // call carries.
    scan_fields(filter, index, &mut call.extra, &[], &|k| loc(k), &mut block);
    block
}

/// The delta's other fields: a legacy `function_call` (its `arguments` streamed as JSON text),
/// `audio` (not scanned), and any unknown string. On a block (here or earlier in the choice),
/// the field that blocked and every field not read yet are removed.
fn delta_extra(
    st: &mut ChoiceState,
    filter: &mut dyn TextFilter,
    d: &mut Delta,
    block: &mut Option<String>,
) {
    let index = st.index;
    d.extra.retain(|k, v| {
        if block.is_some() {
            return false;
        }
        match (k.as_str(), v) {
            ("audio", _) => {
                filter.partial("audio output not scanned");
                true
            }
            ("function_call", Value::Object(fc)) => {
                function_call_fields(st, filter, fc, block);
                // What it kept was read (its released arguments): it goes on.
                true
            }
            (k, v) => {
                *block = scan_strings(filter, index, &format!("choices[{index}].delta.{k}"), v);
                block.is_none()
            }
        }
    });
}

/// The fields of a streamed legacy `function_call`: `arguments` through its channel, every
/// other string whole. On a block, the released arguments stay; the field that blocked and the
/// fields not read yet are removed.
fn function_call_fields(
    st: &mut ChoiceState,
    filter: &mut dyn TextFilter,
    fc: &mut Map<String, Value>,
    block: &mut Option<String>,
) {
    let index = st.index;
    fc.retain(|fk, fv| {
        if block.is_some() {
            return false;
        }
        let path = format!("choices[{index}].function_call.{fk}");
        match (fk.as_str(), fv) {
            ("arguments", Value::String(args)) if !args.is_empty() => {
                let id = channel(&mut st.function_call, filter, || {
                    Channel::new(ChannelKind::ToolArguments, index, path).json()
                });
                match filter.push(id, args) {
                    Verdict::Send(t) => *args = t,
                    Verdict::Strip => args.clear(),
                    Verdict::Block { refusal, released } => {
                        *args = released;
                        *block = Some(refusal);
                    }
                }
                true
            }
            (_, fv) => {
                *block = scan_strings(filter, index, &path, fv);
                block.is_none()
            }
        }
    });
}

fn tool_channel(st: &mut ChoiceState, filter: &mut dyn TextFilter, ti: u32) -> ChannelId {
    if let Some((_, id)) = st.tools.iter().find(|(t, _)| *t == ti) {
        return *id;
    }
    let index = st.index;
    let id = filter.open(
        Channel::new(
            ChannelKind::ToolArguments,
            index,
            format!("choices[{index}].tool_calls[{ti}].arguments"),
        )
        .json(),
    );
    st.tools.push((ti, id));
    id
}

/// Closes `slot`'s channel into `field`; returns the block, if any.
fn close_into(
    slot: Option<ChannelId>,
    filter: &mut dyn TextFilter,
    field: &mut Nullable<String>,
) -> Option<String> {
    let id = slot?;
    match filter.close(id) {
        Verdict::Send(t) => {
            append(field, &t);
            None
        }
        Verdict::Strip => None,
        Verdict::Block { refusal, released } => {
            append(field, &released);
            Some(refusal)
        }
    }
}

/// Ends a choice: releases everything its channels hold into `choice` (which keeps its own
/// `finish_reason`, if any).
fn flush_choice(
    st: &mut ChoiceState,
    filter: &mut dyn TextFilter,
    mut choice: ChunkChoice,
) -> Option<ChunkChoice> {
    let d = &mut choice.delta;
    let mut block = close_into(st.content, filter, &mut d.content);
    for (field, slot) in [
        (&mut d.refusal, st.refusal),
        (&mut d.reasoning_content, st.reasoning_content),
        (&mut d.reasoning, st.reasoning),
    ] {
        if block.is_some() {
            break;
        }
        block = close_into(slot, filter, field);
    }
    let tools = st.tools.clone();
    for (ti, id) in tools {
        if block.is_some() {
            break;
        }
        let text = match filter.close(id) {
            Verdict::Send(t) => t,
            Verdict::Strip => String::new(),
            Verdict::Block { refusal, .. } => {
                block = Some(refusal);
                break;
            }
        };
        if text.is_empty() {
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
        match calls.iter_mut().find(|c| c.index.get() == Some(&ti)) {
            Some(c) => {
                if let Some(f) = c.function.get_mut() {
                    append(&mut f.arguments, &text);
                }
            }
            None => calls.push(ToolCall {
                index: Nullable::Present(ti),
                id: Nullable::Absent,
                type_: Nullable::Absent,
                function: Nullable::Present(FunctionCall {
                    name: Nullable::Absent,
                    arguments: Nullable::Present(text),
                    extra: Map::new(),
                }),
                extra: Map::new(),
            }),
        }
    }
    if block.is_none()
        && let Some(id) = st.function_call
    {
        match filter.close(id) {
            Verdict::Send(t) if !t.is_empty() => {
                let fc = d
                    .extra
                    .entry("function_call")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(fc) = fc {
                    match fc.get_mut("arguments") {
                        Some(Value::String(s)) => s.push_str(&t),
                        _ => {
                            fc.insert("arguments".to_owned(), Value::String(t));
                        }
                    }
                }
            }
            Verdict::Block { refusal, .. } => block = Some(refusal),
            _ => {}
        }
    }
    st.finished = true;
    finalize(st, choice, block)
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
    mut choice: ChunkChoice,
    block: Option<String>,
) -> Option<ChunkChoice> {
    if let Some(lp) = choice.extra.get_mut("logprobs")
        && !lp.is_null()
    {
        // Log probabilities carry the tokens of the text as the upstream sent it.
        *lp = Value::Null;
    }
    if let Some(refusal) = block {
        st.blocked = true;
        st.finished = true;
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
        return Some(choice);
    }
    // A choice whose text is all held back and that carries nothing else (no role, no fields
    // beyond null ones) is not sent: an empty `content: ""` delta tells the client nothing.
    let d = &choice.delta;
    let bare = d.role.get().is_none()
        && d.extra.values().all(Value::is_null)
        && choice.extra.values().all(Value::is_null);
    if bare { None } else { Some(choice) }
}
