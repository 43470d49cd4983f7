//! A `POST /v1/responses` request: its texts, its instructions and where the spec goes.

use std::ops::ControlFlow;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::policy::InjectRole;
use crate::wire::walk;
use crate::wire::{Flow, InputText, Placement, RequestFacts, RequestSink, WireError, WireRequest};

/// Top-level request fields the model does not read as text (settings and identifiers).
/// Every other top-level field is read: known ones field by field, the rest (`metadata`,
/// `user`, `safety_identifier`, `prompt_cache_key` and unknown ones: they still leave the
/// gateway, so a secret in them is redacted) by the generic walk.
const SETTINGS: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "store",
    "background",
    "include",
    "max_output_tokens",
    "max_tool_calls",
    "parallel_tool_calls",
    "previous_response_id",
    "conversation",
    "prompt_cache_retention",
    "reasoning",
    "service_tier",
    "temperature",
    "top_p",
    "top_logprobs",
    "truncation",
    "tool_choice",
    "instructions",
    "input",
    "tools",
];

/// Keys the generic walk leaves out: the item type and identifiers.
const SKIP: &[&str] = &["type", "id", "call_id", "status"];

/// A parsed Responses request. Edits go into the parsed value; an unedited request is
/// forwarded as the client's own bytes.
#[derive(Debug)]
pub(crate) struct ResponsesRequest {
    body: Bytes,
    req: Map<String, Value>,
    changed: bool,
}

impl ResponsesRequest {
    /// Parses `body` strictly: duplicate keys are errors, and it must be an object.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, WireError> {
        match crate::wire::parse_strict(body)? {
            Value::Object(req) => Ok(ResponsesRequest {
                body: Bytes::copy_from_slice(body),
                req,
                changed: false,
            }),
            _ => Err(WireError::Shape {
                message: "a responses request is a JSON object".to_owned(),
            }),
        }
    }
}

/// Hands one text to the sink; notes whether the sink rewrote it.
fn text(
    sink: &mut dyn RequestSink,
    changed: &mut bool,
    role: Option<&str>,
    location: &dyn Fn() -> String,
    s: &mut String,
    json: bool,
) -> ControlFlow<()> {
    let before = s.clone();
    let flow = sink.text(InputText {
        role,
        location,
        text: s,
        json,
    });
    *changed |= *s != before;
    match flow {
        Flow::Continue => ControlFlow::Continue(()),
        Flow::Stop => ControlFlow::Break(()),
    }
}

/// The role of a message item, lower-cased and trimmed.
fn role_of(item: &Map<String, Value>) -> Option<String> {
    item.get("role")
        .and_then(Value::as_str)
        .map(|r| r.trim().to_ascii_lowercase())
}

/// The type of an input item; a message written without `type` (the SDK's `EasyInputMessage`)
/// counts as a message.
fn type_of(item: &Map<String, Value>) -> &str {
    match item.get("type").and_then(Value::as_str) {
        Some(t) => t,
        None if item.contains_key("role") => "message",
        None => "",
    }
}

