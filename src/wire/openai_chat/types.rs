//! Lenient wire types for OpenAI chat completions: requests, responses and stream chunks.
//!
//! One concern in one file (over 600 lines with its tests): the typed Chat Completions shapes.
//!
//! Only the fields the gateway reads or edits are typed; everything else lands in an `extra`
//! map (`#[serde(flatten)]`) and is written back unchanged, so vendor fields (`top_k`,
//! `prompt_filter_results`, `service_tier`, ...) and fields OpenAI adds later survive a parse →
//! serialize round trip.
//!
//! Optional fields are [`Nullable`], not `Option`: a field that was absent stays absent and a
//! field that was `null` is written back as `null`. Providers and SDKs disagree on the two often
//! enough (`"content": null` beside `tool_calls`, `"finish_reason": null` in every chunk) that
//! the gateway should not be the one changing them.
//!
//! A few deliberate exceptions write a field that may have been absent, so that a provider
//! omitting it still parses: `index` of a choice defaults to `0`, `choices` to `[]`, and a chunk
//! choice's `delta` to `{}` (also when it is `null`; Azure sends choices without a delta).
//!
//! Do not put a typed field's name into an `extra` map by hand: it would be written twice.

use std::fmt;
use std::iter::FusedIterator;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A JSON field that may be absent, `null`, or hold a value — and remembers which.
///
/// Use it with `#[serde(default, skip_serializing_if = "Nullable::is_absent")]`.
///
/// ```
/// use deliberate::wire::openai_chat::{Delta, Nullable};
///
/// let d: Delta = serde_json::from_str(r#"{"content": null}"#).unwrap();
/// assert_eq!(d.content, Nullable::Null);
/// assert_eq!(d.refusal, Nullable::Absent);
/// assert_eq!(serde_json::to_string(&d).unwrap(), r#"{"content":null}"#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Nullable<T> {
    /// The field was not there.
    #[default]
    Absent,
    /// The field was `null`.
    Null,
    /// The field held a value.
    Present(T),
}

/// A message's `content`: a plain string or an array of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a string or an array of content parts")]
pub enum Content {
    /// `"content": "text"`.
    Text(String),
    /// `"content": [{"type": "text", "text": "..."}, {"type": "image_url", ...}]`.
    Parts(Vec<ContentPart>),
}

/// One element of an array `content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// The part's `type`: `text`, `image_url`, `input_audio`, `file`, `refusal`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub text: Nullable<String>,
    /// Every other field (`image_url`, `input_audio`, `refusal`, `cache_control`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A chat completion request (`POST /v1/chat/completions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name. Required by OpenAI; optional here so the gateway can answer its absence.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub model: Nullable<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Whether the response is streamed as server-sent events.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub stream: Nullable<bool>,
    /// How many choices to generate.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub n: Nullable<u32>,
    /// Every other field (`tools`, `tool_choice`, `response_format`, `stream_options`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of a request's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// What the message says; `null` or absent on assistant messages that only call tools.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub content: Nullable<Content>,
    /// Every other field (`name`, `tool_calls`, `tool_call_id`, `refusal`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A non-streamed chat completion response.
pub type ChatCompletion = Choices<Choice>;

/// One `chat.completion.chunk` of a streamed response (the JSON in one SSE `data:` field).
pub type ChatChunk = Choices<ChunkChoice>;

/// A completion ([`Choice`]s) or a stream chunk ([`ChunkChoice`]s): its choices and the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choices<C> {
    /// The choices; a chunk's are the choices it continues (none in a final usage chunk).
    #[serde(default = "Vec::new")]
    pub choices: Vec<C>,
    /// Every other field (`id`, `object`, `created`, `model`, `usage`, `system_fingerprint`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The choice's position (`0` when a provider omits it).
    #[serde(default)]
    pub index: u32,
    /// The generated message.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub message: Nullable<ResponseMessage>,
    /// Why generation stopped: `stop`, `length`, `tool_calls`, `content_filter`, ...
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub finish_reason: Nullable<String>,
    /// Every other field (`logprobs`, `content_filter_results`, `stop_reason`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The message of a non-streamed [`Choice`]: an [`AssistantMessage`] whole.
pub type ResponseMessage = AssistantMessage;

/// The increment a [`ChunkChoice`] carries: an [`AssistantMessage`] in pieces.
pub type Delta = AssistantMessage;

