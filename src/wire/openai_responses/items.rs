//! The texts of an output item (`response.output[]`, `response.output_item.*`), by channel:
//! one walk shared by the buffered answer and the stream, which differ only in where the
//! edited text comes from (a whole-text scan, or what a streamed channel released).

use std::ops::ControlFlow;

use serde_json::Value;

use crate::wire::walk;
use crate::wire::{Channel, ChannelKind};

/// Which text of an output item a channel carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    /// `content[i].text` of an `output_text` part.
    Text(usize),
    /// `content[i].refusal` of a `refusal` part.
    Refusal(usize),
    /// A function call's `arguments` (JSON text).
    Args,
    /// A custom tool call's `input`.
    Input,
    /// `summary[i].text` of a reasoning item.
    Summary(usize),
    /// `content[i].text` of a reasoning item.
    Reasoning(usize),
    /// A tool call's `name`.
    Name,
    /// Any other string ( an annotation, a field of an unknown item): complete
    /// wherever it appears, scanned whole. Stream deltas of unknown events name theirs by the
    /// event type (`response.code_interpreter_call_code`).
    Other(String),
}

impl Part {
    /// The channel of this part in output item `oi`.
    pub(crate) fn channel(&self, oi: usize) -> Channel {
        let at = |rest: String| match rest.chars().next() {
            None => format!("output[{oi}]"),
            Some('[') => format!("output[{oi}]{rest}"),
            Some(_) => format!("output[{oi}].{rest}"),
        };
        match self {
            Part::Text(i) => {
                Channel::new(ChannelKind::Content, 0, at(format!("content[{i}].text")))
            }
            Part::Refusal(i) => {
                Channel::new(ChannelKind::Refusal, 0, at(format!("content[{i}].refusal")))
            }
            Part::Args => {
                Channel::new(ChannelKind::ToolArguments, 0, at("arguments".into())).json()
            }
            Part::Input => Channel::new(ChannelKind::ToolArguments, 0, at("input".into())),
            Part::Summary(i) => {
                Channel::new(ChannelKind::Reasoning, 0, at(format!("summary[{i}].text")))
            }
            Part::Reasoning(i) => {
                Channel::new(ChannelKind::Reasoning, 0, at(format!("content[{i}].text")))
            }
            Part::Name => Channel::new(ChannelKind::ToolName, 0, at("name".into())),
            Part::Other(path) => Channel::new(ChannelKind::Other, 0, at(path.clone())),
        }
    }
}

/// What became of one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Got {
    /// It stays (possibly edited in place).
    Keep,
    /// Leave it out (stripped reasoning).
    Strip,
    /// The answer is blocked: the refusal text.
    Block(String),
}

/// Keys of unknown items and parts the generic walk leaves out: the type and identifiers.
pub(crate) const SKIP: &[&str] = &["type", "id", "call_id", "item_id", "status"];

/// The `partial` reason of an answer with a reasoning item the provider encrypted
/// (`encrypted_content`): the gateway cannot read it, the client can send it back.
pub(crate) const ENCRYPTED_REASONING: &str = "encrypted reasoning items not scanned";

/// Whether output item `item` carries reasoning the provider encrypted.
pub(crate) fn is_encrypted(item: &Value) -> bool {
    item.get("encrypted_content")
        .is_some_and(|e| !e.is_null() && e != "")
}

