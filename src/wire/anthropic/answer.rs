//! Buffered answers: a Messages response's `content` blocks, scanned and rewritten.
//!
//! | block | channel |
//! |---|---|
//! | `text` | `text` as [`Content`](ChannelKind::Content), `citations` strings as `Other` |
//! | `thinking` | `thinking` as [`Reasoning`](ChannelKind::Reasoning) (`signature` as it is) |
//! | `redacted_thinking` | cannot be scanned: partial |
//! | `tool_use`, `server_tool_use`, `mcp_tool_use` | `name` as `ToolName`, `input` as `ToolArguments` JSON |
//! | anything else (web search results, new block types) | every string as `Other` |
//!
//! A block turns the answer into a refusal message (one text block with the refusal,
//! `stop_reason: "refusal"`) that keeps the upstream's `id`, `model` and `usage`. Stripped
//! reasoning leaves its block with empty `thinking`, so block indices and signatures stay
//! where clients expect them.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::walk::{apply, scan_rest};
use super::{MessageMeta, refusal_message};
use crate::wire::{Answer, Channel, ChannelKind, TextFilter, Verdict, WireError, parse_strict};

/// Top-level members of a message that carry no text.
const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "type",
    "role",
    "model",
    "content",
    "stop_reason",
    "stop_sequence",
    "usage",
    "container",
];

/// Scans and rewrites a buffered Messages response. See the [module docs](self).
pub fn enforce(body: &Bytes, filter: &mut dyn TextFilter) -> Result<Answer, WireError> {
    let Value::Object(mut msg) = parse_strict(body)? else {
        return Err(WireError::Shape {
            message: "a Messages response is a JSON object".to_owned(),
        });
    };
    if !matches!(msg.get("content"), None | Some(Value::Array(_))) {
        return Err(WireError::Shape {
            message: "`content` of a Messages response must be a list".to_owned(),
        });
    }
    match scan_message(&mut msg, filter) {
        Ok(false) => Ok(Answer {
            body: body.clone(),
            all_blocked: false,
        }),
        Ok(true) => Ok(Answer {
            body: serialize(&Value::Object(msg))?,
            all_blocked: false,
        }),
        Err(refusal) => {
            let meta = MessageMeta::from_message(&Value::Object(msg), "");
            Ok(Answer {
                body: serialize(&refusal_message(&meta, &refusal))?,
                all_blocked: true,
            })
        }
    }
}

fn serialize(v: &Value) -> Result<Bytes, WireError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| WireError::Shape {
            message: e.to_string(),
        })
}

/// Every text of the message; `Ok(changed)` or the refusal of the first block.
fn scan_message(msg: &mut Map<String, Value>, filter: &mut dyn TextFilter) -> Result<bool, String> {
    let mut changed = false;
    if let Some(Value::Array(blocks)) = msg.get_mut("content") {
        for (i, b) in blocks.iter_mut().enumerate() {
            if let Some(b) = b.as_object_mut() {
                changed |= scan_block(filter, b, i)?;
            }
        }
    }
    changed |= scan_rest(filter, msg, MESSAGE_FIELDS, "")?;
    Ok(changed)
}

/// One content block `i`, by type.
fn scan_block(
    filter: &mut dyn TextFilter,
    b: &mut Map<String, Value>,
    i: usize,
) -> Result<bool, String> {
    let kind = b
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut changed = false;
    let handled: &[&str] = match kind.as_str() {
        "text" => {
            changed |= scan_field(filter, b, "text", ChannelKind::Content, i)?;
            &["text"]
        }
        "thinking" => {
            changed |= scan_field(filter, b, "thinking", ChannelKind::Reasoning, i)?;
            &["thinking"]
        }
        "redacted_thinking" => {
            filter.partial("redacted thinking not scanned");
            &["data"]
        }
        "tool_use" | "server_tool_use" | "mcp_tool_use" => {
            changed |= scan_field(filter, b, "name", ChannelKind::ToolName, i)?;
            if let Some(input) = b.get_mut("input") {
                changed |= scan_input(filter, input, &format!("content[{i}].input"))?;
            }
            &["name", "input"]
        }
        _ => &[],
    };
    changed |= scan_rest(filter, b, handled, &format!("content[{i}]"))?;
    Ok(changed)
}

/// Scans the string member `key` of block `i` as one text of `kind`.
fn scan_field(
    filter: &mut dyn TextFilter,
    b: &mut Map<String, Value>,
    key: &str,
    kind: ChannelKind,
    i: usize,
) -> Result<bool, String> {
    let Some(Value::String(s)) = b.get_mut(key) else {
        return Ok(false);
    };
    let verdict = filter.scan(&Channel::new(kind, 0, format!("content[{i}].{key}")), s);
    apply(verdict, s)
}

/// A tool call's `input` object, scanned as JSON text ([`ChannelKind::ToolArguments`]). An
/// edited text that is no longer a JSON object (a redaction across a quote) becomes `{}`:
/// nothing of the matched text goes on. Returns whether the input changed, or the refusal.
pub(super) fn scan_input(
    filter: &mut dyn TextFilter,
    input: &mut Value,
    location: &str,
) -> Result<bool, String> {
    let text = input.to_string();
    let channel = Channel::new(ChannelKind::ToolArguments, 0, location).json();
    let edited = match filter.scan(&channel, &text) {
        Verdict::Send(t) if t == text => return Ok(false),
        Verdict::Send(t) => match serde_json::from_str::<Value>(&t) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Map::new()),
        },
        Verdict::Strip => Value::Object(Map::new()),
        Verdict::Block { refusal, .. } => return Err(refusal),
    };
    if edited == *input {
        return Ok(false);
    }
    *input = edited;
    Ok(true)
}
