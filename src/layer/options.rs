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
    /// Models' own default system prompts, kept at the head of the injected spec when a
    /// request carries no instruction text of its own. A chat template adds its default
    /// system prompt ("You are Qwen, created by Alibaba Cloud. …") only to conversations
    /// without a system message, so without this an injected spec takes that prompt away,
    /// and with it whatever the model's refusals were trained on. The first entry whose
    /// `model` matches the request's applies.
    pub default_system: Vec<DefaultSystem>,
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

impl EnforceOptions {
    /// The default system prompt of `model` (the first [`DefaultSystem`] that matches).
    pub fn default_system_for(&self, model: &str) -> Option<&str> {
        self.default_system
            .iter()
            .find(|d| d.model.as_deref().is_none_or(|m| glob(m, model)))
            .map(|d| d.text.as_str())
    }
}

/// A model's default system prompt (see [`EnforceOptions::default_system`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultSystem {
    /// The models it is for: exact, or a glob with `*` and `?`; absent, every model.
    #[serde(default)]
    pub model: Option<String>,
    /// The text, as the model's chat template would have added it.
    pub text: String,
}

/// `*` (any run) and `?` (one character) glob over `text`; anything else literal.
///
/// ```
/// use deliberate::layer::glob;
/// assert!(glob("claude-*-sonnet", "claude-3-5-sonnet"));
/// assert!(!glob("gpt-4o", "gpt-4o-mini"));
/// ```
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Default for EnforceOptions {
    fn default() -> Self {
        EnforceOptions {
            block_response: BlockResponse::Completion,
            placement: Placement::Prepend,
            inject_role: None,
            inject_mode: None,
            default_system: Vec::new(),
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
