//! Buffered chat completions: every text of every choice through the filter.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::documents::completion_from_value;
use super::refusal::CONTENT_FILTER;
use super::types::{ChatCompletion, Nullable, ResponseMessage};
use crate::wire::parse_strict;
use crate::wire::walk::{self, Edit as Field, apply};
use crate::wire::{Answer, Channel, ChannelKind, TextFilter, Verdict, WireError};

/// Fields of a response message that hold no text.
const MESSAGE_META: [&str; 1] = ["role"];

/// Scans one string field in place.
fn scan_str(filter: &mut dyn TextFilter, ch: &Channel, text: &mut String) -> Field {
    apply(filter.scan(ch, text), text)
}

/// Scans every string inside `v` as [`ChannelKind::Other`].
fn scan_strings(filter: &mut dyn TextFilter, unit: u32, path: &str, v: &mut Value) -> Field {
    walk::scan_strings(filter, unit, path, "", v, &|_| false)
}

/// Scans and rewrites an upstream chat completion.
pub(crate) fn enforce(body: &Bytes, filter: &mut dyn TextFilter) -> Result<Answer, WireError> {
    let mut resp: ChatCompletion = parse_strict(body).and_then(completion_from_value)?;
    let mut changed = false;
    let mut blocked_choices = 0;
    for choice in resp.choices.iter_mut() {
        let ci = choice.index;
        let Some(msg) = choice.message.get_mut() else {
            continue;
        };
        let (block, modified) = scan_message(filter, ci, msg);
        let mut modified = modified;
        if let Some(refusal) = block {
            blocked_choices += 1;
            choice.message = Nullable::Present(ResponseMessage {
                role: Nullable::Present("assistant".to_owned()),
                content: Nullable::Present(refusal),
                refusal: Nullable::Null,
                tool_calls: Nullable::Absent,
                reasoning_content: Nullable::Absent,
                reasoning: Nullable::Absent,
                extra: Map::new(),
            });
            choice.finish_reason = Nullable::Present(CONTENT_FILTER.to_owned());
            modified = true;
        }
        if modified {
            changed = true;
            // Log probabilities carry the tokens of the original text.
            if let Some(lp) = choice.extra.get_mut("logprobs")
                && !lp.is_null()
            {
                *lp = Value::Null;
            }
        }
    }
    let all_blocked = !resp.choices.is_empty() && blocked_choices == resp.choices.len();
    if !changed {
        // Nothing was rewritten: the upstream's own bytes go on.
        return Ok(Answer {
            body: body.clone(),
            all_blocked: false,
        });
    }
    let out = serde_json::to_vec(&resp).map_err(|e| WireError::Shape {
        message: e.to_string(),
    })?;
    Ok(Answer {
        body: Bytes::from(out),
        all_blocked,
    })
}

