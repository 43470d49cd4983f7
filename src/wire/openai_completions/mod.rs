//! The OpenAI legacy Completions API (`POST /v1/completions`).
//!
//! **Request**: `prompt` as a string or an array of strings (each its own text, role `user`),
//! `suffix` (role `user`), and every string of unknown top-level fields (role unknown: every
//! input rule reads it). Token prompts (arrays of integers) cannot be read: reported partial.
//!
//! **Spec placement**: the format has no roles and no instructions, so the spec goes at the
//! start of each prompt string, followed by a blank line (for
//! [`Placement::Prepend`](crate::wire::Placement) and `Merge` alike); an absent prompt becomes
//! the spec. [`WireRequest::instructions`] hands the prompt strings to `edit`, so an earlier
//! injection is found again and taken out. Token prompts get no spec.
//!
//! **Answer**: `choices[].text` per choice (the unit is the choice `index`); every other string
//! of a choice (`logprobs` tokens, a `message`, a `text` that is not a string, vendor fields)
//! and of the completion or chunk (`usage`, an `error` object, vendor fields; identifiers
//! aside, see `COMPLETION_META`) through the generic walk (a block outside the choices
//! refuses every choice); `logprobs` is nulled when the text was edited (its tokens are the
//! upstream's text). A blocked choice
//! becomes the refusal text with `finish_reason: "content_filter"`; in a stream it ends
//! in-band with `finish_reason: "content_filter"` (the refusal as its text when nothing of it
//! was sent), then `data: [DONE]` once every choice is over.
//!
//! Limitation: with `echo: true` the upstream repeats the prompt — the injected spec included —
//! at the start of each choice's text, and it is scanned as output like the rest.
//!
//! ```
//! use deliberate::wire::{Adapter, RequestFacts, adapter_for};
//!
//! let completions = adapter_for("/v1/completions").unwrap();
//! let req = completions.request(br#"{"model":"m","prompt":["a","b"],"n":2}"#).unwrap();
//! assert_eq!(req.facts().n, 2);
//! let (ct, body) = completions.refusal(&RequestFacts { n: 1, ..Default::default() }, "No.");
//! assert_eq!(ct, "application/json");
//! let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(v["object"], "text_completion");
//! assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
//! ```

mod stream;
#[cfg(test)]
mod tests;

use std::ops::ControlFlow;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::policy::InjectRole;
use crate::wire::walk;
use crate::wire::{
    Adapter, Answer, Channel, ChannelKind, Flow, InputText, Placement, RequestFacts, RequestSink,
    StreamRewriter, TextFilter, Verdict, WireError, WireRequest,
};

/// The `finish_reason` of a choice the policy stopped.
pub const CONTENT_FILTER: &str = "content_filter";

/// The prefix of every completion id the gateway makes up.
pub const ID_PREFIX: &str = "cmpl-deliberate-";

/// Top-level fields the model does not read as text.
const SETTINGS: &[&str] = &[
    "model",
    "prompt",
    "suffix",
    "stream",
    "stream_options",
    "n",
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "presence_penalty",
    "seed",
    "stop",
    "temperature",
    "top_p",
    "user",
];

/// Fields of a completion object (buffered, or a stream chunk) that pass unread, each an
/// identifier or an enum no model writes: `id`, `object` (`text_completion`), `created` (a
/// number), `model` (the model's name), `system_fingerprint` (a backend configuration id).
/// Every other field but `choices` — `usage` (numbers, and whatever strings a vendor nests
/// there), an `error` object, anything unknown — is read by the generic walk.
pub(crate) const COMPLETION_META: [&str; 5] =
    ["id", "object", "created", "model", "system_fingerprint"];

/// Fields of a choice read apart from the generic walk: `index` (a number) and
/// `finish_reason` (an enum) pass unread; `text` is the choice's channel. Every other field —
/// `logprobs` (its tokens are model-written text), a `message`, vendor fields — is walked.
pub(crate) const CHOICE_OWN: [&str; 3] = ["index", "finish_reason", "text"];

/// Scans the fields of the object `v` whose keys `read` accepts with the generic walk (unit
/// `unit`, each at `at(key)`); redactions are written in place. Stops at the first block.
pub(crate) fn scan_fields(
    filter: &mut dyn TextFilter,
    unit: u32,
    v: &mut Value,
    read: &dyn Fn(&str) -> bool,
    at: &dyn Fn(&str) -> String,
) -> walk::Edit {
    let Value::Object(m) = v else {
        return walk::Edit::Kept;
    };
    let mut edit = walk::Edit::Kept;
    for (k, x) in m.iter_mut() {
        if !read(k) {
            continue;
        }
        match walk::scan_strings(filter, unit, &at(k), "", x, &|_| false) {
            walk::Edit::Kept => {}
            walk::Edit::Changed => edit = walk::Edit::Changed,
            blocked @ walk::Edit::Blocked(_) => return blocked,
        }
    }
    edit
}

