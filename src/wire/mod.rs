//! Wire adapters: one per model API, each knowing where that API keeps its texts.
//!
//! The enforcement core (the [`engine`](crate::engine)) reads text; the middleware
//! ([`layer`](crate::layer)) decides what to scan, inject, redact and refuse. Neither names a
//! field of any API. Everything format-specific sits behind [`Adapter`]:
//!
//! - the facts of a request ([`RequestFacts`]: streamed?, how many choices, which model);
//! - every text of a request with its location and provenance ([`InputText`]), written back in
//!   place when a rule redacts it ([`WireRequest::texts`]);
//! - the instruction texts an earlier injection may sit in, and where the injected spec goes
//!   ([`WireRequest::instructions`], [`WireRequest::place_spec`]);
//! - every text of a buffered answer ([`Adapter::answer`]) and of each stream event
//!   ([`StreamRewriter`]), by [`Channel`], handed to a [`TextFilter`] that the layer implements,
//!   and re-encoded in the format's own shapes;
//! - the format's refusal (buffered and streamed), its in-band end of a stream, and its error
//!   bodies ([`Adapter::refusal`], [`StreamRewriter::refusal`], [`Adapter::error_body`]).
//!
//! Generic pieces every adapter uses: [`json`] (strict parsing: duplicate keys are errors),
//! [`sse`] (an incremental server-sent-events decoder and encoder) and [`json_text`] (texts that
//! hold JSON, such as tool-call arguments, decoded for scanning and re-encoded after edits).
//!
//! ## Adding an API
//!
//! 1. Make a folder `src/wire/<api>/` with a type implementing [`Adapter`] (and a
//!    [`StreamRewriter`] when the API streams) and declare it here (`pub mod <api>;`). List
//!    *every* text the format can carry: what the adapter does not list is not scanned, so when
//!    in doubt, hand a string to [`TextFilter::scan`] as [`ChannelKind::Other`] or report it
//!    with [`TextFilter::partial`].
//! 2. Register it in [`ADAPTERS`] with the canonical route suffix it serves (before a shorter
//!    suffix it shares an ending with).
//! 3. Enforce its route: its route name in `proxy::routes::ENFORCED_APIS`, and, for a path the
//!    route table does not know yet, its rows in `proxy::routes::STANDARD_ROUTES`; add the pair
//!    to the table test `enforced_apis_and_adapters_agree` (`src/proxy/routes_tests.rs`), which
//!    fails while the two lists disagree.
//! 4. Let the embedded echo upstream answer it (`src/proxy/echo/`: a module that writes the
//!    API's answer and stream, and its adapter name in `Api::of`), so `deliberate serve` without
//!    an upstream and the tests can drive it.
//! 5. Test it with the official SDK of that API against the gateway (`tests/sdk_apis.rs`),
//!    blocked and redacted text at every split point and in every channel (`tests/fail_closed.rs`),
//!    and add its `request_*` and `stream_*` targets to `fuzz/`.
//!
//! The layer picks the adapter with [`adapter_for`] and changes nothing.

pub mod anthropic;
pub mod error;
pub mod json;
pub mod json_text;
pub mod openai_chat;
pub mod openai_completions;
pub mod openai_responses;
mod splice;
pub mod sse;
#[cfg(test)]
mod testing;
pub(crate) mod walk;

use std::fmt;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::{ErrorInfo, ErrorKind};
pub use json::{WireError, parse_strict};
pub use sse::SseEvent;

use crate::policy::InjectRole;

/// Where the injected spec goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// An instruction of its own, first in the conversation.
    #[default]
    Prepend,
    /// At the start of the operator's first instruction (a new first instruction when there is
    /// none).
    Merge,
}

impl Placement {
    /// Lower-case name, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Prepend => "prepend",
            Placement::Merge => "merge",
        }
    }
}

/// What the layer needs to know about a request before it answers or forwards it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The answer is streamed (server-sent events).
    pub stream: bool,
    /// How many choices the client asked for (at least 1).
    pub n: u32,
    /// The client asked for a usage event at the end of a stream.
    pub include_usage: bool,
    /// The model named by the request (empty when none).
    pub model: String,
}

impl RequestFacts {
    /// The facts of a request object that asks for one answer: `stream` and `model` read from
    /// the JSON object, `n` 1, no usage event asked for (Responses, Anthropic Messages).
    pub fn single(req: &serde_json::Map<String, Value>) -> Self {
        RequestFacts {
            stream: req.get("stream").and_then(Value::as_bool) == Some(true),
            n: 1,
            include_usage: false,
            model: req
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// One text of a request, handed to a [`RequestSink`].
pub struct InputText<'a> {
    /// The role or item type it comes from, lower-cased and trimmed (`system`, `developer`,
    /// `user`, `assistant`, `tool`, …); `None` when the adapter cannot tell, which the layer
    /// scans as the most restrictive role (every input rule reads it).
    pub role: Option<&'a str>,
    /// Where it sits, for the audit record (`messages[2].content[0]`).
    pub location: &'a dyn Fn() -> String,
    /// The text; the sink may rewrite it (redaction).
    pub text: &'a mut String,
    /// The text is JSON (tool-call arguments): scan its decoded strings.
    pub json: bool,
}

impl fmt::Debug for InputText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputText")
            .field("role", &self.role)
            .field("location", &(self.location)())
            .field("json", &self.json)
            .finish()
    }
}

