//! The OpenAI Responses API (`POST /v1/responses`).
//!
//! **Request** ([`Adapter::request`]): `instructions` (role `system`); `input` as a string
//! (role `user`) or items — messages (role from the item; content a string or `input_text` /
//! `output_text` / `refusal` parts), `function_call` (`name`, and `arguments` as JSON text,
//! role `assistant`), `function_call_output` / `custom_tool_call_output` (`output`, role
//! `tool`), `reasoning` (summary and content texts), `custom_tool_call` (`input`), and every
//! string of any other item (role unknown: every input rule reads it); every string of `tools`
//! (descriptions, parameter schemas, grammars; role `tool_definition`), and of `text`, `prompt`
//! and unknown top-level fields (role unknown). Reported partial: images, files and audio
//! parts; encrypted reasoning; `item_reference`s; earlier turns kept by the provider
//! (`previous_response_id`, `conversation`); a stored `prompt` template.
//!
//! **Spec placement**: the spec goes at the start of `instructions`, followed by a blank line
//! and the client's instructions (for [`Placement::Prepend`](crate::wire::Placement) and
//! `Merge` alike: the API has one `instructions`). Not an input item, even for the `developer`
//! role: the provider turns `instructions` into the system or developer message itself, and
//! does not carry it over to the next turn with `previous_response_id`, so the spec is shown
//! once per turn instead of piling up in the stored conversation.
//!
//! **Answer** ([`Adapter::answer`], [`StreamRewriter`]): every
//! output item — message `output_text` (content; its annotations as other text), `refusal`,
//! `function_call` (`name`, `arguments` as JSON), `custom_tool_call` (`name`, `input`),
//! `reasoning` (summary and content texts), every string of any other item, and every other
//! string of a known item or part (extra fields, log probabilities, a message `content` given
//! as a string) as other text; every member of the response object but its identifiers and
//! enums (`id`, `object`, `status`, `model`, `previous_response_id`): `error`, the request
//! echoes the upstream writes back (`instructions`, `tools`, `text`, `metadata`, …),
//! `incomplete_details`, unknown fields; the `output_text` convenience field is recomputed from
//! the edited output. An encrypted reasoning item (`encrypted_content`) makes the answer
//! `partial`. A block makes the response `incomplete` for `content_filter`, its output one
//! assistant message with a `refusal` part. Streams: see [`stream`]; every member of a known
//! event beyond its routing fields is read too, and an event whose `event:` name disagrees
//! with its JSON `type` is an upstream fault.
//!
//! ```
//! use deliberate::wire::{Adapter, RequestFacts, adapter_for};
//!
//! let responses = adapter_for("/v1/responses").unwrap();
//! let req = responses.request(br#"{"model":"gpt-5","input":"hi","stream":true}"#).unwrap();
//! assert!(req.facts().stream);
//! let (ct, body) = responses.refusal(&RequestFacts { n: 1, ..Default::default() }, "No.");
//! assert_eq!(ct, "application/json");
//! let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(v["incomplete_details"]["reason"], "content_filter");
//! assert_eq!(v["output"][0]["content"][0]["refusal"], "No.");
//! ```

mod answer;
#[cfg(test)]
mod echo_tests;
mod events;
#[cfg(test)]
mod fail_closed_tests;
mod items;
mod refusal;
mod request;
#[cfg(test)]
mod request_tests;
pub mod stream;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use refusal::CONTENT_FILTER;

use crate::wire::{
    Adapter, Answer, RequestFacts, StreamRewriter, TextFilter, WireError, WireRequest,
};

/// The OpenAI Responses adapter. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct Responses;

impl Adapter for Responses {
    fn name(&self) -> &'static str {
        "openai.responses"
    }

    fn request(&self, body: &[u8]) -> Result<Box<dyn WireRequest>, WireError> {
        Ok(Box::new(request::ResponsesRequest::parse(body)?))
    }

    fn answer(&self, body: &Bytes, filter: &mut dyn TextFilter) -> Result<Answer, WireError> {
        answer::answer(body, filter)
    }

    fn stream(&self, facts: &RequestFacts) -> Box<dyn StreamRewriter> {
        Box::new(stream::ResponsesStream::new(&facts.model))
    }

    fn refusal_answer(&self, facts: &RequestFacts, text: &str) -> Bytes {
        Bytes::from(refusal::refusal_response(&facts.model, text).to_string())
    }
}
