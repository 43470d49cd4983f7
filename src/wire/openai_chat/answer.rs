//! Buffered chat completions: every text of every choice through the filter.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::documents::completion_from_value;
use super::refusal::{CONTENT_FILTER, CompletionMeta, refusal_completion_with};
use super::types::{ChatCompletion, Nullable, ResponseMessage};
use crate::wire::parse_strict;
use crate::wire::walk::{self, Edit as Field, apply};
use crate::wire::{Answer, Channel, ChannelKind, TextFilter, Verdict, WireError};

/// Fields of a response message that hold no text.
const MESSAGE_META: [&str; 1] = ["role"];

/// Top-level fields of a completion that pass unread, each an identifier or an enum no model
/// writes: `id` (the completion's id), `object` (`chat.completion`), `created` (a number),
/// `model` (the model's name), `system_fingerprint` (a backend configuration id),
/// `service_tier` (an enum). Every other top-level field — `usage` (numbers, and whatever
/// strings a vendor nests there), `prompt_filter_results`, an `error` object, `output`,
/// anything unknown — is read by the generic walk. They are also the only fields a refusal
/// written in the completion's place copies.
const COMPLETION_META: [&str; 6] = super::UNREAD_TOP_LEVEL;

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
    // The completion's own fields first: a block there (a 200 that is an error object, text
    // outside any choice) refuses the whole answer.
    for (k, v) in resp.extra.iter_mut() {
        if COMPLETION_META.contains(&k.as_str()) {
            continue;
        }
        match scan_strings(filter, 0, k, v) {
            Field::Kept => {}
            Field::Changed => changed = true,
            Field::Blocked(refusal) => return Ok(refuse_all(&resp, &refusal)),
        }
    }
    let mut blocked_choices = 0;
    for choice in resp.choices.iter_mut() {
        let ci = choice.index;
        let (mut block, mut modified) = match choice.message.get_mut() {
            Some(msg) => scan_message(filter, ci, msg),
            None => (None, false),
        };
        // The choice's other fields (a `delta` or `text` where `message` should be, `logprobs`
        // — its tokens and their alternatives are model-written text too —,
        // `content_filter_results`, `stop_reason`, vendor fields): the generic walk.
        if block.is_none() {
            for (k, v) in choice.extra.iter_mut() {
                match scan_strings(filter, ci, &format!("choices[{ci}].{k}"), v) {
                    Field::Kept => {}
                    Field::Changed => modified = true,
                    Field::Blocked(r) => {
                        block = Some(r);
                        break;
                    }
                }
            }
        }
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
            // The field that blocked, and those not read after it.
            choice.extra.clear();
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

/// The answer when a field outside the choices blocks: a refusal in every choice the upstream
/// sent (one when it sent none), with the completion's identifiers and nothing else of it.
fn refuse_all(resp: &ChatCompletion, refusal: &str) -> Answer {
    let meta = CompletionMeta::from_extra(&resp.extra, "");
    let mut v = refusal_completion_with(&meta, refusal, CONTENT_FILTER);
    if resp.choices.len() > 1
        && let Some(Value::Array(choices)) = v.get_mut("choices")
        && let Some(first) = choices.first().cloned()
    {
        choices.clear();
        for c in &resp.choices {
            let mut r = first.clone();
            r["index"] = Value::from(c.index);
            choices.push(r);
        }
    }
    Answer {
        body: Bytes::from(v.to_string()),
        all_blocked: true,
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::wire::testing::{REFUSAL, TestFilter};
    use serde_json::json;

    fn base() -> Value {
        json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m"})
    }

    fn with(mut v: Value, extra: Value) -> Value {
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    }

    fn ok_choice(extra: Value) -> Value {
        with(
            json!({"index": 0, "message": {"role": "assistant", "content": "ok"},
                   "finish_reason": "stop"}),
            extra,
        )
    }

    fn answer(v: &Value) -> (String, Answer, TestFilter) {
        let mut f = TestFilter::new();
        let a = enforce(&Bytes::from(v.to_string()), &mut f).unwrap();
        (String::from_utf8(a.body.to_vec()).unwrap(), a, f)
    }

    /// Red team finding 4, buffered Chat (`c_choice_extra`, `c_msgnull`, `c_nomsg`,
    /// `c_top_extra`, `c_nochoices`, `c_error200`, `c_usage`, `c_logprobs`): strings outside the
    /// message were passed unread. Each is blocked now.
    #[test]
    fn strings_outside_the_message_are_scanned() {
        let cases = [
            (
                "c_choice_extra",
                with(
                    base(),
                    json!({"choices": [ok_choice(json!({"x_note": "a pipe bomb"}))]}),
                ),
            ),
            (
                "c_msgnull",
                with(
                    base(),
                    json!({"choices": [{"index": 0, "message": null,
                        "delta": {"content": "a pipe bomb"}, "finish_reason": "stop"}]}),
                ),
            ),
            (
                "c_nomsg",
                with(
                    base(),
                    json!({"choices": [{"index": 0, "text": "a pipe bomb", "finish_reason": "stop"}]}),
                ),
            ),
            (
                "c_top_extra",
                with(
                    base(),
                    json!({"choices": [ok_choice(json!({}))], "x_note": "a pipe bomb"}),
                ),
            ),
            (
                "c_nochoices",
                with(base(), json!({"output": "a pipe bomb"})),
            ),
            ("c_error200", json!({"error": {"message": "a pipe bomb"}})),
            (
                "c_usage",
                with(
                    base(),
                    json!({"choices": [ok_choice(json!({}))], "usage": {"note": "a pipe bomb"}}),
                ),
            ),
            (
                "c_logprobs",
                with(
                    base(),
                    json!({"choices": [ok_choice(json!({"logprobs": {"content": [{"token": "ok",
                        "logprob": 0, "top_logprobs": [{"token": "a pipe bomb", "logprob": -9}]}]}}))]}),
                ),
            ),
            (
                "stop_reason and content_filter_results",
                with(
                    base(),
                    json!({"choices": [ok_choice(json!({"stop_reason": "x",
                        "content_filter_results": {"hate": {"detail": "a pipe bomb"}}}))]}),
                ),
            ),
        ];
        for (name, v) in cases {
            let (out, a, _) = answer(&v);
            assert!(!out.contains("bomb"), "{name}: {out}");
            assert!(a.all_blocked, "{name}: {out}");
            let got: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(got["choices"][0]["finish_reason"], CONTENT_FILTER, "{name}");
            assert_eq!(got["choices"][0]["message"]["content"], REFUSAL, "{name}");
        }
    }

    /// A redaction outside the message is written into the body sent; identifiers are not read.
    #[test]
    fn redactions_outside_the_message_are_written_back_and_identifiers_pass_unread() {
        let v = with(
            base(),
            json!({"system_fingerprint": "fp_secret-1234", "x_note": "key secret-5678",
                   "choices": [ok_choice(json!({"x_note": "key secret-9012"}))]}),
        );
        let (out, a, f) = answer(&v);
        assert!(!a.all_blocked);
        let got: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(got["x_note"], "key [secret]");
        assert_eq!(got["choices"][0]["x_note"], "key [secret]");
        assert_eq!(got["system_fingerprint"], "fp_secret-1234");
        let locations: Vec<&str> = f.scanned.iter().map(|(c, _)| c.location.as_str()).collect();
        for skipped in ["id", "object", "model", "system_fingerprint"] {
            assert!(!locations.contains(&skipped), "{locations:?}");
        }
    }

    /// Two choices, a top-level block: both are refused, with the completion's id kept.
    #[test]
    fn a_top_level_block_refuses_every_choice() {
        let mut second = ok_choice(json!({}));
        second["index"] = json!(1);
        let v = with(
            base(),
            json!({"choices": [ok_choice(json!({})), second], "error": {"message": "a pipe bomb"}}),
        );
        let (out, a, _) = answer(&v);
        assert!(a.all_blocked);
        let got: Value = serde_json::from_str(&out).unwrap();
        assert!(!out.contains("bomb"), "{out}");
        assert_eq!(got["id"], "c1");
        assert_eq!(got["choices"][1]["index"], 1);
        assert_eq!(got["choices"][1]["finish_reason"], CONTENT_FILTER);
    }
}
