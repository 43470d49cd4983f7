//! A buffered Responses answer: every text of every output item, scanned whole.

use std::ops::ControlFlow;

use bytes::Bytes;
use serde_json::Value;

use super::items::{self, Got, SKIP};
use super::refusal::{mark_blocked, new_id, refusal_message, response_object};
use crate::wire::walk;
use crate::wire::{Answer, Channel, ChannelKind, TextFilter, Verdict, WireError};

/// Scans `text` whole through `filter`, editing it in place.
pub(crate) fn scan_whole(
    filter: &mut dyn TextFilter,
    channel: &Channel,
    text: &mut String,
    changed: &mut bool,
) -> Got {
    match filter.scan(channel, text) {
        Verdict::Send(s) => {
            if s != *text {
                *text = s;
                *changed = true;
            }
            Got::Keep
        }
        Verdict::Strip => {
            *changed = true;
            Got::Strip
        }
        Verdict::Block { refusal: r, .. } => Got::Block(r),
    }
}

/// Members of a response object left unread: identifiers and enums the client correlates or
/// dispatches by, which a redaction would break — `id` (sent back as `previous_response_id`),
/// `object` and `status` (what the SDK parses the object as), `model` (the model's name),
/// `previous_response_id` and `conversation` ids (nested `id`s are [`SKIP`]ped anyway).
/// Numbers and booleans hold no text. `output` is read item by item and `output_text`
/// recomputed from it ([`fix_output_text`]); every other member — `error`, and what the
/// upstream echoes of the request (`instructions`, `tools`, `text`, `metadata`, `reasoning`,
/// `prompt`, `user`, …), `incomplete_details`, `usage`, unknown fields — is the upstream's
/// writing and goes through the generic walk: a hostile or broken upstream can put anything
/// there.
const RESPONSE_UNREAD: &[&str] = &["id", "object", "status", "model", "previous_response_id"];

/// Scans the texts of a response object, rewriting them in place; breaks with the refusal on a
/// block. Output items go through [`items::rewrite_item`] (an encrypted reasoning item makes
/// the answer partial), the other members through [`rewrite_members`]; the `output_text`
/// convenience field, when present, is recomputed from the edited output.
pub(crate) fn rewrite_response(
    r: &mut Value,
    filter: &mut dyn TextFilter,
    changed: &mut bool,
) -> ControlFlow<String> {
    if let Some(Value::Array(output)) = r.get_mut("output") {
        for (oi, item) in output.iter_mut().enumerate() {
            if items::is_encrypted(item) {
                filter.partial(items::ENCRYPTED_REASONING);
            }
            let mut edited = false;
            let flow = items::rewrite_item(item, oi, &mut |_, ch, s| {
                scan_whole(filter, ch, s, &mut edited)
            });
            *changed |= edited;
            flow?;
            drop_logprobs(item, edited);
        }
    }
    rewrite_members(r, filter, changed)?;
    if r.get("output_text").is_some() {
        let before = r.get("output_text").cloned();
        fix_output_text(r);
        *changed |= r.get("output_text").cloned() != before;
    }
    ControlFlow::Continue(())
}

/// Scans every member of response object `r` but a list `output` (the caller reads its items),
/// `output_text` (recomputed) and [`RESPONSE_UNREAD`], as [`ChannelKind::Other`] text; an
/// `output` that is not a list is read the same way. Breaks with the refusal on a block.
pub(crate) fn rewrite_members(
    r: &mut Value,
    filter: &mut dyn TextFilter,
    changed: &mut bool,
) -> ControlFlow<String> {
    let Value::Object(m) = r else {
        // Not an object where a response belongs: every string of it.
        return scan_other(filter, r, "", changed);
    };
    for (k, v) in m.iter_mut() {
        let skip = match k.as_str() {
            "output" => v.is_array(),
            "output_text" => true,
            k => RESPONSE_UNREAD.contains(&k),
        };
        if !skip {
            scan_other(filter, v, k, changed)?;
        }
    }
    ControlFlow::Continue(())
}

/// Scans every string of `v` (at `at`) whole as [`ChannelKind::Other`] text, but [`SKIP`]ped
/// keys (types and identifiers); breaks with the refusal on a block.
pub(crate) fn scan_other(
    filter: &mut dyn TextFilter,
    v: &mut Value,
    at: &str,
    changed: &mut bool,
) -> ControlFlow<String> {
    walk::strings(v, at, SKIP, &mut |s, at| {
        let ch = Channel::new(ChannelKind::Other, 0, at);
        match scan_whole(filter, &ch, s, changed) {
            Got::Block(b) => ControlFlow::Break(b),
            Got::Strip => {
                s.clear();
                ControlFlow::Continue(())
            }
            Got::Keep => ControlFlow::Continue(()),
        }
    })
}

