//! The event shapes of a Responses stream: which delta and `.done` events carry which text,
//! and the delta event that carries what closing a channel released.

use serde_json::{Map, Value, json};

use super::items::Part;
use crate::wire::ChannelId;

/// One streamed text: a field of an output item.
#[derive(Debug)]
pub(crate) struct Chan {
    pub(crate) oi: usize,
    pub(crate) part: Part,
    pub(crate) id: ChannelId,
    pub(crate) item_id: Value,
    /// Bytes of upstream text pushed.
    pub(crate) received: usize,
    /// Everything released so far: what the whole-text events carry.
    pub(crate) released: String,
    pub(crate) closed: bool,
    pub(crate) stripped: bool,
}

/// A numeric field of an event (0 when absent).
pub(crate) fn index(v: &Value, key: &str) -> usize {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0)
}

/// The channel and text field of a delta event.
pub(crate) fn delta_part(t: &str, v: &Value) -> Option<(Part, &'static str)> {
    let part = match t {
        "response.output_text.delta" => Part::Text(index(v, "content_index")),
        "response.refusal.delta" => Part::Refusal(index(v, "content_index")),
        "response.function_call_arguments.delta" => Part::Args,
        "response.custom_tool_call_input.delta" => Part::Input,
        "response.reasoning_summary_text.delta" => Part::Summary(index(v, "summary_index")),
        "response.reasoning_text.delta" => Part::Reasoning(index(v, "content_index")),
        // Audio is base64, not text: reported partial where it is handled.
        "response.audio.delta" => return None,
        _ => match t.strip_suffix(".delta") {
            Some(base) if v.get("delta").is_some_and(Value::is_string) => {
                Part::Other(base.to_owned())
            }
            _ => return None,
        },
    };
    Some((part, "delta"))
}

/// The channel and whole-text field of a `.done` event that repeats one text.
pub(crate) fn done_part(t: &str, v: &Value) -> Option<(Part, &'static str)> {
    Some(match t {
        "response.output_text.done" => (Part::Text(index(v, "content_index")), "text"),
        "response.refusal.done" => (Part::Refusal(index(v, "content_index")), "refusal"),
        "response.function_call_arguments.done" => (Part::Args, "arguments"),
        "response.custom_tool_call_input.done" => (Part::Input, "input"),
        "response.reasoning_summary_text.done" => {
            (Part::Summary(index(v, "summary_index")), "text")
        }
        "response.reasoning_text.done" => (Part::Reasoning(index(v, "content_index")), "text"),
        _ => return None,
    })
}

/// A delta event carrying `text` of channel `c` (what closing it released).
pub(crate) fn delta_event(c: &Chan, text: &str) -> Value {
    let mut e = Map::new();
    let (t, key) = match &c.part {
        Part::Text(i) => (
            "response.output_text.delta".to_owned(),
            Some(("content_index", *i)),
        ),
        Part::Refusal(i) => (
            "response.refusal.delta".to_owned(),
            Some(("content_index", *i)),
        ),
        Part::Args => ("response.function_call_arguments.delta".to_owned(), None),
        Part::Input => ("response.custom_tool_call_input.delta".to_owned(), None),
        Part::Summary(i) => (
            "response.reasoning_summary_text.delta".to_owned(),
            Some(("summary_index", *i)),
        ),
        Part::Reasoning(i) => (
            "response.reasoning_text.delta".to_owned(),
            Some(("content_index", *i)),
        ),
        Part::Name | Part::Other(_) => {
            let base = match &c.part {
                Part::Other(b) => b.as_str(),
                _ => "response.unknown",
            };
            (format!("{base}.delta"), None)
        }
    };
    e.insert("type".into(), t.into());
    e.insert("item_id".into(), c.item_id.clone());
    e.insert("output_index".into(), c.oi.into());
    if let Some((k, i)) = key {
        e.insert(k.into(), i.into());
    }
    e.insert("delta".into(), text.into());
    if matches!(c.part, Part::Text(_)) {
        e.insert("logprobs".into(), json!([]));
    }
    Value::Object(e)
}
