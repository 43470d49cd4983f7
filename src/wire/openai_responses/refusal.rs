//! The Responses shapes the gateway makes itself: a blocked response (`status: "incomplete"`,
//! `incomplete_details.reason: "content_filter"`, one assistant message with a `refusal` part),
//! buffered or streamed, and the events of that refusal message.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use serde_json::{Value, json};

use crate::wire::sse::encode_data;

/// The `incomplete_details.reason` of a response the policy stopped.
pub const CONTENT_FILTER: &str = "content_filter";

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `<prefix>deliberate_` and 24 hex digits: 64 random bits and a process-wide counter, so ids
/// never repeat within a process (`resp_deliberate_…`, `msg_deliberate_…`).
pub(crate) fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(count);
    hasher.write_u64(now());
    format!(
        "{prefix}deliberate_{:016x}{:08x}",
        hasher.finish(),
        count as u32
    )
}

/// The assistant message that carries a refusal.
pub(crate) fn refusal_message(id: &str, text: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "refusal", "refusal": text}],
    })
}

/// Zero usage: the gateway spent no upstream tokens.
fn zero_usage() -> Value {
    json!({
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    })
}

/// A fresh response object (the fields the SDK requires), `in_progress`, no output.
pub(crate) fn response_object(model: &str) -> Value {
    json!({
        "id": new_id("resp_"),
        "object": "response",
        "created_at": now(),
        "status": "in_progress",
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "model": model,
        "output": [],
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": null,
    })
}

/// Marks `response` blocked: `incomplete` for `content_filter`, with `output` as given (and the
/// `output_text` convenience field, when present, emptied).
pub(crate) fn mark_blocked(response: &mut Value, output: Vec<Value>) {
    let Value::Object(r) = response else { return };
    r.insert("status".into(), "incomplete".into());
    r.insert(
        "incomplete_details".into(),
        json!({"reason": CONTENT_FILTER}),
    );
    if r.get("output_text").is_some() {
        r.insert("output_text".into(), "".into());
    }
    r.insert("output".into(), Value::Array(output));
}

/// A whole buffered refusal: an incomplete response whose only output is the refusal.
pub(crate) fn refusal_response(model: &str, text: &str) -> Value {
    let mut r = response_object(model);
    mark_blocked(
        &mut r,
        vec![refusal_message(&new_id("msg_"), text, "incomplete")],
    );
    if let Value::Object(m) = &mut r {
        m.insert("usage".into(), zero_usage());
    }
    r
}

/// The events that stream a refusal message at `output_index` (without sequence numbers),
/// from `output_item.added` to `output_item.done`.
pub(crate) fn refusal_item_events(output_index: usize, text: &str) -> (Vec<Value>, Value) {
    let id = new_id("msg_");
    let mut added = refusal_message(&id, "", "in_progress");
    added["content"] = json!([]);
    let done = refusal_message(&id, text, "incomplete");
    let base = |t: &str| json!({"type": t, "item_id": id, "output_index": output_index, "content_index": 0});
    let mut part_added = base("response.content_part.added");
    part_added["part"] = json!({"type": "refusal", "refusal": ""});
    let mut delta = base("response.refusal.delta");
    delta["delta"] = text.into();
    let mut rdone = base("response.refusal.done");
    rdone["refusal"] = text.into();
    let mut part_done = base("response.content_part.done");
    part_done["part"] = json!({"type": "refusal", "refusal": text});
    let events = vec![
        json!({"type": "response.output_item.added", "output_index": output_index, "item": added}),
        part_added,
        delta,
        rdone,
        part_done,
        json!({"type": "response.output_item.done", "output_index": output_index, "item": done.clone()}),
    ];
    (events, done)
}

/// Writes `event` as an SSE event named by its `type`, with sequence number `*seq` (then
/// incremented). Compact JSON holds no line break, so the data is one line.
pub(crate) fn write_event(mut event: Value, seq: &mut u64, out: &mut BytesMut) {
    if let Value::Object(m) = &mut event {
        m.insert("sequence_number".into(), (*seq).into());
    }
    *seq += 1;
    let name = event.get("type").and_then(Value::as_str).unwrap_or("");
    if !name.is_empty() && !name.contains(['\r', '\n']) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\n");
    }
    encode_data(&event.to_string(), out);
}

/// A whole refusal stream: `response.created`, `response.in_progress`, the refusal message,
/// `response.incomplete`.
pub(crate) fn refusal_stream(model: &str, text: &str) -> BytesMut {
    let mut out = BytesMut::new();
    let mut seq = 0;
    let response = response_object(model);
    for t in ["response.created", "response.in_progress"] {
        write_event(json!({"type": t, "response": response}), &mut seq, &mut out);
    }
    let (events, done) = refusal_item_events(0, text);
    for e in events {
        write_event(e, &mut seq, &mut out);
    }
    let mut end = response;
    mark_blocked(&mut end, vec![done]);
    end["usage"] = zero_usage();
    write_event(
        json!({"type": "response.incomplete", "response": end}),
        &mut seq,
        &mut out,
    );
    out
}