/// A choice the policy stopped, as sent: the refusal (or `text`) and `content_filter`, nothing
/// else of the upstream's choice.
pub(crate) fn blocked_choice(index: u32, text: &str) -> Value {
    json!({"text": text, "index": index, "logprobs": null, "finish_reason": CONTENT_FILTER})
}

/// The legacy Completions adapter. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct Completions;

/// A parsed Completions request.
#[derive(Debug)]
struct CompletionsRequest {
    body: Bytes,
    req: Map<String, Value>,
    changed: bool,
}

fn read(
    sink: &mut dyn RequestSink,
    changed: &mut bool,
    role: Option<&str>,
    at: &str,
    s: &mut String,
) -> ControlFlow<()> {
    let before = s.clone();
    let flow = sink.text(InputText {
        role,
        location: &|| at.to_owned(),
        text: s,
        json: false,
    });
    *changed |= *s != before;
    match flow {
        Flow::Continue => ControlFlow::Continue(()),
        Flow::Stop => ControlFlow::Break(()),
    }
}

impl CompletionsRequest {
    fn walk(&mut self, sink: &mut dyn RequestSink, changed: &mut bool) -> ControlFlow<()> {
        match self.req.get_mut("prompt") {
            Some(Value::String(s)) => read(sink, changed, Some("user"), "prompt", s)?,
            Some(Value::Array(list)) => {
                for (i, p) in list.iter_mut().enumerate() {
                    match p {
                        Value::String(s) => {
                            read(sink, changed, Some("user"), &format!("prompt[{i}]"), s)?
                        }
                        _ => sink.partial("token prompts not scanned"),
                    }
                }
            }
            _ => {}
        }
        if let Some(Value::String(s)) = self.req.get_mut("suffix") {
            read(sink, changed, Some("user"), "suffix", s)?;
        }
        for (k, v) in self.req.iter_mut() {
            if SETTINGS.contains(&k.as_str()) {
                continue;
            }
            walk::strings(v, k, &["type"], &mut |s, at| {
                read(sink, changed, None, at, s)
            })?;
        }
        ControlFlow::Continue(())
    }

    /// Every prompt string.
    fn prompts(&mut self) -> Vec<&mut String> {
        match self.req.get_mut("prompt") {
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(list)) => list
                .iter_mut()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl WireRequest for CompletionsRequest {
    fn facts(&self) -> RequestFacts {
        let n = self.req.get("n").and_then(Value::as_u64).unwrap_or(1);
        RequestFacts {
            stream: self.req.get("stream").and_then(Value::as_bool) == Some(true),
            n: u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 128),
            include_usage: self
                .req
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                == Some(true),
            model: self
                .req
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }
    }

    fn instructions(&mut self, edit: &mut dyn FnMut(&mut String) -> bool) -> bool {
        // The prompts are where an earlier injection sits; an emptied prompt stays (`""` is a
        // valid prompt).
        let mut changed = false;
        for s in self.prompts() {
            changed |= edit(s);
        }
        self.changed |= changed;
        changed
    }

    fn texts(&mut self, sink: &mut dyn RequestSink) {
        let mut changed = false;
        let _ = self.walk(sink, &mut changed);
        self.changed |= changed;
    }

    fn place_spec(&mut self, text: String, _role: InjectRole, _placement: Placement) {
        if self.req.get("prompt").is_none_or(Value::is_null) {
            self.req.insert("prompt".into(), Value::String(text));
        } else {
            for s in self.prompts() {
                *s = if s.is_empty() {
                    text.clone()
                } else {
                    format!("{text}\n\n{s}")
                };
            }
        }
        self.changed = true;
    }

    fn to_bytes(&self) -> Result<Bytes, WireError> {
        if !self.changed {
            return Ok(self.body.clone());
        }
        to_bytes(&Value::Object(self.req.clone()))
    }
}

fn to_bytes(v: &Value) -> Result<Bytes, WireError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| WireError::Shape {
            message: e.to_string(),
        })
}

/// The channel of choice `index`'s text.
pub(crate) fn channel(index: u32) -> Channel {
    Channel::new(
        ChannelKind::Content,
        index,
        format!("choices[{index}].text"),
    )
}

/// The choice index of a choice object (0 when absent).
pub(crate) fn index_of(choice: &Value) -> u32 {
    choice
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(0)
}

/// A gateway-made completion object: `id`, `object`, `created`, `model`, `choices`.
pub(crate) fn completion(id: &str, created: u64, model: &str, choices: Value) -> Value {
    json!({"id": id, "object": "text_completion", "created": created, "model": model, "choices": choices})
}