/// Content given as a string or as parts (message content, tool outputs).
fn content(
    sink: &mut dyn RequestSink,
    changed: &mut bool,
    role: Option<&str>,
    at: &str,
    v: &mut Value,
) -> ControlFlow<()> {
    match v {
        Value::String(s) => text(sink, changed, role, &|| at.to_owned(), s, false),
        Value::Array(parts) => {
            for (j, part) in parts.iter_mut().enumerate() {
                let at = format!("{at}[{j}]");
                let Value::Object(p) = part else {
                    generic(sink, changed, role, &at, part)?;
                    continue;
                };
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                let field = match kind {
                    "input_text" | "output_text" | "text" | "summary_text" | "reasoning_text" => {
                        "text"
                    }
                    "refusal" => "refusal",
                    "input_image" | "input_file" | "input_audio" => {
                        sink.partial("non-text input parts (images, files, audio) not scanned");
                        continue;
                    }
                    _ => {
                        generic(sink, changed, role, &at, part)?;
                        continue;
                    }
                };
                if let Some(Value::String(s)) = p.get_mut(field) {
                    let loc = format!("{at}.{field}");
                    text(sink, changed, role, &|| loc.clone(), s, false)?;
                }
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    }
}

/// Every string of `v` (unknown items, parts and fields).
fn generic(
    sink: &mut dyn RequestSink,
    changed: &mut bool,
    role: Option<&str>,
    at: &str,
    v: &mut Value,
) -> ControlFlow<()> {
    walk::strings(v, at, SKIP, &mut |s, loc| {
        text(sink, changed, role, &|| loc.to_owned(), s, false)
    })
}

/// One input item.
fn item(
    sink: &mut dyn RequestSink,
    changed: &mut bool,
    at: &str,
    v: &mut Value,
) -> ControlFlow<()> {
    let Value::Object(it) = v else {
        return generic(sink, changed, None, at, v);
    };
    let role = role_of(it);
    match type_of(it) {
        "message" => match it.get_mut("content") {
            Some(c) => content(sink, changed, role.as_deref(), &format!("{at}.content"), c),
            None => ControlFlow::Continue(()),
        },
        "function_call" => {
            let r = Some("assistant");
            if let Some(Value::String(s)) = it.get_mut("name") {
                text(sink, changed, r, &|| format!("{at}.name"), s, false)?;
            }
            match it.get_mut("arguments") {
                Some(Value::String(s)) => {
                    text(sink, changed, r, &|| format!("{at}.arguments"), s, true)
                }
                _ => ControlFlow::Continue(()),
            }
        }
        "custom_tool_call" => {
            let r = Some("assistant");
            match it.get_mut("input") {
                Some(Value::String(s)) => {
                    text(sink, changed, r, &|| format!("{at}.input"), s, false)
                }
                _ => ControlFlow::Continue(()),
            }
        }
        "function_call_output" | "custom_tool_call_output" => match it.get_mut("output") {
            Some(o) => content(sink, changed, Some("tool"), &format!("{at}.output"), o),
            None => ControlFlow::Continue(()),
        },
        "reasoning" => {
            if it.get("encrypted_content").is_some_and(|e| !e.is_null()) {
                sink.partial("encrypted reasoning items not scanned");
            }
            for key in ["summary", "content"] {
                if let Some(parts) = it.get_mut(key) {
                    content(
                        sink,
                        changed,
                        Some("assistant"),
                        &format!("{at}.{key}"),
                        parts,
                    )?;
                }
            }
            ControlFlow::Continue(())
        }
        "item_reference" => {
            sink.partial("items kept by the provider (item_reference) not scanned");
            ControlFlow::Continue(())
        }
        _ => generic(sink, changed, None, at, v),
    }
}

/// Whether an input item is an instruction (a system or developer message).
fn is_instruction(v: &Value) -> bool {
    let Value::Object(it) = v else { return false };
    type_of(it) == "message" && matches!(role_of(it).as_deref(), Some("system" | "developer"))
}

/// Calls `edit` with every text of an instruction item; removes parts and items left empty.
fn edit_instruction_items(
    items: &mut Vec<Value>,
    edit: &mut dyn FnMut(&mut String) -> bool,
) -> bool {
    let mut changed = false;
    for it in items.iter_mut().filter(|v| is_instruction(v)) {
        match it.get_mut("content") {
            Some(Value::String(s)) => changed |= edit(s),
            Some(Value::Array(parts)) => {
                for p in parts.iter_mut() {
                    if let Some(Value::String(s)) = p.get_mut("text") {
                        changed |= edit(s);
                    }
                }
                if changed {
                    parts.retain(|p| p.get("text").and_then(Value::as_str) != Some(""));
                }
            }
            _ => {}
        }
    }
    if changed {
        items.retain(|it| {
            !is_instruction(it)
                || match it.get("content") {
                    Some(Value::String(s)) => !s.is_empty(),
                    Some(Value::Array(p)) => !p.is_empty(),
                    _ => true,
                }
        });
    }
    changed
}

impl WireRequest for ResponsesRequest {
    fn facts(&self) -> RequestFacts {
        RequestFacts::single(&self.req)
    }

    fn instructions(&mut self, edit: &mut dyn FnMut(&mut String) -> bool) -> bool {
        let mut changed = false;
        match self.req.get_mut("instructions") {
            Some(Value::String(s)) => {
                changed |= edit(s);
                if s.is_empty() {
                    self.req.remove("instructions");
                }
            }
            Some(Value::Array(items)) => changed |= edit_instruction_items(items, edit),
            _ => {}
        }
        if let Some(Value::Array(items)) = self.req.get_mut("input") {
            changed |= edit_instruction_items(items, edit);
        }
        self.changed |= changed;
        changed
    }

    fn texts(&mut self, sink: &mut dyn RequestSink) {
        let mut changed = false;
        let _ = self.walk(sink, &mut changed);
        self.changed |= changed;
    }

    fn place_spec(&mut self, text: String, role: InjectRole, placement: Placement) {
        // One `instructions` per request: Prepend and Merge both put the spec at its start. It
        // is not carried over to the next turn by `previous_response_id`, so the spec is shown
        // once per turn, never piled up in the provider's stored conversation.
        let _ = placement;
        match self.req.get_mut("instructions") {
            Some(Value::String(s)) if !s.is_empty() => *s = format!("{text}\n\n{s}"),
            Some(Value::Array(items)) => {
                let role = match role {
                    InjectRole::System => "system",
                    InjectRole::Developer => "developer",
                };
                items.insert(0, json!({"type": "message", "role": role, "content": text}));
            }
            _ => {
                self.req
                    .insert("instructions".to_owned(), Value::String(text));
            }
        }
        self.changed = true;
    }

    fn to_bytes(&self) -> Result<Bytes, WireError> {
        if !self.changed {
            return Ok(self.body.clone());
        }
        serde_json::to_vec(&self.req)
            .map(Bytes::from)
            .map_err(|e| WireError::Shape {
                message: e.to_string(),
            })
    }
}

impl ResponsesRequest {
    fn walk(&mut self, sink: &mut dyn RequestSink, changed: &mut bool) -> ControlFlow<()> {
        let provider = [
            (
                "previous_response_id",
                "earlier turns kept by the provider (previous_response_id) not scanned",
            ),
            (
                "conversation",
                "earlier turns kept by the provider (conversation) not scanned",
            ),
            (
                "prompt",
                "prompt template kept by the provider (prompt) not scanned",
            ),
        ];
        for (key, reason) in provider {
            if self.req.get(key).is_some_and(|v| !v.is_null()) {
                sink.partial(reason);
            }
        }
        // A string is one text in the role the field implies; a list holds input items.
        for (key, role) in [("instructions", "system"), ("input", "user")] {
            match self.req.get_mut(key) {
                Some(Value::String(s)) => {
                    text(sink, changed, Some(role), &|| key.to_owned(), s, false)?
                }
                Some(Value::Array(items)) => {
                    for (i, v) in items.iter_mut().enumerate() {
                        item(sink, changed, &format!("{key}[{i}]"), v)?;
                    }
                }
                _ => {}
            }
        }
        if let Some(tools) = self.req.get_mut("tools") {
            // Descriptions, parameter schemas and grammars are texts the model reads.
            walk::strings(tools, "tools", &["type"], &mut |s, loc| {
                text(
                    sink,
                    changed,
                    Some("tool_definition"),
                    &|| loc.to_owned(),
                    s,
                    false,
                )
            })?;
        }
        for (k, v) in self.req.iter_mut() {
            if SETTINGS.contains(&k.as_str()) {
                continue;
            }
            // `text` (a JSON schema's descriptions), `prompt` (its variables) and anything
            // unknown: read with every input rule.
            generic(sink, changed, None, k, v)?;
        }
        ControlFlow::Continue(())
    }
}
