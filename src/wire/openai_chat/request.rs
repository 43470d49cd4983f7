//! Chat Completions requests: every text the model reads, the instructions, and where the
//! spec goes.
//!
//! A request whose only change is the injected spec, prepended as a message of its own (the
//! default), is forwarded as the client's own bytes with that message spliced in at the start
//! of `messages` ([`splice`]): re-serializing the whole request cost as much as parsing it.
//! Any other change (a redaction, an earlier injection taken out, a merge) re-serializes.
//!
//! One concern in one file (over 600 lines with its unit tests of the top-level members):
//! reading one Chat Completions request and writing back what the gateway changed.

use std::cell::RefCell;

use bytes::Bytes;
use serde_json::Value;

use super::documents::request_from_value;
use super::types::{ChatRequest, Content, ContentPart, Message, Nullable};
use crate::policy::InjectRole;
use crate::wire::parse_strict;
use crate::wire::{Flow, InputText, Placement, RequestFacts, RequestSink, WireError, WireRequest};

/// A parsed chat completion request.
#[derive(Debug)]
pub(crate) struct ChatRequestDoc {
    req: ChatRequest,
    /// The body as the client sent it.
    raw: Bytes,
    /// `req` was changed by something other than one prepended spec message.
    edited: bool,
    /// The spec message `place_spec` prepended, as JSON, while nothing else changed.
    prepended: Option<String>,
}

impl ChatRequestDoc {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, WireError> {
        Ok(ChatRequestDoc {
            req: parse_strict(body).and_then(request_from_value)?,
            raw: Bytes::copy_from_slice(body),
            edited: false,
            prepended: None,
        })
    }
}

/// A [`RequestSink`] in front of another that notes whether it rewrote a text.
struct Watch<'a> {
    sink: &'a mut dyn RequestSink,
    rewrote: bool,
}

impl RequestSink for Watch<'_> {
    fn text(&mut self, t: InputText<'_>) -> Flow {
        let InputText {
            role,
            location,
            text,
            json,
        } = t;
        let before = text.clone();
        let flow = self.sink.text(InputText {
            role,
            location,
            text: &mut *text,
            json,
        });
        self.rewrote |= *text != before;
        flow
    }

    fn partial(&mut self, reason: &'static str) {
        self.sink.partial(reason);
    }
}

/// The role of a message as the rules read it: lower-cased and trimmed; `function` (the legacy
/// name of a tool result) reads as `tool`; a role no API defines is `None`, which every input
/// rule reads (the most restrictive choice).
pub(crate) fn rule_role(role: &str) -> Option<&'static str> {
    let r = role.trim();
    const KNOWN: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];
    if let Some(k) = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(r)) {
        return Some(k);
    }
    r.eq_ignore_ascii_case("function").then_some("tool")
}

fn is_instruction_role(role: &str) -> bool {
    matches!(rule_role(role), Some("system" | "developer"))
}

/// Fields of a message that hold no text the model reads.
const MESSAGE_META: [&str; 5] = ["tool_call_id", "id", "type", "cache_control", "audio"];

/// Whether the top-level field `key` holding `v` is a setting the model does not read as text
/// and that cannot hold free text as sent: numbers and switches when they are numbers, booleans
/// or `null`; the model's name and enum settings when they are strings; `modalities` when it
/// lists modalities. A setting of any other shape (`"temperature": "…"`) is read like an
/// unknown field, and so is every field not listed here (`response_format`, `prediction`,
/// `stop`, `user`, `metadata`, vLLM's `chat_template`, `guided_*`, vendor fields, …).
fn is_setting(key: &str, v: &Value) -> bool {
    match key {
        "temperature"
        | "top_p"
        | "top_k"
        | "min_p"
        | "n"
        | "max_tokens"
        | "max_completion_tokens"
        | "presence_penalty"
        | "frequency_penalty"
        | "repetition_penalty"
        | "seed"
        | "logprobs"
        | "top_logprobs"
        | "stream"
        | "parallel_tool_calls"
        | "store" => {
            matches!(v, Value::Number(_) | Value::Bool(_) | Value::Null)
        }
        // `tool_choice` as `none` / `auto` / `required` (its object form names a tool: read).
        "model" | "reasoning_effort" | "service_tier" | "verbosity" | "tool_choice" => {
            v.is_string()
        }
        "modalities" => v.as_array().is_some_and(|a| {
            a.iter()
                .all(|m| matches!(m.as_str(), Some("text" | "audio")))
        }),
        _ => false,
    }
}