/// What the model says, whole in a response's [`Choice`] or in pieces in a stream's
/// [`ChunkChoice`]: the two share one shape, so one type reads both and a field added here is
/// scanned in both (the stream text of a field is its pieces concatenated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Normally `assistant`; in a stream, on the first chunk only.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub role: Nullable<String>,
    /// The answer text.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub content: Nullable<String>,
    /// The model's own refusal message.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub refusal: Nullable<String>,
    /// Tool calls the model made; in a stream, pieces matched to calls by [`ToolCall::index`].
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub tool_calls: Nullable<Vec<ToolCall>>,
    /// Reasoning text, as DeepSeek and vLLM (older versions) name it.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub reasoning_content: Nullable<String>,
    /// Reasoning text, as OpenRouter, Ollama and newer vLLM name it.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub reasoning: Nullable<String>,
    /// Every other field (`annotations`, `audio`, `function_call`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool call, whole in a response or in pieces in stream deltas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Which call a stream delta continues (stream deltas only).
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub index: Nullable<u32>,
    /// The call id (`call_...`); in a stream, only on the first delta of a call.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub id: Nullable<String>,
    /// Normally `function`.
    #[serde(rename = "type", default, skip_serializing_if = "Nullable::is_absent")]
    pub type_: Nullable<String>,
    /// The function called and its arguments.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub function: Nullable<FunctionCall>,
    /// Every other field (`custom`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function name; in a stream, only on the first delta of a call.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub name: Nullable<String>,
    /// The arguments as JSON text; in a stream, a piece of it per delta.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub arguments: Nullable<String>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a [`ChatChunk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Which choice this continues (`0` when a provider omits it).
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds (an empty object when a provider omits it or sends `null`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub delta: Delta,
    /// Why generation stopped; `null` until the last chunk of the choice.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub finish_reason: Nullable<String>,
    /// Every other field (`logprobs`, `content_filter_results`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Iterator over the texts of a message that the model reads; see [`Message::text_parts`].
#[derive(Debug, Clone)]
pub struct TextParts<'a> {
    inner: TextPartsInner<'a>,
}

#[derive(Debug, Clone)]
enum TextPartsInner<'a> {
    One(Option<&'a str>),
    Parts(std::slice::Iter<'a, ContentPart>),
}

/// Mutable iterator over the texts of a message that the model reads; see
/// [`Message::text_parts_mut`].
#[derive(Debug)]
pub struct TextPartsMut<'a> {
    inner: TextPartsMutInner<'a>,
}

#[derive(Debug)]
enum TextPartsMutInner<'a> {
    One(Option<&'a mut String>),
    Parts(std::slice::IterMut<'a, ContentPart>),
}

// === impl Nullable ===

impl<T> Nullable<T> {
    /// `true` when the field was not there (the `skip_serializing_if` predicate).
    pub fn is_absent(&self) -> bool {
        matches!(self, Nullable::Absent)
    }

    /// `true` when the field was `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Nullable::Null)
    }

    /// The value, if there is one.
    pub fn get(&self) -> Option<&T> {
        match self {
            Nullable::Present(v) => Some(v),
            Nullable::Absent | Nullable::Null => None,
        }
    }

    /// The value, mutably, if there is one.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Nullable::Present(v) => Some(v),
            Nullable::Absent | Nullable::Null => None,
        }
    }

    /// The value, if there is one.
    pub fn into_option(self) -> Option<T> {
        match self {
            Nullable::Present(v) => Some(v),
            Nullable::Absent | Nullable::Null => None,
        }
    }

    /// The value, dereferenced (`&str` for a `Nullable<String>`), if there is one.
    pub fn as_deref(&self) -> Option<&T::Target>
    where
        T: std::ops::Deref,
    {
        self.get().map(|v| &**v)
    }
}

impl<T> From<T> for Nullable<T> {
    fn from(value: T) -> Self {
        Nullable::Present(value)
    }
}

impl<T: Serialize> Serialize for Nullable<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // `Absent` is normally skipped; written on its own it can only be `null`.
            Nullable::Absent | Nullable::Null => serializer.serialize_none(),
            Nullable::Present(v) => serializer.serialize_some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only called for a field that is there; a missing one gets `Default`, i.e. `Absent`.
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(v) => Nullable::Present(v),
            None => Nullable::Null,
        })
    }
}