/// Scans every text of one choice's message; returns the refusal when it blocks, and whether
/// anything changed.
fn scan_message(
    filter: &mut dyn TextFilter,
    ci: u32,
    msg: &mut ResponseMessage,
) -> (Option<String>, bool) {
    let mut modified = false;
    let step = |f: Field, modified: &mut bool| -> Option<String> {
        match f {
            Field::Kept => None,
            Field::Changed => {
                *modified = true;
                None
            }
            Field::Blocked(r) => Some(r),
        }
    };
    let ch = |kind, loc: String| Channel::new(kind, ci, loc);

    if let Some(text) = msg.content.get_mut() {
        let f = scan_str(
            filter,
            &ch(ChannelKind::Content, format!("choices[{ci}].content")),
            text,
        );
        if let Some(r) = step(f, &mut modified) {
            return (Some(r), modified);
        }
    }
    if let Some(text) = msg.refusal.get_mut() {
        let f = scan_str(
            filter,
            &ch(ChannelKind::Refusal, format!("choices[{ci}].refusal")),
            text,
        );
        if let Some(r) = step(f, &mut modified) {
            return (Some(r), modified);
        }
    }
    if let Some(calls) = msg.tool_calls.get_mut() {
        for (ti, call) in calls.iter_mut().enumerate() {
            if let Some(f) = call.function.get_mut() {
                if let Some(name) = f.name.get_mut() {
                    let c = ch(
                        ChannelKind::ToolName,
                        format!("choices[{ci}].tool_calls[{ti}].name"),
                    );
                    if let Some(r) = step(scan_str(filter, &c, name), &mut modified) {
                        return (Some(r), modified);
                    }
                }
                if let Some(args) = f.arguments.get_mut() {
                    let c = ch(
                        ChannelKind::ToolArguments,
                        format!("choices[{ci}].tool_calls[{ti}].arguments"),
                    )
                    .json();
                    if let Some(r) = step(scan_str(filter, &c, args), &mut modified) {
                        return (Some(r), modified);
                    }
                }
                for (k, v) in f.extra.iter_mut() {
                    let f = scan_strings(
                        filter,
                        ci,
                        &format!("choices[{ci}].tool_calls[{ti}].function.{k}"),
                        v,
                    );
                    if let Some(r) = step(f, &mut modified) {
                        return (Some(r), modified);
                    }
                }
            }
            // Custom tool calls (`{"type":"custom","custom":{"name","input"}}`) and anything
            // else a call carries.
            for (k, v) in call.extra.iter_mut() {
                let f = scan_strings(
                    filter,
                    ci,
                    &format!("choices[{ci}].tool_calls[{ti}].{k}"),
                    v,
                );
                if let Some(r) = step(f, &mut modified) {
                    return (Some(r), modified);
                }
            }
        }
    }
    for (name, field) in [
        ("reasoning_content", &mut msg.reasoning_content),
        ("reasoning", &mut msg.reasoning),
    ] {
        let Some(text) = field.get_mut() else {
            continue;
        };
        let c = ch(ChannelKind::Reasoning, format!("choices[{ci}].{name}"));
        match filter.scan(&c, text) {
            Verdict::Send(s) => {
                if s != *text {
                    *text = s;
                    modified = true;
                }
            }
            Verdict::Strip => {
                *field = Nullable::Absent;
                modified = true;
            }
            Verdict::Block { refusal, .. } => return (Some(refusal), modified),
        }
    }
    for (k, v) in msg.extra.iter_mut() {
        if MESSAGE_META.contains(&k.as_str()) {
            continue;
        }
        if k == "audio" {
            filter.partial("audio output not scanned");
            continue;
        }
        let f = if k == "function_call" {
            scan_function_call(filter, ci, v)
        } else {
            scan_strings(filter, ci, &format!("choices[{ci}].{k}"), v)
        };
        if let Some(r) = step(f, &mut modified) {
            return (Some(r), modified);
        }
    }
    (None, modified)
}

/// A legacy `function_call`: `arguments` is JSON text, `name` the tool's name.
fn scan_function_call(filter: &mut dyn TextFilter, ci: u32, v: &mut Value) -> Field {
    let Value::Object(m) = v else {
        return scan_strings(filter, ci, &format!("choices[{ci}].function_call"), v);
    };
    let mut out = Field::Kept;
    for (k, x) in m.iter_mut() {
        let path = format!("choices[{ci}].function_call.{k}");
        let f = match (k.as_str(), x) {
            ("arguments", Value::String(s)) => scan_str(
                filter,
                &Channel::new(ChannelKind::ToolArguments, ci, path).json(),
                s,
            ),
            ("name", Value::String(s)) => {
                scan_str(filter, &Channel::new(ChannelKind::ToolName, ci, path), s)
            }
            (_, x) => scan_strings(filter, ci, &path, x),
        };
        match f {
            Field::Blocked(r) => return Field::Blocked(r),
            Field::Changed => out = Field::Changed,
            Field::Kept => {}
        }
    }
    out
}