/// Top-level fields read field by field elsewhere.
const READ_APART: [&str; 3] = ["messages", "tools", "functions"];

/// Part types that carry something the gateway cannot scan.
fn unscannable_part(type_: &str) -> Option<&'static str> {
    match type_ {
        "image_url" | "image" | "input_image" => Some("image parts not scanned"),
        "input_audio" | "audio" => Some("audio parts not scanned"),
        "file" | "input_file" => Some("file parts not scanned"),
        _ => None,
    }
}

/// Calls `sink` for a text; `false` when it said stop.
fn give(
    sink: &mut dyn RequestSink,
    role: Option<&str>,
    text: &mut String,
    json: bool,
    location: &dyn Fn() -> String,
) -> bool {
    sink.text(InputText {
        role,
        location,
        text,
        json,
    }) == Flow::Continue
}

/// Hands every string inside `v` to `sink` (a part or field the adapter does not know).
fn walk_strings(v: &mut Value, role: Option<&str>, path: &str, sink: &mut dyn RequestSink) -> bool {
    match v {
        Value::String(s) => give(sink, role, s, false, &|| path.to_owned()),
        Value::Array(a) => a
            .iter_mut()
            .enumerate()
            .all(|(i, x)| walk_strings(x, role, &format!("{path}[{i}]"), sink)),
        Value::Object(m) => m
            .iter_mut()
            .all(|(k, x)| walk_strings(x, role, &format!("{path}.{k}"), sink)),
        _ => true,
    }
}

impl WireRequest for ChatRequestDoc {
    fn facts(&self) -> RequestFacts {
        RequestFacts {
            stream: self.req.is_stream(),
            n: self.req.choice_count().clamp(1, 128),
            include_usage: self.req.include_usage(),
            model: self.req.model.get().cloned().unwrap_or_default(),
        }
    }

    fn instructions(&mut self, edit: &mut dyn FnMut(&mut String) -> bool) -> bool {
        let mut changed = false;
        for m in self
            .req
            .messages
            .iter_mut()
            .filter(|m| is_instruction_role(&m.role))
        {
            for text in m.text_parts_mut() {
                changed |= edit(text);
            }
        }
        if changed {
            self.edited = true;
            drop_emptied(&mut self.req.messages);
        }
        changed
    }

    fn texts(&mut self, sink: &mut dyn RequestSink) {
        let mut watch = Watch {
            sink,
            rewrote: false,
        };
        self.each_text(&mut watch);
        self.edited |= watch.rewrote;
    }

    fn place_spec(&mut self, text: String, role: InjectRole, placement: Placement) {
        let role = match role {
            InjectRole::System => "system",
            InjectRole::Developer => "developer",
        };
        if placement == Placement::Prepend && !self.edited && self.prepended.is_none() {
            self.prepended = Some(message_json(role, &text));
        } else {
            self.edited = true;
        }
        place(&mut self.req.messages, text, role, placement);
    }

    fn to_bytes(&self) -> Result<Bytes, WireError> {
        if !self.edited
            && let Some(message) = &self.prepended
            && let Some(body) = splice(&self.raw, message)
        {
            return Ok(body);
        }
        serde_json::to_vec(&self.req)
            .map(Bytes::from)
            .map_err(|e| WireError::Shape {
                message: e.to_string(),
            })
    }
}

