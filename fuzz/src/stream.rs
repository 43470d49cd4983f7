//! Each adapter's stream-event decoding and rewriting.
//!
//! The input picks the request's facts and a sequence of events, each either one of the API's
//! own event shapes with a text built from [`VOCAB`] (the blocked phrase whole, cut, escaped;
//! secrets; multi-byte text) or an arbitrary `event:` / `data:` pair. The events go through the
//! adapter's [`StreamRewriter`] with an [`EngineFilter`] over the harness policy, the way the
//! layer drives it (an error ends the stream in-band, a step that ends stops the reading).
//!
//! Oracles: no panic; the client's bytes decode as SSE and every `data` is JSON or `[DONE]`;
//! no string the client receives, and no concatenation of one text's stream deltas, holds
//! [`BLOCKED`] or an unredacted `secret-NNNN`, also after decoding JSON escapes.

use std::sync::OnceLock;

use arbitrary::Unstructured;
use deliberate::wire::json_text::decode;
use deliberate::wire::sse::{SseDecoder, SseEvent};
use deliberate::wire::{
    Adapter, Emit, ErrorInfo, ErrorKind, RequestFacts, Step, TextFilter, anthropic, openai_chat,
    openai_completions, openai_responses,
};
use regex::Regex;
use serde_json::{Value, json};

use crate::filter::EngineFilter;
use crate::{BLOCKED, VOCAB};

/// Most events one case feeds.
const MAX_EVENTS: usize = 64;

/// Chat Completions chunks.
pub fn stream_chat(data: &[u8]) {
    run(&openai_chat::ChatCompletions, data, chat_event);
}

/// Responses events.
pub fn stream_responses(data: &[u8]) {
    run(&openai_responses::Responses, data, responses_event);
}

/// Legacy Completions chunks.
pub fn stream_completions(data: &[u8]) {
    run(&openai_completions::Completions, data, completions_event);
}

/// Anthropic Messages events.
pub fn stream_anthropic(data: &[u8]) {
    run(&anthropic::Messages, data, anthropic_event);
}

/// Builds the event of shape `kind` for unit `u` with text `t`; `None` for an unknown kind.
type Shape = fn(kind: u8, u: u32, t: &str) -> Option<SseEvent>;

fn data(v: Value) -> Option<SseEvent> {
    Some(SseEvent {
        data: v.to_string(),
        ..Default::default()
    })
}

fn named(v: Value) -> Option<SseEvent> {
    let event = v.get("type").and_then(Value::as_str).map(str::to_owned);
    Some(SseEvent {
        event,
        data: v.to_string(),
        id: None,
    })
}

fn done() -> Option<SseEvent> {
    Some(SseEvent {
        data: "[DONE]".into(),
        ..Default::default()
    })
}

fn chat_event(kind: u8, u: u32, t: &str) -> Option<SseEvent> {
    let chunk = |delta: Value, finish: Value| {
        data(
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": u, "delta": delta, "finish_reason": finish}]}),
        )
    };
    match kind % 12 {
        0 => chunk(json!({"content": t}), Value::Null),
        1 => chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        2 => chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "f", "arguments": t}}]}),
            Value::Null,
        ),
        3 => chunk(
            json!({"tool_calls": [{"index": u % 2, "function": {"arguments": t}}]}),
            Value::Null,
        ),
        4 => chunk(json!({"reasoning_content": t}), Value::Null),
        5 => chunk(json!({"refusal": t}), Value::Null),
        6 => chunk(json!({}), json!("stop")),
        7 => data(
            json!({"id": "c1", "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        ),
        8 => done(),
        9 => chunk(
            json!({"function_call": {"name": "f", "arguments": t}}),
            Value::Null,
        ),
        10 => chunk(json!({"content": t}), json!("length")),
        _ => None,
    }
}

fn responses_event(kind: u8, u: u32, t: &str) -> Option<SseEvent> {
    let msg = |status: &str, text: &str| {
        json!({"id": "m1", "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": []}]})
    };
    match kind % 16 {
        0 => named(
            json!({"type": "response.created", "response": {"id": "r", "object": "response",
            "status": "in_progress", "output": []}}),
        ),
        1 => named(
            json!({"type": "response.output_item.added", "output_index": u,
            "item": {"id": "m1", "type": "message", "role": "assistant", "status": "in_progress",
            "content": []}}),
        ),
        2 => named(
            json!({"type": "response.content_part.added", "item_id": "m1",
            "output_index": u, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
        3 => named(
            json!({"type": "response.output_text.delta", "item_id": "m1",
            "output_index": u, "content_index": 0, "delta": t}),
        ),
        4 => named(json!({"type": "response.output_text.done", "item_id": "m1",
            "output_index": u, "content_index": 0, "text": t})),
        5 => named(
            json!({"type": "response.output_item.added", "output_index": u,
            "item": {"id": "fc1", "type": "function_call", "call_id": "c", "name": "f",
            "arguments": "", "status": "in_progress"}}),
        ),
        6 => named(
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc1",
            "output_index": u, "delta": t}),
        ),
        7 => named(
            json!({"type": "response.function_call_arguments.done", "item_id": "fc1",
            "output_index": u, "arguments": t}),
        ),
        8 => named(
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs",
            "output_index": u, "summary_index": 0, "delta": t}),
        ),
        9 => named(json!({"type": "response.refusal.delta", "item_id": "m1",
            "output_index": u, "content_index": 0, "delta": t})),
        10 => named(
            json!({"type": "response.output_item.done", "output_index": u,
            "item": msg("completed", t)}),
        ),
        11 => named(json!({"type": "response.completed", "response": {"id": "r",
            "object": "response", "status": "completed", "output": [msg("completed", t)]}})),
        12 => named(
            json!({"type": "response.content_part.done", "item_id": "m1",
            "output_index": u, "content_index": 0,
            "part": {"type": "output_text", "text": t, "annotations": []}}),
        ),
        13 => named(
            json!({"type": "response.in_progress", "response": {"id": "r",
            "status": "in_progress", "output": []}}),
        ),
        _ => None,
    }
}