/// Walks every text of output item `item` (at `output[oi]`), calling `f` with its part, its
/// channel and the text (which `f` may edit). A stripped summary or reasoning text is removed
/// from its list; a stripped other text is emptied. Breaks with the refusal on a block.
///
/// The fields of a known item or part type are read field by field; every other member
/// (an extra field, a field of an unexpected shape such as a message whose `content` is a
/// string) goes through the generic walk as [`Part::Other`], so nothing of an item passes
/// unread but its type and identifiers ([`SKIP`]) and `encrypted_content` (reported with
/// [`ENCRYPTED_REASONING`] by the callers, which hold the filter).
pub(crate) fn rewrite_item(
    item: &mut Value,
    oi: usize,
    f: &mut dyn FnMut(&Part, &Channel, &mut String) -> Got,
) -> ControlFlow<String> {
    let mut one = |part: Part, s: &mut String| -> ControlFlow<String, bool> {
        match f(&part, &part.channel(oi), s) {
            Got::Keep => ControlFlow::Continue(true),
            Got::Strip => ControlFlow::Continue(false),
            Got::Block(r) => ControlFlow::Break(r),
        }
    };
    let Value::Object(it) = item else {
        // A string or list where an item belongs: every string of it.
        return other(item, "", &mut one);
    };
    let kind = it
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut handled: Vec<&'static str> = Vec::new();
    match kind.as_str() {
        "message" => {
            if let Some(Value::Array(parts)) = it.get_mut("content") {
                for (j, p) in parts.iter_mut().enumerate() {
                    content_part(p, j, &mut one)?;
                }
                handled.push("content");
            }
        }
        "function_call" | "custom_tool_call" => {
            if let Some(Value::String(s)) = it.get_mut("name") {
                keep_or_empty(one(Part::Name, s)?, s);
                handled.push("name");
            }
            let (key, part) = if kind == "function_call" {
                ("arguments", Part::Args)
            } else {
                ("input", Part::Input)
            };
            if let Some(Value::String(s)) = it.get_mut(key) {
                keep_or_empty(one(part, s)?, s);
                handled.push(key);
            }
        }
        "reasoning" => {
            handled.push("encrypted_content");
            for (key, mk) in [
                ("summary", Part::Summary as fn(usize) -> Part),
                ("content", Part::Reasoning),
            ] {
                let Some(Value::Array(list)) = it.get_mut(key) else {
                    continue;
                };
                handled.push(key);
                let mut keep = Vec::with_capacity(list.len());
                for (j, e) in list.iter_mut().enumerate() {
                    let at = format!("{key}[{j}]");
                    let k = match e.get_mut("text") {
                        Some(Value::String(s)) => one(mk(j), s)?,
                        _ => true,
                    };
                    match e {
                        Value::Object(m) => {
                            for (ek, ev) in m.iter_mut() {
                                if (ek == "text" && ev.is_string()) || SKIP.contains(&ek.as_str()) {
                                    continue;
                                }
                                other(ev, &format!("{at}.{ek}"), &mut one)?;
                            }
                        }
                        _ => other(e, &at, &mut one)?,
                    }
                    keep.push(k);
                }
                let mut k = keep.into_iter();
                list.retain(|_| k.next().unwrap_or(true));
            }
        }
        _ => {}
    }
    for (k, v) in it.iter_mut() {
        if handled.contains(&k.as_str()) || SKIP.contains(&k.as_str()) {
            continue;
        }
        other(v, k, &mut one)?;
    }
    ControlFlow::Continue(())
}

/// Every string of `v` (at `at` below the item) as [`Part::Other`], but [`SKIP`]ped keys.
fn other(
    v: &mut Value,
    at: &str,
    one: &mut dyn FnMut(Part, &mut String) -> ControlFlow<String, bool>,
) -> ControlFlow<String> {
    walk::strings(v, at, SKIP, &mut |s, at| {
        let k = one(Part::Other(at.to_owned()), s)?;
        keep_or_empty(k, s);
        ControlFlow::Continue(())
    })
}

/// One part of a message's `content` (at `content[j]`): its text field by its type, every
/// other string (annotations, log probabilities, extra fields) as [`Part::Other`].
pub(crate) fn content_part(
    p: &mut Value,
    j: usize,
    one: &mut dyn FnMut(Part, &mut String) -> ControlFlow<String, bool>,
) -> ControlFlow<String> {
    let kind = p
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let at = format!("content[{j}]");
    let (field, part) = match kind.as_str() {
        "output_text" => ("text", Part::Text(j)),
        "refusal" => ("refusal", Part::Refusal(j)),
        "reasoning_text" => ("text", Part::Reasoning(j)),
        _ => return other(p, &at, one),
    };
    let Value::Object(m) = p else {
        return other(p, &at, one);
    };
    if let Some(Value::String(s)) = m.get_mut(field) {
        let k = one(part, s)?;
        keep_or_empty(k, s);
    }
    for (k, v) in m.iter_mut() {
        if (k == field && v.is_string()) || SKIP.contains(&k.as_str()) {
            continue;
        }
        other(v, &format!("{at}.{k}"), one)?;
    }
    ControlFlow::Continue(())
}

fn keep_or_empty(keep: bool, s: &mut String) {
    if !keep {
        s.clear();
    }
}

/// The concatenated `output_text` texts of `output`, what the `output_text` convenience field
/// holds.
pub(crate) fn output_text(output: &[Value]) -> String {
    let mut out = String::new();
    for item in output {
        if item.get("type").and_then(Value::as_str) != Some("message") {
            continue;
        }
        let Some(Value::Array(parts)) = item.get("content") else {
            continue;
        };
        for p in parts {
            if p.get("type").and_then(Value::as_str) == Some("output_text")
                && let Some(t) = p.get("text").and_then(Value::as_str)
            {
                out.push_str(t);
            }
        }
    }
    out
}