impl ChatRequestDoc {
    /// Hands every text of the request to `sink` (see [`WireRequest::texts`]).
    fn each_text(&mut self, sink: &mut dyn RequestSink) {
        for (mi, m) in self.req.messages.iter_mut().enumerate() {
            let role = rule_role(&m.role);
            match &mut m.content {
                Nullable::Present(Content::Text(t)) => {
                    if !give(sink, role, t, false, &|| format!("messages[{mi}].content")) {
                        return;
                    }
                }
                Nullable::Present(Content::Parts(parts)) => {
                    for (pi, p) in parts.iter_mut().enumerate() {
                        if !part_texts(p, role, mi, pi, sink) {
                            return;
                        }
                    }
                }
                Nullable::Absent | Nullable::Null => {}
            }
            for (key, v) in m.extra.iter_mut() {
                if MESSAGE_META.contains(&key.as_str()) {
                    continue;
                }
                let ok = match (key.as_str(), v) {
                    // Tool calls of earlier assistant turns are read by the model too: their
                    // arguments are JSON, their names text.
                    ("tool_calls", Value::Array(calls)) => {
                        calls.iter_mut().enumerate().all(|(ci, call)| {
                            tool_call_texts(
                                call,
                                role,
                                &format!("messages[{mi}].tool_calls[{ci}]"),
                                sink,
                            )
                        })
                    }
                    ("function_call", call) => {
                        tool_call_texts(call, role, &format!("messages[{mi}].function_call"), sink)
                    }
                    (key, v) => walk_strings(v, role, &format!("messages[{mi}].{key}"), sink),
                };
                if !ok {
                    return;
                }
            }
        }
        // Tool definitions are read by the model as well.
        if let Some(Value::Array(tools)) = self.req.extra.get_mut("tools") {
            for (ti, t) in tools.iter_mut().enumerate() {
                if !walk_strings(t, Some("tool_definition"), &format!("tools[{ti}]"), sink) {
                    return;
                }
            }
        }
        if let Some(Value::Array(fns)) = self.req.extra.get_mut("functions") {
            for (fi, f) in fns.iter_mut().enumerate() {
                if !walk_strings(
                    f,
                    Some("tool_definition"),
                    &format!("functions[{fi}]"),
                    sink,
                ) {
                    return;
                }
            }
        }
        // Every other top-level field: a JSON schema's descriptions and enums
        // (`response_format`), predicted output, vLLM's `chat_template` and guided decoding,
        // stop sequences, `user` and `metadata` (they leave the gateway too), anything
        // unknown. Read with every input rule (no role); redactions are forwarded.
        for (k, v) in self.req.extra.iter_mut() {
            if READ_APART.contains(&k.as_str()) || is_setting(k, v) {
                continue;
            }
            if !walk_strings(v, None, k, sink) {
                return;
            }
        }
    }
}

/// The client's body with the spec `message` spliced in first in `messages`; `None` when the
/// body's shape is not one [`crate::wire::splice`] handles.
fn splice(raw: &[u8], message: &str) -> Option<Bytes> {
    crate::wire::splice::prepend_element(raw, b"messages", message.as_bytes()).map(Bytes::from)
}

/// A message with string content, as JSON: what serializing [`Message::new`] writes.
///
/// The injected text is the same on most requests (the policy's spec), so the last one is
/// kept with its JSON form: escaping a few kilobytes of spec cost more than the rest of the
/// splice.
fn message_json(role: &str, text: &str) -> String {
    thread_local! {
        static LAST: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
    }
    let role = Value::String(role.to_owned()).to_string();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != text || last.1.is_empty() {
            let quoted = Value::String(text.to_owned()).to_string();
            *last = (text.to_owned(), quoted);
        }
        let mut out = String::with_capacity(role.len() + last.1.len() + 22);
        out.push_str("{\"role\":");
        out.push_str(&role);
        out.push_str(",\"content\":");
        out.push_str(&last.1);
        out.push('}');
        out
    })
}

