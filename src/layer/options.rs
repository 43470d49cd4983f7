//! Enforcement options: what the operator chooses, beyond what the policy file says.

use serde::{Deserialize, Serialize};

use crate::policy::{InjectMode, InjectRole};
use crate::wire::Placement;

/// What the client gets when its request is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockResponse {
    /// A normal chat completion (a stream when `stream: true`) whose content is the policy's
    /// refusal and whose `finish_reason` is `content_filter`.
    #[default]
    Completion,
    /// An OpenAI-shaped `400` error with code `content_policy_violation`.
    #[serde(rename = "error400")]
    Error400,
}

/// What happens to reasoning fields (`reasoning_content`, `reasoning`) in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningMode {
    /// Passed on unscanned (the response is marked `partial`).
    Pass,
    /// Removed.
    Strip,
    /// Scanned with the policy's `reasoning` stage rules, like content.
    #[default]
    Scan,
}

/// Options of a [`PolicyLayer`](super::PolicyLayer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforceOptions {
    /// Answer to a blocked request.
    pub block_response: BlockResponse,
    /// Where the spec is injected.
    pub placement: Placement,
    /// Overrides the policy's `spec.role`.
    pub inject_role: Option<InjectRole>,
    /// Overrides the policy's `spec.inject`.
    pub inject_mode: Option<InjectMode>,
    /// Reasoning fields.
    pub reasoning: ReasoningMode,
    /// Largest request body read; larger gets `413` (checked before reading it all).
    pub max_request_bytes: usize,
    /// Largest non-streamed upstream response body read; larger gets `502`.
    pub max_response_bytes: usize,
    /// Largest single server-sent event accepted from upstream.
    pub max_event_bytes: usize,
    /// Largest deliberation block kept per choice in the audit record.
    pub max_audit_deliberation_bytes: usize,
    /// Bytes of input texts (with their decisions) whose scans are remembered, so a repeated
    /// system prompt or the earlier turns of a conversation are not scanned again; 0 turns
    /// the cache off.
    pub scan_cache_bytes: usize,
    /// The scan budget of one request: the normalized bytes (an upper bound of their NFKC
    /// length, see [`normalized_len`](super::normalized_len)) of all its texts. A request over
    /// it gets `413 scan_budget_exceeded` before the text that crossed it is scanned.
    pub max_scan_bytes: usize,
    /// Requests of at least this many bytes are scanned on the layer's
    /// [`Offload`](super::Offload), when it has one, not on the thread polling the request.
    pub offload_scan_bytes: usize,
}

impl Default for EnforceOptions {
    fn default() -> Self {
        EnforceOptions {
            block_response: BlockResponse::Completion,
            placement: Placement::Prepend,
            inject_role: None,
            inject_mode: None,
            reasoning: ReasoningMode::Scan,
            max_request_bytes: 4 << 20,
            max_response_bytes: 16 << 20,
            max_event_bytes: 1 << 20,
            max_audit_deliberation_bytes: 16 << 10,
            scan_cache_bytes: 16 << 20,
            max_scan_bytes: 16 << 20,
            offload_scan_bytes: 64 << 10,
        }
    }
}
