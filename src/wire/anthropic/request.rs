//! Messages requests: the texts the model reads, the `system` the spec goes into, and the body
//! to forward.
//!
//! The body is forwarded as the client wrote it wherever the gateway changed nothing: only the
//! top-level members that were edited are serialized afresh (with `serde_json`'s key order),
//! and a spec placed in front of a `system` block list is spliced into the original bytes, so
//! the operator's blocks — their `cache_control` included — reach the provider byte for byte
//! and its prompt cache still hits (the same spec text gives the same prefix).
//!
//! One concern in one file (just over 600 lines): reading every member of one Messages request
//! and re-encoding what the gateway changed.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::walk::InputWalker;
use crate::policy::InjectRole;
use crate::wire::{Placement, RequestFacts, RequestSink, WireError, WireRequest, parse_strict};

/// Top-level members that hold no free text (numbers, booleans, enums, the model's name):
/// left unread. Every member neither here nor in [`READ`] is walked string by string.
const SETTINGS: &[&str] = &[
    "model",
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "service_tier",
];

/// Top-level members read field by field (`container` and `mcp_servers` are reported partial:
/// files and tools the gateway cannot see).
const READ: &[&str] = &["messages", "system", "tools", "mcp_servers", "container"];

/// Role of the texts of tool definitions.
pub const TOOL_DEFINITION: &str = "tool_definition";

/// A parsed `POST /v1/messages` body. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct MessagesRequest {
    raw: Bytes,
    body: Map<String, Value>,
    /// Top-level members edited since parsing (serialized afresh by `to_bytes`).
    dirty: Vec<String>,
    /// A spec block put in front of an unedited `system` block list: spliced into the raw bytes.
    spliced_spec: Option<String>,
}

fn shape(message: impl Into<String>) -> WireError {
    WireError::Shape {
        message: message.into(),
    }
}

impl MessagesRequest {
    /// Parses a body strictly and checks the shapes the adapter relies on: an object whose
    /// `stream` is a boolean, `model` a string, `system` a string or a list of blocks,
    /// `messages` a list of objects with a string `role` and string or block-list `content`,
    /// `tools` a list of objects.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let Value::Object(map) = parse_strict(body)? else {
            return Err(shape("a Messages request is a JSON object"));
        };
        match map.get("stream") {
            None | Some(Value::Null | Value::Bool(_)) => {}
            Some(_) => return Err(shape("`stream` must be a boolean")),
        }
        if !matches!(map.get("model"), None | Some(Value::String(_))) {
            return Err(shape("`model` must be a string"));
        }
        match map.get("system") {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(Value::Array(blocks)) if blocks.iter().all(Value::is_object) => {}
            Some(_) => return Err(shape("`system` must be a string or a list of blocks")),
        }
        match map.get("messages") {
            None => {}
            Some(Value::Array(ms)) => {
                for (i, m) in ms.iter().enumerate() {
                    let Some(m) = m.as_object() else {
                        return Err(shape(format!("messages[{i}] must be an object")));
                    };
                    if !matches!(m.get("role"), Some(Value::String(_))) {
                        return Err(shape(format!("messages[{i}].role must be a string")));
                    }
                    match m.get("content") {
                        None | Some(Value::String(_)) => {}
                        Some(Value::Array(b)) if b.iter().all(Value::is_object) => {}
                        Some(_) => {
                            return Err(shape(format!(
                                "messages[{i}].content must be a string or a list of blocks"
                            )));
                        }
                    }
                }
            }
            Some(_) => return Err(shape("`messages` must be a list")),
        }
        match map.get("tools") {
            None | Some(Value::Null) => {}
            Some(Value::Array(ts)) if ts.iter().all(Value::is_object) => {}
            Some(_) => return Err(shape("`tools` must be a list of objects")),
        }
        Ok(MessagesRequest {
            raw: Bytes::copy_from_slice(body),
            body: map,
            dirty: Vec::new(),
            spliced_spec: None,
        })
    }

    /// The parsed body as it stands (edits applied).
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    fn touch(&mut self, key: &str) {
        if !self.dirty.iter().any(|d| d == key) {
            self.dirty.push(key.to_owned());
        }
        if key == "system" {
            // The spec block is in the value now; the whole `system` is serialized.
            self.spliced_spec = None;
        }
    }
}

impl WireRequest for MessagesRequest {
    fn facts(&self) -> RequestFacts {
        RequestFacts::single(&self.body)
    }