/// The texts of one content part.
fn part_texts(
    p: &mut ContentPart,
    role: Option<&str>,
    mi: usize,
    pi: usize,
    sink: &mut dyn RequestSink,
) -> bool {
    if p.is_text() {
        if let Some(t) = p.text.get_mut()
            && !give(sink, role, t, false, &|| {
                format!("messages[{mi}].content[{pi}]")
            })
        {
            return false;
        }
        // A text part's other fields (`cache_control` aside): unknown, so read.
        return p
            .extra
            .iter_mut()
            .filter(|(k, _)| k.as_str() != "cache_control")
            .all(|(k, v)| {
                walk_strings(v, role, &format!("messages[{mi}].content[{pi}].{k}"), sink)
            });
    }
    if let Some(reason) = unscannable_part(&p.type_) {
        sink.partial(reason);
        return true;
    }
    // A refusal part, or a part type this adapter does not know: every string in it.
    if let Some(t) = p.text.get_mut()
        && !give(sink, role, t, false, &|| {
            format!("messages[{mi}].content[{pi}].text")
        })
    {
        return false;
    }
    p.extra
        .iter_mut()
        .filter(|(k, _)| k.as_str() != "cache_control")
        .all(|(k, v)| walk_strings(v, role, &format!("messages[{mi}].content[{pi}].{k}"), sink))
}

/// The texts of a tool call (`{"id", "type", "function": {"name", "arguments"}}`, or a legacy
/// `function_call` `{"name", "arguments"}`, or a custom tool call `{"custom": {"input"}}`).
fn tool_call_texts(
    call: &mut Value,
    role: Option<&str>,
    path: &str,
    sink: &mut dyn RequestSink,
) -> bool {
    let Value::Object(m) = call else {
        return walk_strings(call, role, path, sink);
    };
    m.iter_mut().all(|(k, v)| match (k.as_str(), v) {
        ("id" | "type" | "index", _) => true,
        ("arguments", Value::String(args)) => {
            give(sink, role, args, true, &|| format!("{path}.arguments"))
        }
        ("function" | "custom", inner) => {
            tool_call_texts(inner, role, &format!("{path}.{k}"), sink)
        }
        (k, v) => walk_strings(v, role, &format!("{path}.{k}"), sink),
    })
}

/// Drops messages and parts that held nothing but a removed injection.
fn drop_emptied(messages: &mut Vec<Message>) {
    for m in messages.iter_mut() {
        if let Nullable::Present(Content::Parts(parts)) = &mut m.content {
            parts.retain(|p| !(p.is_text() && p.text.get().is_some_and(String::is_empty)));
        }
    }
    messages.retain(|m| {
        !is_instruction_role(&m.role)
            || match &m.content {
                Nullable::Present(Content::Text(t)) => !t.is_empty(),
                Nullable::Present(Content::Parts(p)) => !p.is_empty(),
                _ => true,
            }
    });
}

