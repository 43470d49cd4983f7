//! A/B evaluation through a real model: every labeled prompt goes to an OpenAI-compatible
//! endpoint twice, with and without the policy's spec injected, through the same enforcement
//! the gateway applies; a refusal detector grades the answers.
//!
//! ## Two routes to the model (`--route`)
//!
//! - `gateway` (default): the full pipeline. Two in-process gateways
//!   ([`crate::proxy::Gateway`]) start on 127.0.0.1:0 in front of the upstream, one per arm,
//!   loading the policy file; the `no-spec` arm's runs with injection switched off
//!   (`EnforceOptions::inject_mode = off`). Each prompt is sent as a plain user message; the
//!   gateway scans the input, injects, calls the model, scans the output and says what it did
//!   in `x-deliberate-action`.
//! - `direct`: the same steps with the engine's functions called here, then a plain HTTP call
//!   to the upstream: input scan (a `block` answers with the refusal and never calls the
//!   model), [`inject::choose`](crate::engine::inject::choose) over the scan's
//!   [`relevant_sections`](crate::engine::Decision::relevant_sections) (as the gateway
//!   chooses) and [`inject::render`](crate::engine::inject::render) as a `system` /
//!   `developer` message before the user message (`spec` arm only), the call, the output
//!   scan. It does not exercise
//!   the gateway's HTTP handling, headers or streaming.
//!
//! Either way the request is `POST {upstream}/v1/chat/completions` with `temperature: 0`,
//! retried on 429 / 5xx / connection errors / timeouts with exponential backoff (honouring
//! `Retry-After`), `--concurrency` at a time, with progress on stderr (a bar on a terminal, a
//! plain line every 5 % otherwise). An answer counts as a
//! refusal when the input or output filter blocked it or the [refusal
//! detector](super::refusal_detector) flags it.
//!
//! ## Figures per arm (as in the o1 system card)
//!
//! - `not_unsafe`: share of unsafe prompts answered safely (refused or blocked).
//! - `not_overrefuse`: share of safe prompts answered (neither refused nor blocked).
//! - what the input and output filters caught, and what the model refused on its own.
//! - tokens added by injection: **approximate**, injected characters / 4; plus the mean
//!   difference of the upstream's reported `prompt_tokens` between arms when it reports usage.
//!
//! ## Cache
//!
//! Every answer is appended to a JSONL cache keyed by a hash of (model, messages, max_tokens),
//! flushed as it arrives; a rerun takes cached answers instead of calling the model, so an
//! interrupted run continues where it stopped.
//!
//! ## Files
//!
//! `runner` builds the requests of both arms and counts the answers; `client` sends them
//! (retries, the gateway's action header); `cache` keeps them; `gateway` starts the in-process
//! gateways; `progress` reports on stderr; `report` holds the figures and renders them.

mod cache;
mod client;
mod gateway;
mod progress;
mod report;
mod runner;

use std::path::PathBuf;
use std::time::Duration;

pub use report::{ArmReport, OnlineReport};
pub use runner::run;

/// Settings of an online run.
#[derive(Debug, Clone)]
pub struct OnlineConfig {
    /// Base URL of the OpenAI-compatible endpoint (`http://127.0.0.1:8080` or `…/v1`).
    pub upstream: String,
    /// Model name.
    pub model: String,
    /// Requests in flight.
    pub concurrency: usize,
    /// `max_tokens` per answer.
    pub max_tokens: u32,
    /// First N prompts per data set.
    pub limit: Option<usize>,
    /// Answer cache (JSONL).
    pub cache: PathBuf,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Bearer token.
    pub api_key: Option<String>,
    /// How requests reach the model.
    pub route: Route,
    /// The policy file (the gateway route loads it itself).
    pub policy_path: PathBuf,
    /// How many examples of each direction of difference between the arms to list.
    pub examples: usize,
    /// Where to write every case with both arms' outcomes (JSONL), if anywhere.
    pub answers: Option<PathBuf>,
    /// The client's own system message, sent in both arms before the user message (the spec
    /// arm's injection goes before it, as the gateway places it).
    pub system: Option<String>,
    /// The model's default system prompt, at the head of the spec arm's injection when there is
    /// no `system` (the gateway's `injection.default_system`).
    pub default_system: Option<String>,
}

/// How the arms reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Route {
    /// Through an in-process `deliberate` gateway on 127.0.0.1 (one per arm; the `no-spec`
    /// arm's has injection switched off): the full pipeline.
    #[default]
    Gateway,
    /// The engine's functions called directly, then the upstream: no gateway in between.
    Direct,
}

/// Why an online run failed. Answers received before the failure are in the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnlineError {
    /// The upstream URL is unusable.
    #[error("upstream URL `{0}` must be an absolute http:// or https:// URL")]
    Url(String),
    /// The model could not be reached or kept failing.
    #[error("upstream {url}: {message} (answers so far are cached; rerun to continue)")]
    Upstream {
        /// Endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The cache file could not be read or written.
    #[error("answer cache {path}: {message}")]
    Cache {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The in-process gateway could not start.
    #[error("gateway: {0}")]
    Gateway(String),
}

/// The two arms.
pub const ARMS: [&str; 2] = ["spec", "no-spec"];