/// Reads `null` as the type's default.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

// === impl ChatRequest ===

impl ChatRequest {
    /// `true` when the client asked for a streamed response (`"stream": true`).
    pub fn is_stream(&self) -> bool {
        self.stream.get().copied().unwrap_or(false)
    }

    /// How many choices the client asked for (`n`, default 1).
    pub fn choice_count(&self) -> u32 {
        self.n.get().copied().unwrap_or(1)
    }

    /// `true` when a streamed response must end with a usage chunk
    /// (`"stream_options": {"include_usage": true}`).
    pub fn include_usage(&self) -> bool {
        self.extra
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

// === impl Message ===

/// What [`Message::text`] puts between two text parts (vLLM joins parts the same way before
/// templating).
pub const PART_SEPARATOR: &str = "\n";

impl Message {
    /// A message with string content.
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: Nullable::Present(Content::Text(text.into())),
            extra: Map::new(),
        }
    }

    /// Every text of this message that the model reads: the string content, or the `text` of
    /// each part whose `type` is `"text"`, in order.
    ///
    /// Not included: `refusal` parts and fields, `tool_calls` arguments and `name`s (they are in
    /// [`Message::extra`]), and non-text parts (images, audio, files).
    pub fn text_parts(&self) -> TextParts<'_> {
        let inner = match &self.content {
            Nullable::Present(Content::Text(s)) => TextPartsInner::One(Some(s)),
            Nullable::Present(Content::Parts(parts)) => TextPartsInner::Parts(parts.iter()),
            Nullable::Absent | Nullable::Null => TextPartsInner::One(None),
        };
        TextParts { inner }
    }

    /// The texts of [`Message::text_parts`], mutably, so the gateway can redact them in place.
    ///
    /// ```
    /// use deliberate::wire::openai_chat::Message;
    ///
    /// let mut m: Message = serde_json::from_str(
    ///     r#"{"role":"user","content":[{"type":"text","text":"call 555-0100"},
    ///        {"type":"image_url","image_url":{"url":"https://x/y.png"}}]}"#,
    /// ).unwrap();
    /// for text in m.text_parts_mut() {
    ///     *text = text.replace("555-0100", "[phone]");
    /// }
    /// assert_eq!(m.text(), "call [phone]");
    /// ```
    pub fn text_parts_mut(&mut self) -> TextPartsMut<'_> {
        let inner = match &mut self.content {
            Nullable::Present(Content::Text(s)) => TextPartsMutInner::One(Some(s)),
            Nullable::Present(Content::Parts(parts)) => TextPartsMutInner::Parts(parts.iter_mut()),
            Nullable::Absent | Nullable::Null => TextPartsMutInner::One(None),
        };
        TextPartsMut { inner }
    }

    /// The texts of [`Message::text_parts`] joined by [`PART_SEPARATOR`]; empty when there are
    /// none.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, part) in self.text_parts().enumerate() {
            if i > 0 {
                out.push_str(PART_SEPARATOR);
            }
            out.push_str(part);
        }
        out
    }
}

// === impl ContentPart ===

impl ContentPart {
    /// A `{"type": "text", "text": ...}` part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart {
            type_: "text".to_owned(),
            text: Nullable::Present(text.into()),
            extra: Map::new(),
        }
    }

    /// `true` for a `text` part.
    pub fn is_text(&self) -> bool {
        self.type_ == "text"
    }
}

// === impl TextParts ===

impl<'a> Iterator for TextParts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match &mut self.inner {
            TextPartsInner::One(one) => one.take(),
            TextPartsInner::Parts(parts) => parts.find_map(|p| match (&p.text, p.is_text()) {
                (Nullable::Present(t), true) => Some(t.as_str()),
                _ => None,
            }),
        }
    }
}

impl FusedIterator for TextParts<'_> {}

impl<'a> Iterator for TextPartsMut<'a> {
    type Item = &'a mut String;

    fn next(&mut self) -> Option<&'a mut String> {
        match &mut self.inner {
            TextPartsMutInner::One(one) => one.take(),
            TextPartsMutInner::Parts(parts) => {
                parts.find_map(|p| if p.is_text() { p.text.get_mut() } else { None })
            }
        }
    }
}

impl FusedIterator for TextPartsMut<'_> {}

// === impl Content ===