/// Puts the injected `text` into the conversation.
fn place(messages: &mut Vec<Message>, text: String, role: &str, placement: Placement) {
    if placement == Placement::Merge
        && let Some(m) = messages.iter_mut().find(|m| is_instruction_role(&m.role))
    {
        match &mut m.content {
            Nullable::Present(Content::Text(t)) => {
                *t = if t.is_empty() {
                    text
                } else {
                    format!("{text}\n\n{t}")
                };
            }
            Nullable::Present(Content::Parts(parts)) => parts.insert(0, ContentPart::text(text)),
            c => *c = Nullable::Present(Content::Text(text)),
        }
        return;
    }
    messages.insert(0, Message::new(role, text));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Rewrites every text that contains `secret`.
    struct Redact;

    impl RequestSink for Redact {
        fn text(&mut self, t: InputText<'_>) -> Flow {
            if t.text.contains("secret") {
                *t.text = t.text.replace("secret", "[x]");
            }
            Flow::Continue
        }
        fn partial(&mut self, _: &'static str) {}
    }

    /// What the request serializes to, read back as a value.
    fn forwarded(doc: &ChatRequestDoc) -> Value {
        serde_json::from_slice(&doc.to_bytes().unwrap()).unwrap()
    }

    /// A spec prepended to an otherwise untouched request is spliced into the client's bytes
    /// (unknown fields and number spellings kept as sent) and reads as the serialized request.
    #[test]
    fn prepended_spec_is_spliced_into_the_original_bytes() {
        let body = br#"{"model":"m","top_k":5,"temperature":1.0,"messages":[{"role":"user","content":"hi \u00e9"}],"z":[1,2]}"#;
        for role in [InjectRole::System, InjectRole::Developer] {
            let mut doc = ChatRequestDoc::parse(body).unwrap();
            doc.texts(&mut Redact);
            doc.place_spec("spec \"quoted\"\nline".to_owned(), role, Placement::Prepend);
            let bytes = doc.to_bytes().unwrap();
            let text = std::str::from_utf8(&bytes).unwrap();
            // The client's own bytes follow the spliced message.
            assert!(
                text.ends_with(r#"{"role":"user","content":"hi \u00e9"}],"z":[1,2]}"#),
                "{text}"
            );
            assert!(text.contains(r#""temperature":1.0"#), "{text}");
            let want = serde_json::to_value(&doc.req).unwrap();
            assert_eq!(forwarded(&doc), want);
        }
    }

    /// A rewritten text, an earlier injection taken out, or a merged spec: the request is
    /// serialized from the edited document, never forwarded from the client's bytes.
    #[test]
    fn any_other_edit_serializes_the_edited_request() {
        let body = br#"{"messages":[{"role":"system","content":"old"},{"role":"user","content":"my secret"}]}"#;
        let mut doc = ChatRequestDoc::parse(body).unwrap();
        doc.texts(&mut Redact);
        doc.place_spec("spec".to_owned(), InjectRole::System, Placement::Prepend);
        let v = forwarded(&doc);
        assert_eq!(v["messages"][0]["content"], "spec");
        assert_eq!(v["messages"][2]["content"], "my [x]");
        assert!(
            !String::from_utf8(doc.to_bytes().unwrap().to_vec())
                .unwrap()
                .contains("secret")
        );

        let mut doc = ChatRequestDoc::parse(body).unwrap();
        assert!(doc.instructions(&mut |t: &mut String| {
            t.clear();
            true
        }));
        doc.place_spec("spec".to_owned(), InjectRole::System, Placement::Prepend);
        let v = forwarded(&doc);
        assert_eq!(v["messages"].as_array().unwrap().len(), 2, "{v}");
        assert_eq!(v["messages"][1]["content"], "my secret");

        let mut doc = ChatRequestDoc::parse(body).unwrap();
        doc.place_spec("spec".to_owned(), InjectRole::System, Placement::Merge);
        assert_eq!(forwarded(&doc)["messages"][0]["content"], "spec\n\nold");

        // Two placements: the second is not spliced over the first.
        let mut doc = ChatRequestDoc::parse(body).unwrap();
        doc.place_spec("a".to_owned(), InjectRole::System, Placement::Prepend);
        doc.place_spec("b".to_owned(), InjectRole::System, Placement::Prepend);
        let v = forwarded(&doc);
        assert_eq!(
            (&v["messages"][0]["content"], &v["messages"][1]["content"]),
            (&"b".into(), &"a".into())
        );
    }

    /// A body whose `messages` key is written with an escape is serialized, not spliced.
    #[test]
    fn escaped_messages_key_falls_back_to_serializing() {
        let body = br#"{"mess\u0061ges":[{"role":"user","content":"hi"}]}"#;
        let mut doc = ChatRequestDoc::parse(body).unwrap();
        doc.place_spec("spec".to_owned(), InjectRole::System, Placement::Prepend);
        let v = forwarded(&doc);
        assert_eq!(v["messages"][0]["content"], "spec");
        assert_eq!(v["messages"][1]["content"], "hi");
    }

    #[test]
    fn roles_read_case_insensitively_and_trimmed() {
        let cases = [
            ("user", Some("user")),
            ("USER", Some("user")),
            (" user ", Some("user")),
            ("System", Some("system")),
            ("function", Some("tool")),
            ("Tool", Some("tool")),
            ("wizard", None),
            ("", None),
        ];
        for (role, want) in cases {
            assert_eq!(rule_role(role), want, "{role:?}");
        }
    }
}

/// Red team finding 6 (Chat): top-level fields outside `messages` and `tools` went to the
/// model — or to the provider — unread.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod top_level_tests {
    use super::*;
    use crate::wire::testing::TestSink;
    use serde_json::json;

    fn with(extra: Value) -> Value {
        let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    }

    fn read(v: &Value) -> (ChatRequestDoc, TestSink) {
        let mut doc = ChatRequestDoc::parse(v.to_string().as_bytes()).unwrap();
        let mut sink = TestSink::default();
        doc.texts(&mut sink);
        (doc, sink)
    }

    #[test]
    fn every_free_text_top_level_field_is_read_as_the_most_restrictive_role() {
        let cases = [
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
                "schema": {"type": "object", "properties": {"type": {"type": "string",
                "description": "explain a pipe bomb"}}}}}}),
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
                "schema": {"enum": ["ok", "a pipe bomb"]}}}}),
            json!({"prediction": {"type": "content", "content": "a pipe bomb"}}),
            json!({"prediction": {"type": "content", "content": [{"type": "text", "text": "a pipe bomb"}]}}),
            json!({"chat_template": "{{ 'a pipe bomb' }}"}),
            json!({"guided_choice": ["yes", "a pipe bomb"]}),
            json!({"guided_regex": "a pipe bomb"}),
            json!({"chat_template_kwargs": {"persona": "a pipe bomb maker"}}),
            json!({"stop": ["a pipe bomb"]}),
            json!({"stop": "a pipe bomb"}),
            json!({"user": "a pipe bomb"}),
            json!({"metadata": {"note": "a pipe bomb"}}),
            json!({"x_vendor": {"deep": ["a pipe bomb"]}}),
            // A mistyped setting is read too.
            json!({"temperature": "a pipe bomb"}),
            json!({"tool_choice": {"type": "function", "function": {"name": "a pipe bomb"}}}),
        ];
        for extra in cases {
            let (_, sink) = read(&with(extra.clone()));
            assert!(sink.blocked, "{extra}: {:?}", sink.texts);
            let last = sink.texts.last().unwrap();
            assert_eq!(last.0, None, "{extra}: read as {:?}", last.0);
        }
        // Unknown keys of a text part.
        let v = json!({"messages": [{"role": "user",
            "content": [{"type": "text", "text": "hi", "x_note": "a pipe bomb"}]}]});
        let (_, sink) = read(&v);
        assert!(sink.blocked, "{:?}", sink.texts);
    }

    #[test]
    fn redactions_in_top_level_fields_are_forwarded_and_settings_are_not_read() {
        let v = with(
            json!({"user": "secret-1234", "metadata": {"k": "secret-5678"},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x",
                "schema": {"description": "secret-9012"}}},
            "temperature": 0.5, "n": 1, "stream": false, "tool_choice": "auto",
            "reasoning_effort": "low", "service_tier": "auto", "modalities": ["text"],
            "logit_bias": {"123": 5}, "stream_options": {"include_usage": true}}),
        );
        let (doc, sink) = read(&v);
        assert!(!sink.blocked);
        let body = String::from_utf8(doc.to_bytes().unwrap().to_vec()).unwrap();
        assert!(!body.contains("secret-"), "{body}");
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(got["user"], "[secret]");
        assert_eq!(got["metadata"]["k"], "[secret]");
        assert_eq!(
            got["response_format"]["json_schema"]["schema"]["description"],
            "[secret]"
        );
        let read_at: Vec<&str> = sink.texts.iter().map(|t| t.1.as_str()).collect();
        for setting in [
            "model",
            "tool_choice",
            "reasoning_effort",
            "service_tier",
            "modalities",
        ] {
            assert!(
                !read_at.iter().any(|l| l.starts_with(setting)),
                "{setting}: {read_at:?}"
            );
        }
    }
}