/// The answer when a field outside the choices blocks: every choice the upstream sent (one
/// when it sent none) is the refusal; of the upstream's completion only its identifiers stay.
fn refuse_all(v: &Value, refusal: &str) -> Result<Answer, WireError> {
    let mut indexes: Vec<u32> = match v.get("choices") {
        Some(Value::Array(cs)) => cs.iter().map(index_of).collect(),
        _ => Vec::new(),
    };
    if indexes.is_empty() {
        indexes.push(0);
    }
    let mut out = serde_json::Map::new();
    if let Value::Object(m) = v {
        for (k, x) in m {
            if COMPLETION_META.contains(&k.as_str()) {
                out.insert(k.clone(), x.clone());
            }
        }
    }
    let choices = indexes
        .into_iter()
        .map(|i| blocked_choice(i, refusal))
        .collect();
    out.insert("choices".to_owned(), Value::Array(choices));
    Ok(Answer {
        body: to_bytes(&Value::Object(out))?,
        all_blocked: true,
    })
}

/// Zero usage: no upstream tokens were spent.
pub(crate) fn zero_usage() -> Value {
    json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
}

impl Adapter for Completions {
    fn name(&self) -> &'static str {
        "openai.completions"
    }

    fn request(&self, body: &[u8]) -> Result<Box<dyn WireRequest>, WireError> {
        match crate::wire::parse_strict(body)? {
            Value::Object(req) => Ok(Box::new(CompletionsRequest {
                body: Bytes::copy_from_slice(body),
                req,
                changed: false,
            })),
            _ => Err(WireError::Shape {
                message: "a completions request is a JSON object".to_owned(),
            }),
        }
    }

    fn answer(&self, body: &Bytes, filter: &mut dyn TextFilter) -> Result<Answer, WireError> {
        let mut v = crate::wire::parse_strict(body)?;
        if !matches!(v.get("choices"), Some(Value::Array(_))) {
            return Err(WireError::Shape {
                message: "a completion has `choices`".to_owned(),
            });
        }
        let mut changed = false;
        // The completion's own fields: a block there refuses every choice.
        match scan_fields(
            filter,
            0,
            &mut v,
            &|k| k != "choices" && !COMPLETION_META.contains(&k),
            &|k| k.to_owned(),
        ) {
            walk::Edit::Kept => {}
            walk::Edit::Changed => changed = true,
            walk::Edit::Blocked(refusal) => return refuse_all(&v, &refusal),
        }
        let Some(Value::Array(choices)) = v.get_mut("choices") else {
            return Err(WireError::Shape {
                message: "a completion has `choices`".to_owned(),
            });
        };
        let mut blocked = 0;
        let total = choices.len();
        for c in choices.iter_mut() {
            let i = index_of(c);
            // `text` when it is a string; anything else there (an upstream fault: a list, an
            // object) and every other field of the choice through the generic walk.
            let mut verdict = match c.get_mut("text") {
                Some(Value::String(text)) => match filter.scan(&channel(i), text) {
                    Verdict::Send(s) if s == *text => walk::Edit::Kept,
                    Verdict::Send(s) => {
                        *text = s;
                        walk::Edit::Changed
                    }
                    Verdict::Strip => {
                        text.clear();
                        walk::Edit::Changed
                    }
                    Verdict::Block { refusal, .. } => walk::Edit::Blocked(refusal),
                },
                _ => walk::Edit::Kept,
            };
            if !matches!(verdict, walk::Edit::Blocked(_)) {
                let text_is_string = c.get("text").is_some_and(Value::is_string);
                let rest = scan_fields(
                    filter,
                    i,
                    c,
                    &|k| !CHOICE_OWN.contains(&k) || (k == "text" && !text_is_string),
                    &|k| format!("choices[{i}].{k}"),
                );
                if rest != walk::Edit::Kept {
                    verdict = rest;
                }
            }
            match verdict {
                walk::Edit::Kept => {}
                walk::Edit::Changed => {
                    changed = true;
                    // Log probabilities carry the tokens of the upstream's text.
                    if let Some(lp) = c.get_mut("logprobs") {
                        *lp = Value::Null;
                    }
                }
                walk::Edit::Blocked(refusal) => {
                    blocked += 1;
                    changed = true;
                    *c = blocked_choice(i, &refusal);
                }
            }
        }
        if !changed {
            return Ok(Answer {
                body: body.clone(),
                all_blocked: false,
            });
        }
        Ok(Answer {
            body: to_bytes(&v)?,
            all_blocked: total > 0 && blocked == total,
        })
    }

    fn stream(&self, facts: &RequestFacts) -> Box<dyn StreamRewriter> {
        Box::new(stream::CompletionsStream::new(facts))
    }

    fn refusal_answer(&self, facts: &RequestFacts, text: &str) -> Bytes {
        let meta = stream::Meta::new(&facts.model);
        let choices: Vec<Value> = (0..facts.n.max(1))
            .map(|i| json!({"text": text, "index": i, "logprobs": null, "finish_reason": CONTENT_FILTER}))
            .collect();
        let mut v = completion(&meta.id, meta.created, &meta.model, Value::Array(choices));
        v["usage"] = zero_usage();
        Bytes::from(v.to_string())
    }
}