    fn instructions(&mut self, edit: &mut dyn FnMut(&mut String) -> bool) -> bool {
        let mut changed = false;
        let mut remove = false;
        match self.body.get_mut("system") {
            Some(Value::String(s)) => {
                changed = edit(s);
                remove = changed && s.is_empty();
            }
            Some(Value::Array(blocks)) => {
                let mut emptied = vec![false; blocks.len()];
                for (i, b) in blocks.iter_mut().enumerate() {
                    if b.get("type").and_then(Value::as_str) != Some("text") {
                        continue;
                    }
                    if let Some(Value::String(t)) = b.get_mut("text")
                        && edit(t)
                    {
                        changed = true;
                        emptied[i] = t.is_empty();
                    }
                }
                let mut i = 0;
                blocks.retain(|_| {
                    i += 1;
                    !emptied[i - 1]
                });
                remove = changed && blocks.is_empty();
            }
            _ => {}
        }
        if remove {
            self.body.remove("system");
        }
        if changed {
            self.touch("system");
        }
        changed
    }

    fn texts(&mut self, sink: &mut dyn RequestSink) {
        let mut w = InputWalker {
            sink,
            stopped: false,
            changed: false,
        };
        // In the order the model reads them: tools, system, messages.
        if let Some(Value::Array(tools)) = self.body.get_mut("tools") {
            for (ti, tool) in tools.iter_mut().enumerate() {
                tool_texts(&mut w, ti, tool);
            }
        }
        let tools_changed = std::mem::take(&mut w.changed);
        match self.body.get_mut("system") {
            Some(Value::String(s)) => w.text(Some("system"), &|| "system".to_owned(), s, false),
            Some(Value::Array(blocks)) => {
                for (i, b) in blocks.iter_mut().enumerate() {
                    block_texts(&mut w, Some("system"), b, &|| format!("system[{i}]"));
                }
            }
            _ => {}
        }
        let system_changed = std::mem::take(&mut w.changed);
        if let Some(Value::Array(ms)) = self.body.get_mut("messages") {
            for (mi, m) in ms.iter_mut().enumerate() {
                let Some(m) = m.as_object_mut() else { continue };
                let role = m
                    .get("role")
                    .and_then(Value::as_str)
                    .map(|r| r.trim().to_lowercase())
                    .unwrap_or_default();
                let role = Some(role.as_str());
                match m.get_mut("content") {
                    Some(Value::String(s)) => {
                        w.text(role, &|| format!("messages[{mi}].content"), s, false);
                    }
                    Some(Value::Array(blocks)) => {
                        for (bi, b) in blocks.iter_mut().enumerate() {
                            block_texts(&mut w, role, b, &|| {
                                format!("messages[{mi}].content[{bi}]")
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
        let messages_changed = std::mem::take(&mut w.changed);
        if let Some(Value::Array(servers)) = self.body.get("mcp_servers")
            && !servers.is_empty()
        {
            w.partial("tools of MCP servers not scanned");
        }
        if self.body.get("container").is_some_and(|c| !c.is_null()) {
            w.partial("files of a code-execution container not scanned");
        }
        // Every other top-level member: the schemas of `output_format` and
        // `output_config.format` (the model reads them), `stop_sequences`, `metadata`,
        // `tool_choice`, anything unknown — every string, read as the most restrictive role.
        let mut edited: Vec<String> = Vec::new();
        for (k, v) in self.body.iter_mut() {
            if SETTINGS.contains(&k.as_str()) || READ.contains(&k.as_str()) {
                continue;
            }
            w.walk(None, k, v, &|| k.clone());
            if std::mem::take(&mut w.changed) {
                edited.push(k.clone());
            }
        }
        for (key, changed) in [
            ("tools", tools_changed),
            ("system", system_changed),
            ("messages", messages_changed),
        ] {
            if changed {
                self.touch(key);
            }
        }
        for key in edited {
            self.touch(&key);
        }
    }

    fn place_spec(&mut self, text: String, _role: InjectRole, _placement: Placement) {
        // One `system`: prepending and merging both put the spec at its start.
        let block = |t: &str| serde_json::json!({"type": "text", "text": t});
        match self.body.get_mut("system") {
            Some(Value::Array(blocks)) => {
                blocks.insert(0, block(&text));
                if self.dirty.iter().any(|d| d == "system") {
                    return;
                }
                self.spliced_spec = Some(text);
            }
            Some(Value::String(s)) if !s.is_empty() => {
                *s = format!("{text}\n\n{s}");
                self.touch("system");
            }
            _ => {
                self.body.insert("system".to_owned(), Value::String(text));
                self.touch("system");
            }
        }
    }

    fn to_bytes(&self) -> Result<Bytes, WireError> {
        if self.dirty.is_empty() && self.spliced_spec.is_none() {
            return Ok(self.raw.clone());
        }
        splice(self).map(Bytes::from)
    }
}

// === texts ===

/// The texts of tool definition `ti`: its name, description and the descriptive strings of
/// its input schema.
fn tool_texts(w: &mut InputWalker<'_>, ti: usize, tool: &mut Value) {
    let Some(tool) = tool.as_object_mut() else {
        return;
    };
    let role = Some(TOOL_DEFINITION);
    for key in ["name", "description"] {
        if let Some(Value::String(s)) = tool.get_mut(key) {
            w.text(role, &|| format!("tools[{ti}].{key}"), s, false);
        }
    }
    if let Some(schema) = tool.get_mut("input_schema") {
        schema_texts(w, schema, &|| format!("tools[{ti}].input_schema"));
    }
}

/// Descriptive strings of a JSON schema: `description`, `title`, and the strings of `enum`,
/// `const`, `default` and `examples`, at any depth.
fn schema_texts(w: &mut InputWalker<'_>, v: &mut Value, location: &dyn Fn() -> String) {
    const TEXT: &[&str] = &[
        "description",
        "title",
        "enum",
        "const",
        "default",
        "examples",
    ];
    match v {
        Value::Object(m) => {
            for (k, item) in m.iter_mut() {
                let loc = || format!("{}.{k}", location());
                if TEXT.contains(&k.as_str()) {
                    w.walk(Some(TOOL_DEFINITION), k, item, &loc);
                } else {
                    schema_texts(w, item, &loc);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                schema_texts(w, item, &|| format!("{}[{i}]", location()));
            }
        }
        _ => {}
    }
}

/// The texts of one content block, by type; a type the adapter does not know is walked whole
/// with no role (the most restrictive).
fn block_texts(
    w: &mut InputWalker<'_>,
    role: Option<&str>,
    block: &mut Value,
    location: &dyn Fn() -> String,
) {
    let Some(b) = block.as_object_mut() else {
        return;
    };
    let kind = b
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let handled: &[&str] = match kind.as_str() {
        "text" => {
            if let Some(Value::String(s)) = b.get_mut("text") {
                w.text(role, &|| format!("{}.text", location()), s, false);
            }
            &["text"]
        }
        "thinking" => {
            if let Some(Value::String(s)) = b.get_mut("thinking") {
                w.text(role, &|| format!("{}.thinking", location()), s, false);
            }
            &["thinking"]
        }
        "redacted_thinking" => {
            w.partial("redacted thinking not scanned");
            &["data"]
        }
        "image" => {
            w.partial("image content not scanned");
            &["source"]
        }
        "container_upload" => {
            w.partial("image, PDF or file content not scanned");
            &["file_id"]
        }
        "tool_use" | "server_tool_use" | "mcp_tool_use" => {
            if let Some(Value::String(s)) = b.get_mut("name") {
                w.text(role, &|| format!("{}.name", location()), s, false);
            }
            if let Some(input) = b.get_mut("input") {
                input_texts(w, role, input, &|| format!("{}.input", location()));
            }
            &["name", "input"]
        }
        "tool_result" | "mcp_tool_result" => {
            match b.get_mut("content") {
                Some(Value::String(s)) => {
                    w.text(
                        Some("tool"),
                        &|| format!("{}.content", location()),
                        s,
                        false,
                    );
                }
                Some(Value::Array(parts)) => {
                    for (i, p) in parts.iter_mut().enumerate() {
                        block_texts(w, Some("tool"), p, &|| {
                            format!("{}.content[{i}]", location())
                        });
                    }
                }
                _ => {}
            }
            &["content"]
        }
        "document" => {
            if let Some(source) = b.get_mut("source") {
                document_source(w, role, source, &|| format!("{}.source", location()));
            }
            &["source"]
        }
        _ => {
            // Unknown block: every string, read as the most restrictive role.
            return w.walk(None, "", block, location);
        }
    };
    // Fields of a known block the adapter did not name (titles, contexts, citations, …).
    for (k, item) in b.iter_mut() {
        if handled.contains(&k.as_str()) || k == "cache_control" {
            continue;
        }
        w.walk(role, k, item, &|| format!("{}.{k}", location()));
    }
}

/// A document's source: plain text is read, content blocks are walked, base64 (PDF), URLs and
/// files cannot be scanned.
fn document_source(
    w: &mut InputWalker<'_>,
    role: Option<&str>,
    source: &mut Value,
    location: &dyn Fn() -> String,
) {
    let kind = source.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => {
            if let Some(Value::String(s)) = source.get_mut("data") {
                w.text(role, &|| format!("{}.data", location()), s, false);
            }
        }
        "content" => match source.get_mut("content") {
            Some(Value::String(s)) => {
                w.text(role, &|| format!("{}.content", location()), s, false);
            }
            Some(Value::Array(parts)) => {
                for (i, p) in parts.iter_mut().enumerate() {
                    block_texts(w, role, p, &|| format!("{}.content[{i}]", location()));
                }
            }
            _ => {}
        },
        "base64" | "url" | "file" => w.partial("PDF or document by reference not scanned"),
        _ => w.walk(None, "", source, location),
    }
}

/// A tool call's `input`: serialized and handed as JSON text, so its keys are read too; an
/// edit that leaves JSON that is not an object replaces the input with `{}` (nothing of the
/// matched text goes on).
fn input_texts(
    w: &mut InputWalker<'_>,
    role: Option<&str>,
    input: &mut Value,
    location: &dyn Fn() -> String,
) {
    let mut text = input.to_string();
    let outer = std::mem::take(&mut w.changed);
    w.text(role, location, &mut text, true);
    if w.changed {
        *input = match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Map::new()),
        };
    }
    w.changed |= outer;
}

// === forwarding ===

/// Byte spans of the top-level members of a valid JSON object: `(key, member_start,
/// value_start, value_end)`.
fn members(raw: &[u8]) -> Option<Vec<(String, usize, usize, usize)>> {
    let mut out = Vec::new();
    let mut i = skip_ws(raw, 0);
    if raw.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(raw, i);
        match raw.get(i)? {
            b'}' => return Some(out),
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let start = i;
        let key_end = skip_value(raw, i)?;
        let key: String = serde_json::from_slice(&raw[start..key_end]).ok()?;
        i = skip_ws(raw, key_end);
        if raw.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(raw, i + 1);
        let value_end = skip_value(raw, value_start)?;
        out.push((key, start, value_start, value_end));
        i = value_end;
    }
}

fn skip_ws(raw: &[u8], mut i: usize) -> usize {
    while raw.get(i).is_some_and(|b| b" \t\r\n".contains(b)) {
        i += 1;
    }
    i
}

/// The end of the JSON value starting at `i` (the input is known to be valid JSON).
fn skip_value(raw: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match *raw.get(i)? {
            b'"' => {
                i += 1;
                loop {
                    match *raw.get(i)? {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ if depth > 0 => i += 1,
            _ => {
                // A number or a literal at depth 0.
                while raw.get(i).is_some_and(|b| !b",}] \t\r\n".contains(b)) {
                    i += 1;
                }
                return Some(i);
            }
        }
        if depth == 0 {
            return Some(i);
        }
    }
}

/// The body to forward: untouched members as the client wrote them, edited ones serialized.
fn splice(req: &MessagesRequest) -> Result<Vec<u8>, WireError> {
    let ser = |v: &Value| serde_json::to_vec(v).map_err(|e| shape(e.to_string()));
    let Some(spans) = members(&req.raw) else {
        return ser(&Value::Object(req.body.clone()));
    };
    let mut out = Vec::with_capacity(req.raw.len() + 64);
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    // A member the gateway added (a `system` the client had none of) goes first.
    for (key, value) in &req.body {
        if spans.iter().all(|(k, ..)| k != key) {
            sep(&mut out);
            out.extend(ser(&Value::String(key.clone()))?);
            out.push(b':');
            out.extend(ser(value)?);
        }
    }
    for (key, start, value_start, value_end) in &spans {
        let Some(value) = req.body.get(key) else {
            continue; // removed (a `system` emptied of earlier injections)
        };
        sep(&mut out);
        if req.dirty.iter().any(|d| d == key) {
            out.extend(ser(&Value::String(key.clone()))?);
            out.push(b':');
            out.extend(ser(value)?);
        } else if key == "system"
            && let Some(spec) = &req.spliced_spec
        {
            out.extend_from_slice(&req.raw[*start..*value_start]);
            let original = &req.raw[*value_start..*value_end];
            out.push(b'[');
            out.extend_from_slice(br#"{"type":"text","text":"#);
            out.extend(ser(&Value::String(spec.clone()))?);
            out.push(b'}');
            let inner = &original[1..];
            if inner.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b']') {
                out.push(b',');
            }
            out.extend_from_slice(inner);
        } else {
            out.extend_from_slice(&req.raw[*start..*value_end]);
        }
    }
    out.push(b'}');
    Ok(out)
}
