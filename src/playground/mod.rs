//! The policy playground: one web page where a policy author sees what a policy does — the
//! decision on a pasted text with each finding highlighted and explained, the stream scan piece
//! by piece, the injected spec for a sample conversation, the policy's tests, live `check`
//! diagnostics of an edited policy, and the decisions of two policy versions side by side.
//!
//! Served by `deliberate playground --policy FILE…` (loopback by default) and, with
//! `playground: true` in the config, at `/playground` on `deliberate serve`. The page
//! (`page.html`, embedded in the binary) holds no policy logic: it calls the JSON API below,
//! whose every endpoint runs the engine functions the command line runs. Edited policies come
//! with each request and are compiled for that request alone, with the limits of a policy file
//! (size, YAML alias and node budgets, regex size limits); nothing the page sends is written
//! anywhere, and the page can only name the policy files the server was started with.
//!
//! ## JSON API
//!
//! Every `POST` takes and returns JSON. `POLICY` is `{"path": "<one of the configured files>",
//! "source": "<YAML>"}`; without `source` the file on disk is compiled. Stages are `input`,
//! `output`, `reasoning`.
//!
//! | Endpoint | Request | Answer |
//! |---|---|---|
//! | `GET /playground` | | the page |
//! | `GET /playground/api/policies` | | `{policies: [{path, source}], limits}` |
//! | `POST /playground/api/check` | `{policy}` | `{ok, policy, rules, sections, holdback, diagnostics}` — `deliberate check` |
//! | `POST /playground/api/scan` | `{policy, text, stage?, role?}` | DECISION — `deliberate scan --format json` |
//! | `POST /playground/api/stream` | `{policy, text, chunk, stage?}` (`output` or `reasoning`) | DECISION + `{pieces, end, holdback}` — `scan --stream-chunk` |
//! | `POST /playground/api/inject` | `{policy, messages: [{role, content}], mode?}` | `{messages: [DECISION + role], fired, sections: [{id, title, why}], role, injected, blocked, refusal}` |
//! | `POST /playground/api/test` | `{policy}` | `{passed, failed, problems, results: [{name, stage, role, text, passed, failure}]}` — `deliberate test` |
//! | `POST /playground/api/diff` | `{a: POLICY, b: POLICY, texts, stage?, role?}` | `{a, b, changed, rows: [{text, a, b, changed}]}` |
//!
//! DECISION is `{policy, action, output, triggered, findings: [{rule, section, stage, action,
//! severity, start, end, text, evidence}]}`: byte offsets into the text, and per finding the
//! [`Evidence`](crate::engine::explain::Evidence) of each leaf hit (the view's normalization
//! steps, the normalized text matched, the steps that changed the original). A piece is
//! `{received, frontier, released, text, blocked}` ([`trace::Piece`](crate::engine::trace::Piece)).
//!
//! Errors are `{"error": {"message", "code", "diagnostics"}}`: `400 bad_request`, `404
//! unknown_policy` (or an unknown route), `413 too_large` (a text over
//! [`Limits::max_text_bytes`], a body over [`Limits::max_request_bytes`]), `422
//! policy_invalid` with the diagnostics of `deliberate check` (`file`, `line`, `column`,
//! `message`). `check` answers an invalid policy with `200 {"ok": false, diagnostics}`.
//!
//! ```
//! use deliberate::playground::Playground;
//!
//! let pg = Playground::new(vec!["policies/pii.yaml".into()]);
//! let body = br#"{"policy": {"path": "policies/pii.yaml"}, "text": "mail bob@example.com", "stage": "output"}"#;
//! let answer = pg.scan(body).unwrap();
//! assert_eq!(answer["action"], "redact");
//! ```

mod api;
mod http;

use std::path::PathBuf;

pub use api::ApiError;
pub use http::{handle, serve};

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("page.html");

/// Sizes the playground accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest text scanned (each text of a diff, a whole conversation).
    pub max_text_bytes: usize,
    /// Most texts in a diff or messages in a conversation.
    pub max_texts: usize,
    /// Largest request body (two policies of at most
    /// [`MAX_POLICY_BYTES`](crate::policy::MAX_POLICY_BYTES) and the texts).
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_bytes: 256 << 10,
            max_texts: 1000,
            max_request_bytes: 3 << 20,
        }
    }
}

/// The playground: the policy files it may compile and its limits.
#[derive(Debug, Clone)]
pub struct Playground {
    files: Vec<PathBuf>,
    limits: Limits,
}

impl Playground {
    /// A playground over `files` (the page may edit copies of them, never the files), with the
    /// default [`Limits`].
    pub fn new(files: Vec<PathBuf>) -> Playground {
        Playground {
            files,
            limits: Limits::default(),
        }
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Playground {
        self.limits = limits;
        self
    }

    /// The configured policy files.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}
