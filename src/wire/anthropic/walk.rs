//! Generic walks over JSON values: every string of a part the adapter does not know goes to the
//! layer (a [`RequestSink`] for requests, a [`TextFilter`] for answers and stream events), so a
//! new block type or field is scanned before anyone teaches the adapter about it.

use serde_json::Value;

use crate::wire::walk::{self, Edit};
use crate::wire::{Channel, ChannelKind, Flow, InputText, RequestSink, TextFilter, Verdict};

/// Keys whose strings are identifiers or structure, never text anyone reads as prose.
const STRUCTURE: &[&str] = &[
    "type",
    "id",
    "tool_use_id",
    "file_id",
    "media_type",
    "signature",
];

/// Keys whose strings the model reads but nobody else can (encrypted by the provider).
const ENCRYPTED: &[&str] = &["encrypted_content", "encrypted_index"];

/// Whether `m` is a source the gateway cannot read: base64 data, a URL or a file id.
fn is_opaque_source(m: &serde_json::Map<String, Value>) -> bool {
    matches!(
        m.get("type").and_then(Value::as_str),
        Some("base64" | "url" | "file")
    ) && (m.contains_key("data") || m.contains_key("url") || m.contains_key("file_id"))
}

// === requests ===

/// Hands the texts of a request to a [`RequestSink`], remembering whether one changed and
/// whether the sink said stop.
pub(super) struct InputWalker<'s> {
    /// The layer's sink.
    pub sink: &'s mut dyn RequestSink,
    /// The sink said stop.
    pub stopped: bool,
    /// A text was rewritten since the caller last cleared this.
    pub changed: bool,
}

impl InputWalker<'_> {
    /// One text.
    pub fn text(
        &mut self,
        role: Option<&str>,
        location: &dyn Fn() -> String,
        text: &mut String,
        json: bool,
    ) {
        if self.stopped {
            return;
        }
        let before = text.clone();
        let flow = self.sink.text(InputText {
            role,
            location,
            text,
            json,
        });
        self.changed |= *text != before;
        self.stopped |= flow == Flow::Stop;
    }

    /// What cannot be scanned.
    pub fn partial(&mut self, reason: &'static str) {
        self.sink.partial(reason);
    }

    /// Every string of `v` (found under `key`), except identifiers; sources that cannot be
    /// read and encrypted strings make the enforcement partial.
    pub fn walk(
        &mut self,
        role: Option<&str>,
        key: &str,
        v: &mut Value,
        location: &dyn Fn() -> String,
    ) {
        if self.stopped {
            return;
        }
        match v {
            Value::String(s) => {
                if ENCRYPTED.contains(&key) {
                    self.partial("encrypted content not scanned");
                } else if !STRUCTURE.contains(&key) {
                    self.text(role, location, s, false);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.walk(role, key, item, &|| format!("{}[{i}]", location()));
                }
            }
            Value::Object(m) => {
                if is_opaque_source(m) {
                    return self.partial("image, PDF or file content not scanned");
                }
                for (k, item) in m.iter_mut() {
                    if k == "cache_control" {
                        continue;
                    }
                    self.walk(role, k, item, &|| format!("{}.{k}", location()));
                }
            }
            _ => {}
        }
    }
}

// === answers ===

/// Applies a verdict on a whole string: `Ok(true)` when it was rewritten, `Err(refusal)` on a
/// block. Stripped text becomes empty.
pub(super) fn apply(verdict: Verdict, s: &mut String) -> Result<bool, String> {
    changed(walk::apply(verdict, s))
}

fn changed(edit: Edit) -> Result<bool, String> {
    match edit {
        Edit::Kept => Ok(false),
        Edit::Changed => Ok(true),
        Edit::Blocked(refusal) => Err(refusal),
    }
}

/// Scans every string of `v` (found under `key`, at `location`) as [`ChannelKind::Other`],
/// except identifiers and encrypted strings (which the client cannot read either): a *string*
/// whose object key is one of those passes unread. Anything else under such a key (a list or
/// an object where an id belongs) is not an identifier and is read like any other value — the
/// one point where this differs from [`walk::scan_strings`], whose skip is by key alone.
/// Returns whether something was rewritten, or the refusal on a block.
pub(super) fn scan_value(
    filter: &mut dyn TextFilter,
    key: &str,
    v: &mut Value,
    location: &str,
) -> Result<bool, String> {
    match v {
        Value::String(_) if STRUCTURE.contains(&key) || ENCRYPTED.contains(&key) => Ok(false),
        Value::String(s) => apply(
            filter.scan(&Channel::new(ChannelKind::Other, 0, location), s),
            s,
        ),
        Value::Array(items) => {
            let mut changed = false;
            for (i, item) in items.iter_mut().enumerate() {
                changed |= scan_value(filter, "", item, &format!("{location}[{i}]"))?;
            }
            Ok(changed)
        }
        Value::Object(m) => scan_rest(filter, m, &[], location),
        _ => Ok(false),
    }
}

/// Whether `s` reads as a provider signature: base64 or base64url, nothing else (no space, no
/// punctuation a sentence needs).
pub(super) fn is_signature(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b))
}

/// A block's `signature` (and a `signature_delta`'s): the provider's opaque signature over a
/// thinking block, which the API verifies byte for byte, passes unread — but only while it
/// reads as one ([`is_signature`]); anything else is text and is scanned like any other.
pub(super) fn scan_signature(
    filter: &mut dyn TextFilter,
    obj: &mut serde_json::Map<String, Value>,
    location: &str,
) -> Result<bool, String> {
    match obj.get_mut("signature") {
        Some(Value::String(s)) if !is_signature(s) => {
            let ch = Channel::new(ChannelKind::Other, 0, format!("{location}.signature"));
            apply(filter.scan(&ch, s), s)
        }
        // Not a string: [`scan_value`] reads it.
        _ => Ok(false),
    }
}

/// [`scan_value`] on every member of `obj` but the `handled` ones.
pub(super) fn scan_rest(
    filter: &mut dyn TextFilter,
    obj: &mut serde_json::Map<String, Value>,
    handled: &[&str],
    location: &str,
) -> Result<bool, String> {
    let mut changed = false;
    for (k, item) in obj.iter_mut() {
        if handled.contains(&k.as_str()) {
            continue;
        }
        let loc = if location.is_empty() {
            k.clone()
        } else {
            format!("{location}.{k}")
        };
        changed |= scan_value(filter, k, item, &loc)?;
    }
    Ok(changed)
}