fn completions_event(kind: u8, u: u32, t: &str) -> Option<SseEvent> {
    let chunk = |text: &str, finish: Value| {
        data(
            json!({"id": "c", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": u, "text": text, "logprobs": null, "finish_reason": finish}]}),
        )
    };
    match kind % 5 {
        0 | 1 => chunk(t, Value::Null),
        2 => chunk("", json!("stop")),
        3 => done(),
        _ => None,
    }
}

fn anthropic_event(kind: u8, u: u32, t: &str) -> Option<SseEvent> {
    let delta = |d: Value| named(json!({"type": "content_block_delta", "index": u, "delta": d}));
    let start = |b: Value| {
        named(json!({"type": "content_block_start", "index": u,
        "content_block": b}))
    };
    match kind % 14 {
        0 => named(
            json!({"type": "message_start", "message": {"id": "msg", "type": "message",
            "role": "assistant", "content": [], "model": "m", "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 0}}}),
        ),
        1 => start(json!({"type": "text", "text": ""})),
        2 | 3 => delta(json!({"type": "text_delta", "text": t})),
        4 => start(json!({"type": "tool_use", "id": "tu", "name": "f", "input": {}})),
        5 => delta(json!({"type": "input_json_delta", "partial_json": t})),
        6 => start(json!({"type": "thinking", "thinking": ""})),
        7 => delta(json!({"type": "thinking_delta", "thinking": t})),
        8 => named(json!({"type": "content_block_stop", "index": u})),
        9 => named(json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": 1}})),
        10 => named(json!({"type": "message_stop"})),
        11 => named(json!({"type": "ping"})),
        12 => start(json!({"type": "text", "text": t})),
        _ => None,
    }
}

/// A text of up to eight pieces: vocabulary entries or arbitrary strings.
fn text(u: &mut Unstructured<'_>) -> String {
    let n = u.arbitrary::<u8>().unwrap_or(0) % 8;
    let mut t = String::new();
    for _ in 0..n {
        let tag = u.arbitrary::<u8>().unwrap_or(0);
        if tag < 200 {
            t.push_str(VOCAB[usize::from(tag) % VOCAB.len()]);
        } else {
            t.push_str(u.arbitrary::<&str>().unwrap_or(""));
        }
    }
    t
}

/// The events a stream input makes and the client's bytes, for reading a failure.
#[doc(hidden)]
pub fn explain(target: &str, data: &[u8]) -> String {
    let (adapter, shape): (&dyn Adapter, Shape) = match target {
        "stream_chat" => (&openai_chat::ChatCompletions, chat_event),
        "stream_responses" => (&openai_responses::Responses, responses_event),
        "stream_completions" => (&openai_completions::Completions, completions_event),
        _ => (&anthropic::Messages, anthropic_event),
    };
    let (events, out, _) = feed(adapter, data, shape);
    let mut s = String::new();
    for e in events {
        s.push_str(&format!("in:  {:?} {}\n", e.event, e.data));
    }
    s.push_str(&String::from_utf8_lossy(&out));
    s
}

fn run(adapter: &dyn Adapter, data: &[u8], shape: Shape) {
    let (_, out, cut) = feed(adapter, data, shape);
    check_output(&out, cut);
}

/// Feeds the events `data` makes; returns them, the client's bytes, and whether the stream was
/// cut short by an error or a block (then a text may end inside a word).
fn feed(adapter: &dyn Adapter, data: &[u8], shape: Shape) -> (Vec<SseEvent>, Vec<u8>, bool) {
    let mut cut = false;
    let mut fed = Vec::new();
    let mut u = Unstructured::new(data);
    let flags = u.arbitrary::<u8>().unwrap_or(0);
    let facts = RequestFacts {
        stream: true,
        n: 1 + u32::from(flags & 1),
        include_usage: flags & 2 != 0,
        model: "m".into(),
    };
    let mut rw = adapter.stream(&facts);
    let mut filter = EngineFilter::default();
    let mut out = Emit::default();
    let mut ended = false;
    for _ in 0..MAX_EVENTS {
        if u.is_empty() {
            break;
        }
        let kind = u.arbitrary::<u8>().unwrap_or(0);
        let unit = u32::from(u.arbitrary::<u8>().unwrap_or(0) % 3);
        let t = text(&mut u);
        let event = shape(kind, unit, &t).unwrap_or_else(|| SseEvent {
            event: u.arbitrary::<Option<String>>().unwrap_or(None),
            data: t.clone(),
            id: None,
        });
        fed.push(event.clone());
        match rw.event(&event, &mut filter, &mut out) {
            Ok(Step::Continue) => {}
            Ok(Step::Ended(end)) => {
                cut |= !end.complete;
                ended = true;
                break;
            }
            Err(e) => {
                cut = true;
                let info = e.info();
                rw.error(&info, &mut out);
                ended = true;
                break;
            }
        }
    }
    if !ended {
        if flags & 4 != 0 {
            cut = true;
            let info = ErrorInfo::new(ErrorKind::Timeout, "upstream timed out", "upstream_timeout");
            rw.error(&info, &mut out);
        } else {
            cut |= !rw.end(&mut filter, &mut out).complete;
        }
    }
    let _ = rw.refusal("Refused by policy.");
    // A block ends the stream (or its unit) early: the other texts may stop inside a word.
    cut |= (0..4).any(|unit| filter.is_blocked(unit));
    (fed, out.buf.to_vec(), cut)
}

/// The client's bytes: valid SSE, JSON data, no blocked phrase and no unredacted secret.
fn check_output(buf: &[u8], cut: bool) {
    let mut dec = SseDecoder::new(usize::MAX);
    let mut events: Vec<SseEvent> = dec
        .push(buf)
        .unwrap_or_else(|e| panic!("the client's stream does not decode: {e}"))
        .into_iter()
        .filter_map(|i| match i {
            deliberate::wire::sse::SseItem::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(
        dec.finish().expect("decodes").is_none(),
        "the client's stream ends inside an event"
    );
    let values: Vec<Value> = events
        .drain(..)
        .filter(|e| e.data != "[DONE]")
        .map(|e| {
            serde_json::from_str(&e.data)
                .unwrap_or_else(|err| panic!("client event data is not JSON ({err}): {:?}", e.data))
        })
        .collect();
    // Consecutive Anthropic text blocks are one text, as the adapter reads them (clients show
    // them as one): each is keyed by the index of the first block of its run.
    let mut values = values;
    let mut leader: Vec<(Value, Value)> = Vec::new();
    let mut last_text: Option<Value> = None;
    for v in values.iter_mut() {
        let t = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if !t.starts_with("content_block_") {
            continue;
        }
        let Some(i) = v.get("index").cloned() else {
            continue;
        };
        if t == "content_block_start" {
            let text = v.pointer("/content_block/type").and_then(Value::as_str) == Some("text");
            let lead = match (&last_text, text) {
                (Some(l), true) => {
                    // Not a restart of the leader's index.
                    v["type"] = Value::from("content_block_start_joined");
                    l.clone()
                }
                _ => i.clone(),
            };
            last_text = text.then(|| lead.clone());
            leader.push((i.clone(), lead));
        }
        if let Some((_, l)) = leader.iter().rev().find(|(k, _)| *k == i) {
            v["index"] = l.clone();
        }
    }
    // A block or item restarted at an index it already had is a new text (the adapter drops
    // what the old one still held): it is keyed by generation, and every text may then stop
    // inside a word.
    let mut cut = cut;
    let mut starts: Vec<(String, u32)> = Vec::new();
    let mut generation = Vec::with_capacity(values.len());
    for v in &values {
        let t = v.get("type").and_then(Value::as_str).unwrap_or("");
        let at = v.get("index").or_else(|| v.get("output_index"));
        let key = at.map(Value::to_string).unwrap_or_default();
        let start = matches!(t, "content_block_start" | "response.output_item.added");
        match starts.iter_mut().find(|(k, _)| *k == key) {
            // A start at an index that already carried events (a start, or deltas before
            // any start) begins a new text.
            Some((_, g)) if start => {
                *g += 1;
                cut = true;
            }
            Some(_) => {}
            None if at.is_some() => starts.push((key.clone(), 0)),
            None => {}
        }
        let g = starts
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, g)| *g);
        generation.push(g);
    }
    let mut deltas: Vec<(String, String)> = Vec::new();
    for (v, g) in values.iter().zip(generation) {
        let mut strings = Vec::new();
        walk(v, format!("<gen={g}>"), false, &mut strings);
        for (key, s, is_delta) in strings {
            // A delta is a piece of a text: its words are judged in the whole text. A whole
            // string of a stream cut short (`content_part.done` of an item a block closed) is
            // the released prefix of its text, which may stop inside a word.
            if !is_delta {
                leak_check(&s, &key, cut);
            } else {
                match deltas.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, acc)) => acc.push_str(&s),
                    None => deltas.push((key, s)),
                }
            }
        }
    }
    for (key, acc) in &deltas {
        leak_check(acc, key, cut);
    }
}

/// `s` (a whole string, or a text's deltas joined) sends neither the phrase nor a secret; `cut`:
/// the text may stop inside a word.
fn leak_check(s: &str, key: &str, cut: bool) {
    static SECRET: OnceLock<Regex> = OnceLock::new();
    #[allow(clippy::expect_used)] // A constant pattern.
    let secret = SECRET.get_or_init(|| Regex::new(r"secret-\d{4}").expect("pattern"));
    // A redaction stands for a word (`secret-1234`): it must not make a word edge.
    for view in [
        s.replace("[secret]", "x"),
        decode(s).replace("[secret]", "x"),
    ] {
        assert!(
            !has_word(&view, BLOCKED, cut),
            "`{key}` sends the blocked phrase: {s:?}"
        );
        assert!(!secret.is_match(&view), "`{key}` sends a secret: {s:?}");
    }
}

/// `phrase` in `s` as a word: at the start or end, or next to ASCII space or punctuation (the
/// engine's keywords match whole words; this errs towards not flagging).
/// `cut`: the ends of `s` may not be the ends of the text (a text cut short, or carried over a
/// restarted block), so they are no word edges.
fn has_word(s: &str, phrase: &str, cut: bool) -> bool {
    let edge = |c: Option<char>, end: bool| match c {
        None => !end,
        Some(c) => c.is_ascii_whitespace() || (c.is_ascii_punctuation() && c != '_'),
    };
    s.match_indices(phrase).any(|(i, m)| {
        edge(s[..i].chars().next_back(), cut) && edge(s[i + m.len()..].chars().next(), cut)
    })
}

/// Keys whose strings are identifiers or settings the harness does not put text in.
const METADATA: &[&str] = &[
    "id",
    "model",
    "object",
    "type",
    "role",
    "finish_reason",
    "stop_reason",
    "item_id",
    "call_id",
    "name",
    "status",
    "system_fingerprint",
    "code",
    "param",
];

/// Every string of `v` that is not metadata, with a key naming the text it belongs to (its
/// path, and the `index`-like fields along it) and whether it is a stream delta, whose pieces
/// concatenate.
fn walk(v: &Value, path: String, delta: bool, out: &mut Vec<(String, String, bool)>) {
    match v {
        Value::String(s) => out.push((path, s.clone(), delta)),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                // An element that names its own index (a choice, a tool call) is keyed by it
                // alone: the same tool call may sit at another position in the next chunk.
                let named = x.get("index").is_some();
                let at = if named {
                    format!("{path}[]")
                } else {
                    format!("{path}[{i}]")
                };
                walk(x, at, delta, out);
            }
        }
        Value::Object(m) => {
            let mut at = path;
            // A Responses event names its channel by type (refusal and output text deltas of
            // one content part are different texts).
            if at.starts_with("<gen=") && !at.contains('.') {
                if let Some(t) = m.get("type").and_then(Value::as_str) {
                    if t.starts_with("response.") {
                        at.push_str(&format!("<{t}>"));
                    }
                }
            }
            for k in ["index", "output_index", "content_index", "summary_index"] {
                if let Some(i) = m.get(k) {
                    at.push_str(&format!("<{k}={i}>"));
                }
            }
            for (k, x) in m {
                if METADATA.contains(&k.as_str()) {
                    continue;
                }
                // An Anthropic block's start may carry the first piece of its text.
                let name = if k == "content_block" { "delta" } else { k };
                let is_delta = delta
                    || name == "delta"
                    || k == "partial_json"
                    || (k == "text" && at.contains(".choices"));
                walk(x, format!("{at}.{name}"), is_delta, out);
            }
        }
        _ => {}
    }
}