/// What a [`RequestSink`] says after reading a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next text.
    Continue,
    /// Stop: the request is refused.
    Stop,
}

/// Reads the texts of a request. The layer implements it: scans, redacts in place, records.
pub trait RequestSink {
    /// One text of the request.
    fn text(&mut self, text: InputText<'_>) -> Flow;
    /// Something the model reads that the gateway cannot scan (an image, an audio part, a file,
    /// state kept by the provider): the enforcement becomes `partial` for this reason.
    fn partial(&mut self, reason: &'static str);
}

/// Which kind of text a channel of an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelKind {
    /// The answer text the user reads.
    Content,
    /// The model's own refusal message.
    Refusal,
    /// Reasoning or thinking text (scanned at the `reasoning` stage, or passed or stripped as
    /// the operator chose).
    Reasoning,
    /// Arguments of a tool or function call, or a custom tool's input.
    ToolArguments,
    /// The name of the tool called.
    ToolName,
    /// Any other string the answer carries (annotations, unknown fields, error texts): scanned
    /// like content.
    Other,
}

/// One text of an answer: a field of one unit (a choice), possibly spread over many events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// What it carries.
    pub kind: ChannelKind,
    /// The unit a block ends: the choice index (0 for APIs with one answer).
    pub unit: u32,
    /// Where it sits, for the audit record (`choices[0].tool_calls[1].arguments`).
    pub location: String,
    /// The text is JSON (tool-call arguments, `input_json_delta`): its strings are decoded before
    /// scanning and edits re-encoded (see [`json_text`]).
    pub json: bool,
}

impl Channel {
    /// A channel of `kind` in `unit` at `location`, plain text.
    pub fn new(kind: ChannelKind, unit: u32, location: impl Into<String>) -> Self {
        Channel {
            kind,
            unit,
            location: location.into(),
            json: false,
        }
    }

    /// The same channel, carrying JSON text.
    pub fn json(mut self) -> Self {
        self.json = true;
        self
    }
}

/// Names a channel a [`TextFilter`] opened for a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId(pub usize);

/// What may go to the client in place of a text (or a piece of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send this (the text as it is, with redactions, or only the part decided safe so far).
    Send(String),
    /// Leave the field out (reasoning the operator strips).
    Strip,
    /// The unit is blocked: send nothing more of it but `released`.
    Block {
        /// The refusal text to show in its place.
        refusal: String,
        /// Text of this piece decided safe before the block: it may still be sent (in a
        /// stream, it is what precedes the blocked span; never any byte of it).
        released: String,
    },
}

/// Scans the texts of an answer for an adapter. The layer implements it (policies, audit,
/// deliberation stripping, reasoning handling, JSON decoding); adapters only call it.
pub trait TextFilter {
    /// Opens a streamed channel.
    fn open(&mut self, channel: Channel) -> ChannelId;
    /// A piece of a streamed channel's text: what may be sent now.
    fn push(&mut self, id: ChannelId, text: &str) -> Verdict;
    /// The channel's text is complete: everything still held, decided.
    fn close(&mut self, id: ChannelId) -> Verdict;
    /// A whole text at once (buffered answers, and strings of stream events that are complete
    /// in one event).
    fn scan(&mut self, channel: &Channel, text: &str) -> Verdict;
    /// Something of the answer the gateway cannot scan (audio, an unknown binary part): the
    /// enforcement becomes `partial`.
    fn partial(&mut self, reason: &'static str);
    /// Whether `unit` was blocked.
    fn is_blocked(&self, unit: u32) -> bool;
}

/// What an adapter made of a buffered answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The body to send (the upstream's own bytes when nothing changed).
    pub body: Bytes,
    /// Every unit was blocked.
    pub all_blocked: bool,
}

/// Where the bytes for the client go while a [`StreamRewriter`] works.
#[derive(Debug, Default)]
pub struct Emit {
    /// Encoded events, in order.
    pub buf: BytesMut,
    /// Something the client reads as progress was written (text, a tool call, an end): the
    /// response head may go out.
    pub progress: bool,
}

/// How a stream ended, when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamEnd {
    /// Every unit was blocked.
    pub all_blocked: bool,
    /// The upstream's stream was complete (its terminal event came, or every unit ended).
    pub complete: bool,
    /// The upstream's own terminal event was seen (`[DONE]`, `message_stop`, …).
    pub terminal_seen: bool,
}

/// What one step of a stream came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep reading the upstream.
    Continue,
    /// The stream is over for the client; the terminator is written. Stop reading.
    Ended(StreamEnd),
}

