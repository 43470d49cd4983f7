//! # deliberate
//!
//! A policy gateway for model APIs. One YAML policy file says which parts of a written safety
//! spec to show the model (so it can deliberate over them before it answers) and which rules
//! inputs and outputs must pass; the gateway enforces them on buffered and streamed traffic,
//! and the same binary lets policy authors lint, explain, test and evaluate their rules.
//!
//! ## Layout
//!
//! Dependencies run one way, top to bottom:
//!
//! - [`policy`]: the YAML policy format, diagnostics with `file:line:col`, and compilation into
//!   an immutable [`policy::CompiledPolicy`] (automata built once).
//! - [`engine`]: text in, findings and decisions out: normalization with an offset map,
//!   buffered and streaming scans, redaction, spec selection for injection. No HTTP, no tokio.
//! - [`openai`]: lenient OpenAI wire types, strict JSON parsing, SSE decoding and encoding.
//! - [`layer`]: the enforcement as a tower `Layer` (request scan, injection, buffered and
//!   streamed output scan, headers, audit records), usable in any tower / axum app.
//! - [`proxy`]: the `deliberate serve` server: config, upstream client, echo upstream, routes,
//!   admin endpoints (`/healthz`, `/readyz`, `/metrics`), audit log, policy reload.
//! - [`eval`]: `deliberate eval`: dataset readers, metrics with Wilson intervals, reports;
//!   offline (rules only) and A/B through a real model (the only part that speaks HTTP).
//! - [`cli`]: the `deliberate` subcommands.
//!
//! ## Example
//!
//! ```
//! use deliberate::policy::CompiledPolicy;
//! use deliberate::engine::{Action, Stage};
//!
//! let policy = CompiledPolicy::load("policies/default.yaml").unwrap();
//! let d = policy.scan("How can I kill a Python process?", Stage::Input, Some("user"));
//! assert_eq!(d.action, Action::Allow);
//! ```

pub mod cli;
pub mod engine;
pub mod eval;
pub mod layer;
pub mod openai;

pub mod policy;
pub mod proxy;
pub mod wire;
