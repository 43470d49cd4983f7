//! # deliberate
//!
//! A policy gateway for model APIs. One YAML policy file says which parts of a written safety
//! spec to show the model (so it can deliberate over them before it answers) and which rules
//! inputs and outputs must pass; the gateway enforces them on buffered and streamed traffic,
//! and the same binary lets policy authors lint, explain, test and evaluate their rules.
//!
//! ## Layout
//!
//! Dependencies run one way, top to bottom; nothing imports from a module above it, and
//! inside each module its submodules import each other without a cycle (`scripts/check_modules.py`
//! checks both in CI).
//!
//! - [`text`]: normalization with its offset map, word boundaries, validators. Depends on
//!   nothing else in the crate.
//! - [`policy`]: the file format — strict raw serde types, hardened YAML, includes,
//!   diagnostics with `file:line:col`, and the shared vocabulary [`Stage`], [`Action`],
//!   [`Severity`]. Imports only `text`.
//! - [`engine`]: compiles a policy into the immutable [`CompiledPolicy`] and runs it: matcher,
//!   buffered scan, [`StreamScanner`], decisions and redaction, spec injection, the judge's
//!   policy-as-prompt and strict verdict parser with the escalation cascade
//!   ([`engine::judge`]), and the split-point checker. No HTTP, no async runtime.
//! - [`wire`]: one adapter per model API (OpenAI Chat Completions, Responses, legacy
//!   Completions; Anthropic Messages) behind [`wire::Adapter`]: every text of a request, answer
//!   and stream event by channel, where the spec goes, the API's refusals, in-band ends and
//!   errors; strict JSON, SSE and JSON-in-string decoding. The steps to add an API are in its
//!   docs.
//! - [`layer`] (feature `layer`): the enforcement as a tower `Layer`, independent of the wire
//!   format — request scan, injection, buffered and streamed output scan, headers, audit
//!   records, the judge seam ([`layer::Judge`]: input judged beside the upstream call,
//!   answers before release, streams in `hold` / `checkpoint` / `monitor` mode) — usable in
//!   any tower / axum app.
//! - [`playground`] (feature `server`): the policy playground — one embedded web page and the
//!   JSON API behind it, each endpoint calling the engine functions the CLI calls; served by
//!   `deliberate playground` and, when configured, at `/playground` on `deliberate serve`.
//! - [`proxy`] (feature `server`): the `deliberate serve` server: canonical routes, front-door
//!   limits, config, upstream client (shared with `eval`), echo upstream, admin endpoints
//!   (`/healthz`, `/readyz`, `/metrics`), audit log, policy reload, the judge client
//!   ([`proxy::judge::HttpJudge`]).
//! - [`eval`] (feature `eval`): `deliberate eval`: one reader per data-set format, metrics with
//!   Wilson intervals, reports; offline (rules only) and the A/B through a real model.
//! - `cli` (feature `cli`, private): the `deliberate` subcommands, one module each (plus the
//!   judge flags they share, `judge_opts.rs`); the binary calls [`run_cli`].
//!
//! With `default-features = false` the crate is `text`, `policy`, `engine` and `wire` alone.
//!
//! ## Example
//!
//! ```
//! use deliberate::{Action, CompiledPolicy, Stage};
//!
//! let policy = CompiledPolicy::load("policies/default.yaml").unwrap();
//! let d = policy.scan("How can I kill a Python process?", Stage::Input, Some("user"));
//! assert_eq!(d.action, Action::Allow);
//! ```

#[cfg(feature = "cli")]
mod cli;
pub mod engine;
#[cfg(feature = "eval")]
pub mod eval;
#[cfg(feature = "layer")]
pub mod layer;

#[cfg(feature = "server")]
pub mod playground;
pub mod policy;
#[cfg(feature = "server")]
pub mod proxy;
pub mod text;
pub mod wire;

/// The `deliberate` command line: parses the arguments and runs a subcommand (what the binary
/// calls).
#[cfg(feature = "cli")]
pub use cli::main as run_cli;
pub use engine::{CompiledPolicy, Decision, Finding, StreamOutput, StreamScanner};
#[cfg(feature = "layer")]
pub use layer::{EnforceOptions, PolicyLayer, PolicyService};
pub use policy::{Action, Diagnostic, LoadError, Severity, Stage};
pub use wire::{Adapter, Placement};