/// Rewrites one streamed answer, event by event: every text goes through the [`TextFilter`],
/// only what it lets through is re-encoded, and a block ends the unit (or the stream) the way
/// the API's own content filter does.
pub trait StreamRewriter: Send {
    /// One upstream event.
    fn event(
        &mut self,
        event: &SseEvent,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<Step, WireError>;
    /// The upstream body ended (after its terminal event or not). Releases what is held and
    /// writes the end of the stream: the terminator when the stream was complete, else an
    /// error in the API's shape (the stream was cut short) and the terminator. Says how it
    /// ended.
    fn end(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) -> StreamEnd;
    /// A whole stream refusing every unit, for when everything was blocked before the response
    /// head went out (`text` is the refusal).
    fn refusal(&self, text: &str) -> Bytes;
    /// Ends the stream in-band with an error the client's SDK reads as one.
    fn error(&self, error: &ErrorInfo, out: &mut Emit);
}

/// A parsed request of one API, as the layer reads and edits it.
pub trait WireRequest: Send {
    /// The facts the layer needs (streamed?, choices, model).
    fn facts(&self) -> RequestFacts;

    /// Calls `edit` with every instruction text (system and developer messages, `instructions`,
    /// `system`) so that an earlier injection can be taken out (`edit` returns whether it
    /// changed the text); then drops instructions that became empty. Returns whether anything
    /// changed.
    fn instructions(&mut self, edit: &mut dyn FnMut(&mut String) -> bool) -> bool;

    /// Hands every text the model will read to `sink`, in order, until it says stop; reports
    /// what cannot be scanned.
    fn texts(&mut self, sink: &mut dyn RequestSink);

    /// Puts the injected spec `text` into the request, as `role` where the format has roles.
    fn place_spec(&mut self, text: String, role: InjectRole, placement: Placement);

    /// The request body to forward.
    fn to_bytes(&self) -> Result<Bytes, WireError>;
}

/// One model API. See the [module docs](self).
pub trait Adapter: Send + Sync + 'static {
    /// A short stable name (`openai.chat`), used in metrics and audit records.
    fn name(&self) -> &'static str;

    /// Parses a request body strictly (duplicate keys, invalid UTF-8 and shapes the adapter
    /// relies on are errors).
    fn request(&self, body: &[u8]) -> Result<Box<dyn WireRequest>, WireError>;

    /// Scans and rewrites a buffered answer.
    fn answer(&self, body: &Bytes, filter: &mut dyn TextFilter) -> Result<Answer, WireError>;

    /// A rewriter for one streamed answer.
    fn stream(&self, facts: &RequestFacts) -> Box<dyn StreamRewriter>;

    /// The refusal `text` as a normal buffered answer (a JSON body).
    fn refusal_answer(&self, facts: &RequestFacts, text: &str) -> Bytes;

    /// The refusal `text` as a whole streamed answer (SSE events, in-band end included): by
    /// default what a fresh [`StreamRewriter`] for the request writes, so the streamed refusal
    /// before the upstream was called and the one after it are the same shape.
    fn refusal_stream(&self, facts: &RequestFacts, text: &str) -> Bytes {
        self.stream(facts).refusal(text)
    }

    /// The answer to a request refused before the upstream was called: the refusal as a normal
    /// answer, streamed when the request asked for a stream. Returns the content type and body.
    fn refusal(&self, facts: &RequestFacts, text: &str) -> (&'static str, Bytes) {
        if facts.stream {
            ("text/event-stream", self.refusal_stream(facts, text))
        } else {
            ("application/json", self.refusal_answer(facts, text))
        }
    }

    /// An error body in the format's own shape; by default OpenAI's
    /// (`{"error": {"message", "type", "code"}}`), which most compatible servers also use.
    fn error_body(&self, error: &ErrorInfo) -> Value {
        error.openai_body()
    }
}

/// The adapters the gateway knows, by canonical route suffix: a request whose canonical path
/// ends with the suffix is enforced by that adapter. The first match wins.
pub static ADAPTERS: &[(&str, &dyn Adapter)] = &[
    ("/chat/completions", &openai_chat::ChatCompletions),
    // The whole `/v1/messages`: a bare `/messages` suffix would also match OpenAI Assistants'
    // `/v1/threads/{id}/messages`.
    ("/v1/messages", &anthropic::Messages),
    ("/responses", &openai_responses::Responses),
    // Legacy completions: after `/chat/completions`, which also ends in `/completions`.
    ("/completions", &openai_completions::Completions),
];

/// The adapter for a canonical request path, if any.
///
/// ```
/// assert_eq!(deliberate::wire::adapter_for("/v1/chat/completions").map(|a| a.name()),
///            Some("openai.chat"));
/// assert!(deliberate::wire::adapter_for("/v1/models").is_none());
/// ```
pub fn adapter_for(path: &str) -> Option<&'static dyn Adapter> {
    let path = path.trim_end_matches('/');
    ADAPTERS
        .iter()
        .find(|(suffix, _)| path.ends_with(suffix))
        .map(|(_, a)| *a)
}

impl fmt::Debug for dyn Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Adapter({})", self.name())
    }
}
