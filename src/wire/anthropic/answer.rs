//! Buffered answers: a Messages response's `content` blocks, scanned and rewritten.
//!
//! | block | channel |
//! |---|---|
//! | `text` | `text` as [`Content`](ChannelKind::Content), `citations` strings as `Other` |
//! | `thinking` | `thinking` as [`Reasoning`](ChannelKind::Reasoning); `signature` dropped when the text was redacted ([`SIGNATURE_DROPPED`]) |
//! | `redacted_thinking` | cannot be scanned: partial |
//! | `tool_use`, `server_tool_use`, `mcp_tool_use` | `name` as `ToolName`, `input` as `ToolArguments` JSON |
//! | anything else (web search results, new block types) | every string as `Other` |
//!
//! Consecutive `text` blocks are scanned as one text (clients show them as one), so a phrase
//! split across blocks is found; an edit goes back into the blocks it spans.
//!
//! A block turns the answer into a refusal message (one text block with the refusal,
//! `stop_reason: "refusal"`) that keeps the upstream's `id`, `model` and `usage`. Stripped
//! reasoning leaves its block with empty `thinking`, so block indices and signatures stay
//! where clients expect them.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::walk::{apply, scan_rest, scan_signature};
use super::{MessageMeta, refusal_message};
use crate::wire::{Answer, Channel, ChannelKind, TextFilter, Verdict, WireError, parse_strict};

/// The `partial` reason of an answer whose `thinking` block the gateway changed: its
/// `signature` no longer signs the text, so it is dropped. The API rejects a thinking block
/// without a valid signature when a client sends it back in a later turn.
pub const SIGNATURE_DROPPED: &str = "thinking edited, signature dropped";

/// Top-level members of a message left unread: identifiers and enums (`id`, `type`, `role`,
/// `model`, `stop_reason`) and `content`, read block by block. Every other member
/// (`stop_sequence`, `usage`, `container`, unknown fields) is the upstream's writing and is
/// scanned.
const MESSAGE_FIELDS: &[&str] = &["id", "type", "role", "model", "content", "stop_reason"];

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
        let mut i = 0;
        while i < blocks.len() {
            let run = blocks[i..].iter().take_while(|b| is_text(b)).count();
            if run > 1 {
                changed |= scan_text_run(filter, &mut blocks[i..i + run], i)?;
                i += run;
                continue;
            }
            if let Some(b) = blocks[i].as_object_mut() {
                changed |= scan_block(filter, b, i)?;
            }
            i += 1;
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
            let before = b.get("thinking").and_then(Value::as_str).map(str::to_owned);
            let edited = scan_field(filter, b, "thinking", ChannelKind::Reasoning, i)?;
            changed |= edited;
            // A redaction: the signature no longer signs the text. Stripping (the operator's
            // choice) leaves it, as documented for stripped reasoning.
            let stripped = edited && b.get("thinking").and_then(Value::as_str) == Some("");
            if edited && !stripped && before.is_some() && b.remove("signature").is_some() {
                filter.partial(SIGNATURE_DROPPED);
            }
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
    // A field read above only when it was a string (a `text` given as a list is read by the
    // generic walk); `input` is read whatever it holds.
    let handled: Vec<&str> = handled
        .iter()
        .copied()
        .filter(|k| *k == "input" || b.get(*k).is_none_or(Value::is_string))
        .collect();
    let at = format!("content[{i}]");
    changed |= scan_rest(filter, b, &handled, &at)?;
    changed |= scan_signature(filter, b, &at)?;
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

/// A `text` block whose `text` is a string.
fn is_text(b: &Value) -> bool {
    b.get("type").and_then(Value::as_str) == Some("text")
        && b.get("text").is_some_and(Value::is_string)
}

/// Consecutive `text` blocks (from `content[first]`), which clients show as one text: scanned
/// as one text, so that a phrase split across blocks is found; an edit goes back into the
/// blocks by [`split_edited`]. Their other strings (citations) are scanned one by one.
fn scan_text_run(
    filter: &mut dyn TextFilter,
    blocks: &mut [Value],
    first: usize,
) -> Result<bool, String> {
    let mut joined = String::new();
    let mut ends = Vec::with_capacity(blocks.len());
    for b in blocks.iter() {
        joined.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""));
        ends.push(joined.len());
    }
    let channel = Channel::new(ChannelKind::Content, 0, format!("content[{first}].text"));
    let mut changed = false;
    match filter.scan(&channel, &joined) {
        Verdict::Send(t) if t == joined => {}
        Verdict::Send(t) => {
            for (b, piece) in blocks.iter_mut().zip(split_edited(&joined, &t, &ends)) {
                b["text"] = Value::String(piece);
            }
            changed = true;
        }
        Verdict::Strip => {
            for b in blocks.iter_mut() {
                b["text"] = Value::String(String::new());
            }
            changed = true;
        }
        Verdict::Block { refusal, .. } => return Err(refusal),
    }
    for (k, b) in blocks.iter_mut().enumerate() {
        if let Some(b) = b.as_object_mut() {
            let at = format!("content[{}]", first + k);
            changed |= scan_rest(filter, b, &["text"], &at)?;
            changed |= scan_signature(filter, b, &at)?;
        }
    }
    Ok(changed)
}

/// Cuts `output` (an edit of `input`) into pieces at the places `ends` (byte offsets of
/// `input`, the last one its length) map to: offsets in the common prefix and suffix keep
/// their place; offsets inside the edited middle go to its end, so the whole edit lands in the
/// block where it starts and no piece of the original middle survives.
pub(super) fn split_edited(input: &str, output: &str, ends: &[usize]) -> Vec<String> {
    let mut p = input
        .bytes()
        .zip(output.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !input.is_char_boundary(p) || !output.is_char_boundary(p) {
        p -= 1;
    }
    let room = input.len().min(output.len()) - p;
    let mut s = input
        .bytes()
        .rev()
        .zip(output.bytes().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    while !input.is_char_boundary(input.len() - s) || !output.is_char_boundary(output.len() - s) {
        s -= 1;
    }
    let map = |o: usize| {
        if o <= p {
            o
        } else if o >= input.len() - s {
            o + output.len() - input.len()
        } else {
            output.len() - s
        }
    };
    let mut pieces = Vec::with_capacity(ends.len());
    let mut last = 0;
    for (k, &e) in ends.iter().enumerate() {
        let end = if k + 1 == ends.len() {
            output.len()
        } else {
            map(e).max(last)
        };
        pieces.push(output.get(last..end).unwrap_or("").to_owned());
        last = end;
    }
    pieces
}