impl fmt::Display for Content {
    /// The text the model reads, parts joined by [`PART_SEPARATOR`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Text(s) => f.write_str(s),
            Content::Parts(parts) => {
                let texts = parts
                    .iter()
                    .filter(|p| p.is_text())
                    .filter_map(|p| p.text.get());
                for (i, t) in texts.enumerate() {
                    if i > 0 {
                        f.write_str(PART_SEPARATOR)?;
                    }
                    f.write_str(t)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::json::parse_strict_as;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    /// Parses `value` as `T` (through the strict parser, as the gateway does), writes it back
    /// and checks that nothing changed.
    fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> T {
        let bytes = serde_json::to_vec(value).unwrap();
        let typed: T = parse_strict_as(&bytes).unwrap();
        let back = serde_json::to_value(&typed).unwrap();
        assert_eq!(&back, value, "round trip changed the JSON");
        typed
    }

    fn realistic_request() -> Value {
        json!({
            "model": "gpt-4o-2024-08-06",
            "messages": [
                {"role": "developer", "content": "You are terse."},
                {"role": "system", "content": [{"type": "text", "text": "Cite sources."}], "name": "ops"},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                    {"type": "text", "text": "And the weather?", "cache_control": {"type": "ephemeral"}}
                ]},
                {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"id": "call_abc", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_abc", "content": "{\"temp_c\": 21}"},
                {"role": "assistant", "tool_calls": []},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Weather for a city", "strict": true,
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": false}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"type": "number"}}}}},
            "logprobs": true,
            "top_logprobs": 3,
            "logit_bias": {"50256": -100},
            "temperature": 0.7,
            "top_p": 1,
            "max_completion_tokens": 256,
            "stop": ["\n\n", "END"],
            "seed": 42,
            "n": 2,
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "u-123",
            "metadata": {"trace": "t1"},
            "store": false,
            "reasoning_effort": "low",
            "modalities": ["text"],
            "service_tier": "auto",
            // vLLM / vendor extensions.
            "top_k": 40,
            "repetition_penalty": 1.1,
            "guided_json": {"type": "object"},
            "chat_template_kwargs": {"enable_thinking": false},
            "x_unknown": [null, {"deep": [1.5e-7, -3]}]
        })
    }

    #[test]
    fn request_round_trips_and_types_what_it_touches() {
        let req: ChatRequest = round_trip(&realistic_request());
        assert_eq!(req.model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert!(req.is_stream());
        assert!(req.include_usage());
        assert_eq!(req.choice_count(), 2);
        assert_eq!(req.messages.len(), 7);
        assert_eq!(req.messages[3].content, Nullable::Null);
        assert_eq!(req.messages[5].content, Nullable::Absent);
        assert_eq!(
            req.messages[2].text(),
            "What is in this image?\nAnd the weather?"
        );
        assert_eq!(req.messages[1].extra["name"], "ops");
        assert_eq!(req.extra["top_k"], 40);
        assert!(!req.extra.contains_key("messages"));
    }

    #[test]
    fn minimal_request_and_defaults() {
        let req: ChatRequest = round_trip(&json!({"messages": []}));
        assert_eq!(req.model, Nullable::Absent);
        assert!(!req.is_stream());
        assert!(!req.include_usage());
        assert_eq!(req.choice_count(), 1);
        // `null` is kept as `null`, not dropped and not defaulted.
        let req: ChatRequest =
            round_trip(&json!({"model": null, "messages": [], "stream": null, "n": null}));
        assert_eq!(req.stream, Nullable::Null);
        assert!(!req.is_stream());
    }

    #[test]
    fn request_shape_errors() {
        let cases: [&[u8]; 6] = [
            br#"{}"#,
            br#"{"messages": {}}"#,
            br#"{"messages": [{"content": "no role"}]}"#,
            br#"{"messages": [{"role": "user", "content": 5}]}"#,
            br#"{"messages": [{"role": "user", "content": [{"text": "no type"}]}]}"#,
            br#"{"messages": [], "n": -1}"#,
        ];
        for case in cases {
            let err = parse_strict_as::<ChatRequest>(case).unwrap_err();
            assert!(
                matches!(err, crate::wire::WireError::Shape { .. }),
                "{}: {err:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn completion_round_trips() {
        let completion = json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "The image shows a wooden boardwalk.",
                        "refusal": null,
                        "annotations": []
                    },
                    "logprobs": {"content": [{"token": "The", "logprob": -0.01,
                        "bytes": [84, 104, 101], "top_logprobs": []}], "refusal": null},
                    "finish_reason": "stop",
                    "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}
                },
                {
                    "index": 1,
                    "message": {
                        "role": "assistant",
                        "content": null,
                        "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls",
                    "stop_reason": null
                },
                {
                    "index": 2,
                    "message": {"role": "assistant", "content": "42",
                        "reasoning_content": "Six times seven.", "reasoning": null},
                    "finish_reason": "length"
                }
            ],
            "usage": {
                "prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fc9f1d7035",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]
        });
        let c: ChatCompletion = round_trip(&completion);
        assert_eq!(c.choices.len(), 3);
        let m0 = c.choices[0].message.get().unwrap();
        assert_eq!(
            m0.content.as_deref(),
            Some("The image shows a wooden boardwalk.")
        );
        assert_eq!(m0.refusal, Nullable::Null);
        let m1 = c.choices[1].message.get().unwrap();
        assert_eq!(m1.content, Nullable::Null);
        let calls = m1.tool_calls.get().unwrap();
        let f = calls[0].function.get().unwrap();
        assert_eq!(f.arguments.as_deref(), Some("{\"city\":\"Paris\"}"));
        assert_eq!(c.choices[1].finish_reason.as_deref(), Some("tool_calls"));
        let m2 = c.choices[2].message.get().unwrap();
        assert_eq!(m2.reasoning_content.as_deref(), Some("Six times seven."));
        assert_eq!(m2.reasoning, Nullable::Null);
        assert_eq!(c.extra["usage"]["total_tokens"], 1163);
    }

    #[test]
    fn chunks_round_trip() {
        let chunks = [
            // Azure sends prompt filter results first, with no choices and an empty model.
            json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                   "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1694268190,
                   "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "service_tier": "default",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null},
                                "logprobs": null, "finish_reason": null}],
                   "usage": null}),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1694268190,
                   "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "Hel"},
                   "logprobs": {"content": [{"token": "Hel", "logprob": -0.2, "bytes": [72, 101, 108],
                                "top_logprobs": [{"token": "Hel", "logprob": -0.2, "bytes": null}]}],
                                "refusal": null},
                   "finish_reason": null}]}),
            // Tool call: first delta names the call, later ones carry argument pieces.
            json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": null,
                   "tool_calls": [{"index": 0, "id": "call_x", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]},
                   "logprobs": null, "finish_reason": null}]}),
            json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
                   "function": {"arguments": "{\"ci"}}]}, "logprobs": null, "finish_reason": null}]}),
            json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "tool_calls"}]}),
            // Usage chunk (stream_options.include_usage): empty choices.
            json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21,
                   "completion_tokens_details": {"reasoning_tokens": 0}}}),
            // DeepSeek / vLLM reasoning deltas.
            json!({"id": "3", "object": "chat.completion.chunk", "created": 1, "model": "deepseek-reasoner",
                   "choices": [{"index": 0, "delta": {"content": null, "reasoning_content": "Hmm"},
                   "logprobs": null, "finish_reason": null}]}),
            json!({"id": "4", "object": "chat.completion.chunk", "created": 1, "model": "qwen3",
                   "choices": [{"index": 0, "delta": {"reasoning": "so", "content": null},
                   "logprobs": null, "finish_reason": null, "stop_reason": null,
                   "token_ids": null}], "prompt_token_ids": null}),
            // n = 2: two choices in one chunk.
            json!({"id": "5", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 1, "delta": {"content": "b"}, "finish_reason": null},
                               {"index": 0, "delta": {"content": "a"}, "finish_reason": "content_filter",
                                "content_filter_results": {"violence": {"filtered": true, "severity": "high"}}}]}),
        ];
        let typed: Vec<ChatChunk> = chunks.iter().map(round_trip).collect();
        assert!(typed[0].choices.is_empty());
        assert_eq!(typed[1].choices[0].delta.content.as_deref(), Some(""));
        assert_eq!(typed[1].choices[0].finish_reason, Nullable::Null);
        assert_eq!(typed[2].choices[0].delta.content.as_deref(), Some("Hel"));
        let call = &typed[4].choices[0].delta.tool_calls.get().unwrap()[0];
        assert_eq!(call.index, Nullable::Present(0));
        assert_eq!(call.id, Nullable::Absent);
        assert_eq!(
            call.function.get().unwrap().arguments.as_deref(),
            Some("{\"ci")
        );
        assert_eq!(typed[6].extra["usage"]["total_tokens"], 21);
        assert_eq!(
            typed[7].choices[0].delta.reasoning_content.as_deref(),
            Some("Hmm")
        );
        assert_eq!(
            typed[9].choices[1].finish_reason.as_deref(),
            Some("content_filter")
        );
    }

    #[test]
    fn lenient_defaults_for_sloppy_providers() {
        // No index, no delta, no choices: still parses; the defaults are written back.
        let chunk: ChatChunk = serde_json::from_value(json!({"choices": [{}]})).unwrap();
        assert_eq!(chunk.choices[0].index, 0);
        assert_eq!(chunk.choices[0].delta, Delta::default());
        assert_eq!(
            serde_json::to_value(&chunk).unwrap(),
            json!({"choices": [{"index": 0, "delta": {}}]})
        );
        let chunk: ChatChunk =
            serde_json::from_value(json!({"choices": [{"index": 0, "delta": null}]})).unwrap();
        assert_eq!(chunk.choices[0].delta, Delta::default());
        let err: ChatChunk = serde_json::from_value(json!({"error": {"message": "boom"}})).unwrap();
        assert!(err.choices.is_empty());
        assert_eq!(err.extra["error"]["message"], "boom");
    }

    #[test]
    fn null_and_absent_content_stay_distinct() {
        let cases = [
            json!({"role": "assistant"}),
            json!({"role": "assistant", "content": null}),
            json!({"role": "assistant", "content": ""}),
            json!({"role": "assistant", "content": []}),
        ];
        for case in &cases {
            let _: Message = round_trip(case);
        }
        let d: Delta = round_trip(&json!({"content": null, "refusal": null, "tool_calls": null}));
        assert_eq!(d.content, Nullable::Null);
        assert_eq!(d.tool_calls, Nullable::Null);
    }

    #[test]
    fn text_parts_cover_what_the_model_reads() {
        let m: Message = serde_json::from_value(json!({"role": "user", "content": [
            {"type": "text", "text": "a"},
            {"type": "image_url", "image_url": {"url": "u"}, "text": "not read"},
            {"type": "text"},
            {"type": "refusal", "refusal": "r"},
            {"type": "text", "text": ""},
            {"type": "text", "text": "b"}
        ]}))
        .unwrap();
        assert_eq!(m.text_parts().collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!(m.text(), "a\n\nb");
        assert_eq!(m.content.get().unwrap().to_string(), "a\n\nb");

        let empty: Message =
            serde_json::from_value(json!({"role": "assistant", "content": null})).unwrap();
        assert_eq!(empty.text_parts().count(), 0);
        assert_eq!(empty.text(), "");
        assert_eq!(Message::new("user", "hi").text(), "hi");
    }

    #[test]
    fn text_parts_mut_edits_in_place_and_keeps_the_rest() {
        let mut req: ChatRequest = serde_json::from_value(realistic_request()).unwrap();
        for m in &mut req.messages {
            for t in m.text_parts_mut() {
                *t = t.to_uppercase();
            }
        }
        let back = serde_json::to_value(&req).unwrap();
        let mut expected = realistic_request();
        expected["messages"][0]["content"] = json!("YOU ARE TERSE.");
        expected["messages"][1]["content"][0]["text"] = json!("CITE SOURCES.");
        expected["messages"][2]["content"][0]["text"] = json!("WHAT IS IN THIS IMAGE?");
        expected["messages"][2]["content"][3]["text"] = json!("AND THE WEATHER?");
        expected["messages"][4]["content"] = json!("{\"TEMP_C\": 21}");
        assert_eq!(back, expected);
    }

    #[test]
    fn nullable_accessors() {
        let mut n: Nullable<String> = "x".to_owned().into();
        assert_eq!(n.as_deref(), Some("x"));
        n.get_mut().unwrap().push('y');
        assert_eq!(n.clone().into_option(), Some("xy".to_owned()));
        assert!(Nullable::<u8>::Null.is_null());
        assert!(Nullable::<u8>::default().is_absent());
        assert_eq!(Nullable::<u8>::Null.get(), None);
        // Written on its own, `Absent` can only be `null`.
        assert_eq!(
            serde_json::to_string(&Nullable::<u8>::Absent).unwrap(),
            "null"
        );
    }
}