/// Log probabilities carry the tokens of the text as the upstream wrote it: emptied once any
/// text was edited.
pub(crate) fn drop_logprobs(item: &mut Value, changed: bool) {
    if !changed {
        return;
    }
    if let Some(Value::Array(parts)) = item.get_mut("content") {
        for p in parts {
            if let Some(lp) = p.get_mut("logprobs")
                && lp.as_array().is_some_and(|a| !a.is_empty())
            {
                *lp = Value::Array(Vec::new());
            }
        }
    }
}

/// Recomputes the `output_text` convenience field, when the upstream sent one, from the
/// edited output: never the upstream's own copy of the text.
pub(crate) fn fix_output_text(r: &mut Value) {
    let Some(Value::Array(output)) = r.get("output") else {
        return;
    };
    let text = items::output_text(output);
    if let Some(t) = r.get_mut("output_text") {
        *t = Value::String(text);
    }
}

/// Takes the injected spec out of the `instructions` a response object echoes (the request's,
/// as forwarded): the client sees its own instructions, not the policy text. Blocks are found
/// by the markers [`inject::render`](crate::engine::inject::render) writes around them; an
/// echo left empty becomes `null`. Returns whether anything changed.
pub(crate) fn hide_spec(r: &mut Value) -> bool {
    const START: &str = "[deliberate policy ";
    const END: &str = "[end of deliberate policy ";
    let Some(Value::String(s)) = r.get_mut("instructions") else {
        return false;
    };
    let mut changed = false;
    let mut from = 0;
    while let Some(a) = s.get(from..).and_then(|t| t.find(START)).map(|a| from + a) {
        let Some(e) = s[a..].find(END).map(|e| a + e) else {
            break;
        };
        let Some(mut stop) = s[e..].find(']').map(|c| e + c + 1) else {
            break;
        };
        if s[stop..].starts_with("\n\n") {
            stop += 2;
        }
        s.replace_range(a..stop, "");
        changed = true;
        from = a;
    }
    if changed && s.is_empty() {
        r["instructions"] = Value::Null;
    }
    changed
}

/// Scans and rewrites a buffered answer. See [`Adapter::answer`](crate::wire::Adapter::answer).
pub(crate) fn answer(body: &Bytes, filter: &mut dyn TextFilter) -> Result<Answer, WireError> {
    let mut r = crate::wire::parse_strict(body)?;
    if !r.is_object() {
        return Err(WireError::Shape {
            message: "a response is a JSON object".to_owned(),
        });
    }
    let mut changed = hide_spec(&mut r);
    if let ControlFlow::Break(refusal) = rewrite_response(&mut r, filter, &mut changed) {
        let msg = refusal_message(&new_id("msg_"), &refusal, "incomplete");
        let mut r = blocked_base(&r);
        mark_blocked(&mut r, vec![msg]);
        return Ok(Answer {
            body: to_bytes(&r)?,
            all_blocked: true,
        });
    }
    if !changed {
        return Ok(Answer {
            body: body.clone(),
            all_blocked: false,
        });
    }
    Ok(Answer {
        body: to_bytes(&r)?,
        all_blocked: false,
    })
}

/// The response object a buffered refusal is built on: the scan stopped at the block, so
/// every member of the upstream's that holds a string, but the [`RESPONSE_UNREAD`] ones, may
/// still hold the blocked text (or text not scanned yet) and is replaced by the gateway's own
/// value ([`response_object`]) or left out; numbers and booleans (`created_at`, `usage`) stay.
fn blocked_base(r: &Value) -> Value {
    let model = r.get("model").and_then(Value::as_str).unwrap_or("");
    let mut base = response_object(model);
    if let (Value::Object(b), Value::Object(m)) = (&mut base, r) {
        for (k, v) in m {
            if RESPONSE_UNREAD.contains(&k.as_str()) || !crate::wire::walk::has_string(v) {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

pub(crate) fn to_bytes(v: &Value) -> Result<Bytes, WireError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| WireError::Shape {
            message: e.to_string(),
        })
}
