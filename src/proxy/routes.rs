//! Canonical routes: one spelling of every request path, and which API it belongs to.
//!
//! A gateway that matches routes on the raw path can be walked around: `/v1/chat/%63ompletions`,
//! `/v1/chat%2Fcompletions`, `/v1/Chat/Completions`, `/v1/chat//completions` or
//! `/v1/chat/completions;x` are all chat completions to some upstream servers. So the gateway
//! first brings the path to its canonical form ([`canonicalize`]), classifies that
//! ([`RouteTable::classify`]), and sends the request upstream on the canonical path: the route
//! that was scanned is the route that is served.
//!
//! Canonical form, in this order:
//!
//! 1. percent-decoding, once, `%2F` included (it becomes a separator). A `%` that is still there
//!    after decoding (`%2563`) is **rejected** as double encoding, not decoded again: no real
//!    client double-encodes, and decoding once leaves nothing for a second decoder upstream;
//! 2. bytes that no route or id contains are rejected: malformed escapes, control bytes (NUL
//!    included), backslashes and any byte outside ASCII (so invalid UTF-8 too, and no upstream's
//!    Unicode normalization can turn an unknown path into a model route);
//! 3. the path is split on `/`; a `;parameter` is cut off every segment; empty segments
//!    (duplicate and trailing slashes) and `.` are dropped; `..` removes the segment before it
//!    (never above the root, as RFC 3986 §5.2.4 says);
//! 4. the literal segments a route is recognised by, and the known prefixes before it
//!    ([`KNOWN_PREFIXES`]: `v1`, `openai`, …), are matched ignoring ASCII case and written in
//!    lower case; the others (ids, deployment names) keep their case;
//! 5. characters a URI path cannot carry (`?`, `#`, space…) are percent-encoded again, so the
//!    canonical path is its own canonical form.
//!
//! ```
//! use deliberate::proxy::{RouteClass, RouteTable, canonicalize};
//!
//! let table = RouteTable::standard();
//! let segments = canonicalize("/v1/Chat//%63ompletions;x/").unwrap();
//! let route = table.classify("POST", &segments);
//! assert_eq!(route.path, "/v1/chat/completions");
//! assert_eq!((route.api, route.class), (Some("chat.completions"), RouteClass::Enforced));
//!
//! // Embeddings have no adapter: recognised, and refused by default.
//! let route = table.classify("POST", &canonicalize("/v1/embeddings").unwrap());
//! assert_eq!(route.class, RouteClass::NoAdapter);
//! assert!(canonicalize("/v1/chat/%2563ompletions").is_err());
//! ```
//!
//! # The table
//!
//! [`STANDARD_ROUTES`] is data: each [`RouteRule`] names an API, the methods it answers, a run
//! of literal segments that may follow any prefix (`/v1`, `/openai/deployments/NAME`, …), what
//! may follow the run ([`Tail`]) and whether the route carries model text ([`RouteKind`]).
//! The rule that matches at the leftmost segment wins; at one segment, the first rule in the
//! table. An API is enforced when its name is in [`ENFORCED_APIS`]: **registering an API** whose
//! adapter has landed in the layer is adding its name there (and, for an API not in the table,
//! its rules to [`STANDARD_ROUTES`]). Until then its routes are refused by default.

use std::fmt::Write as _;

/// The APIs whose adapters the policy layer has: their routes are enforced. Add an API's name
/// here when its wire adapter is wired into the layer (`crate::layer::is_enforced` must agree;
/// the proxy refuses a route this list enforces and the layer would not).
pub const ENFORCED_APIS: &[&str] = &["chat.completions", "responses", "completions", "messages"];

/// Whether a route carries text a model reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Prompts, answers, files, audio, stored conversations…: enforced once its API has an
    /// adapter, refused until then unless the operator passes it.
    Model,
    /// No model text either way (the model list): passed, marked `skipped`.
    Harmless,
}

/// What may follow a rule's run of literal segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Nothing: the run ends the path.
    End,
    /// Exactly one segment (an id).
    One,
    /// Anything, nothing included (sub-routes).
    Any,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    /// The API's name, e.g. `chat.completions`; [`ENFORCED_APIS`] lists names.
    pub api: &'static str,
    /// Methods (upper case) the rule matches; empty: every method.
    pub methods: &'static [&'static str],
    /// Literal segments, lower case, that may follow any prefix.
    pub run: &'static [&'static str],
    /// What may follow the run.
    pub tail: Tail,
    /// Whether the route carries model text.
    pub kind: RouteKind,
}

const POST: &[&str] = &["POST"];
const READ: &[&str] = &["GET", "HEAD"];
const ANY: &[&str] = &[];

const fn model(api: &'static str, run: &'static [&'static str]) -> RouteRule {
    RouteRule {
        api,
        methods: ANY,
        run,
        tail: Tail::Any,
        kind: RouteKind::Model,
    }
}

const fn post(api: &'static str, run: &'static [&'static str]) -> RouteRule {
    RouteRule {
        api,
        methods: POST,
        run,
        tail: Tail::End,
        kind: RouteKind::Model,
    }
}

/// The route table: OpenAI (Chat Completions, Responses, legacy Completions and every other
/// model route), Anthropic Messages, and the routes vLLM and llama.cpp add.
pub const STANDARD_ROUTES: &[RouteRule] = &[
    post("chat.completions", &["chat", "completions"]),
    // Stored completions: list, retrieve, update, delete, their messages.
    model("chat.completions.stored", &["chat", "completions"]),
    post("responses", &["responses"]),
    // Retrieve, delete, cancel, input items, input token counts, compaction.
    model("responses.items", &["responses"]),
    post("completions", &["completions"]),
    model("completions.other", &["completions"]),
    post("messages", &["v1", "messages"]),
    post("messages.count_tokens", &["v1", "messages", "count_tokens"]),
    model("messages.batches", &["v1", "messages", "batches"]),
    model("messages.other", &["v1", "messages"]),
    model("anthropic.complete", &["v1", "complete"]),
    RouteRule {
        api: "models",
        methods: READ,
        run: &["models"],
        tail: Tail::End,
        kind: RouteKind::Harmless,
    },
    RouteRule {
        api: "models",
        methods: READ,
        run: &["models"],
        tail: Tail::One,
        kind: RouteKind::Harmless,
    },
    model("embeddings", &["embeddings"]),
    model("moderations", &["moderations"]),
    model("images", &["images"]),
    model("audio", &["audio"]),
    model("realtime", &["realtime"]),
    model("batches", &["batches"]),
    model("files", &["files"]),
    model("uploads", &["uploads"]),
    model("fine_tuning", &["fine_tuning"]),
    model("assistants", &["assistants"]),
    model("threads", &["threads"]),
    model("vector_stores", &["vector_stores"]),
    model("conversations", &["conversations"]),
    model("containers", &["containers"]),
    model("evals", &["evals"]),
    model("videos", &["videos"]),
    model("chatkit", &["chatkit"]),
    // vLLM and llama.cpp server.
    model("completion", &["completion"]),
    model("embedding", &["embedding"]),
    model("infill", &["infill"]),
    model("rerank", &["rerank"]),
    model("rerank", &["reranking"]),
    model("score", &["score"]),
    model("classify", &["classify"]),
    model("pooling", &["pooling"]),
    model("tokenize", &["tokenize"]),
    model("detokenize", &["detokenize"]),
];

/// Why a request path has no canonical form (answered `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/` (`*`, or an authority).
    #[error("the request path must start with `/`")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("malformed percent escape at byte {at} of the path")]
    BadEscape {
        /// Byte offset of the `%`.
        at: usize,
    },
    /// `%25`: a `%` is left after decoding.
    #[error(
        "double percent-encoding at byte {at} of the path (`%25` decodes to `%`): send the path encoded once"
    )]
    DoubleEncoded {
        /// Byte offset of the escape.
        at: usize,
    },
    /// A control byte (NUL included), raw or encoded.
    #[error("control byte 0x{byte:02x} in the path")]
    Control {
        /// The byte.
        byte: u8,
    },
    /// A backslash, raw or encoded.
    #[error("backslash in the path")]
    Backslash,
    /// A byte outside ASCII, raw or encoded (invalid UTF-8 included).
    #[error("byte 0x{byte:02x} outside ASCII in the path: routes and ids are ASCII")]
    NonAscii {
        /// The byte.
        byte: u8,
    },
}

/// How the gateway treats a classified route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// An API with an adapter: the policy layer enforces it.
    Enforced,
    /// A model route whose API has no adapter yet: refused unless `other_routes: pass`.
    NoAdapter,
    /// A route without model text: passed, marked `skipped`.
    Harmless,
    /// No rule matched: refused unless `other_routes: pass` (and only under `/v1/`).
    Unknown,
}

/// A classified route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The API's name (`None` for an unknown route).
    pub api: Option<&'static str>,
    /// How the gateway treats it.
    pub class: RouteClass,
    /// The canonical path (no query), percent-encoded where a URI needs it.
    pub path: String,
}

/// Decodes and normalizes a raw request path (without its query) into segments: see the
/// module docs for the steps.
pub fn canonicalize(raw: &str) -> Result<Vec<String>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let byte = if b == b'%' {
            let hex = |j: usize| bytes.get(j).and_then(|&c| (c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(PathError::BadEscape { at: i });
            };
            // Two hex digits: at most 0xff.
            let byte = (hi * 16 + lo) as u8;
            if byte == b'%' {
                return Err(PathError::DoubleEncoded { at: i });
            }
            i += 3;
            byte
        } else {
            i += 1;
            b
        };
        match byte {
            b'\\' => return Err(PathError::Backslash),
            0..0x20 | 0x7f => return Err(PathError::Control { byte }),
            0x80.. => return Err(PathError::NonAscii { byte }),
            _ => decoded.push(byte),
        }
    }
    let mut segments: Vec<String> = Vec::new();
    for seg in decoded.split(|&b| b == b'/') {
        let seg = seg.split(|&b| b == b';').next().unwrap_or_default();
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            // Checked above: every byte is printable ASCII.
            s => segments.push(s.iter().map(|&b| b as char).collect()),
        }
    }
    Ok(segments)
}

/// Prefix segments written in lower case wherever they stand before a route (`/V1/…`,
/// `/OpenAI/Deployments/NAME/…`), and the admin routes.
pub const KNOWN_PREFIXES: &[&str] = &[
    "v1",
    "openai",
    "deployments",
    "anthropic",
    "healthz",
    "readyz",
    "metrics",
];

fn fold_prefixes(segments: &[String]) -> Vec<String> {
    segments
        .iter()
        .map(
            |s| match KNOWN_PREFIXES.iter().find(|p| s.eq_ignore_ascii_case(p)) {
                Some(p) => (*p).to_owned(),
                None => s.clone(),
            },
        )
        .collect()
}

/// Writes segments as a path, percent-encoding what a URI path cannot carry.
fn render(segments: &[String]) -> String {
    if segments.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    for s in segments {
        out.push('/');
        for c in s.chars() {
            if c.is_ascii_alphanumeric() || "-._~!$&'()*+,=:@".contains(c) {
                out.push(c);
            } else {
                let _ = write!(out, "%{:02X}", c as u32);
            }
        }
    }
    out
}

/// The routes the gateway recognises and which APIs it enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
    enforced: Vec<&'static str>,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable::standard()
    }
}

impl RouteTable {
    /// [`STANDARD_ROUTES`], enforcing [`ENFORCED_APIS`].
    pub fn standard() -> RouteTable {
        RouteTable::new(STANDARD_ROUTES.to_vec(), ENFORCED_APIS)
    }

    /// A table of `rules`, enforcing the APIs named in `enforced`.
    pub fn new(rules: Vec<RouteRule>, enforced: &[&'static str]) -> RouteTable {
        RouteTable {
            rules,
            enforced: enforced.to_vec(),
        }
    }

    /// Also enforces `api` (its adapter is in the layer).
    pub fn enforce(mut self, api: &'static str) -> RouteTable {
        if !self.enforced.contains(&api) {
            self.enforced.push(api);
        }
        self
    }

    /// Whether `api` is enforced.
    pub fn is_enforced(&self, api: &str) -> bool {
        self.enforced.contains(&api)
    }

    /// Classifies canonical `segments` for `method`; the leftmost match wins, then the first
    /// rule. The path it gives writes the matched run in lower case.
    pub fn classify(&self, method: &str, segments: &[String]) -> Route {
        for start in 0..segments.len() {
            for rule in &self.rules {
                if !self.matches(rule, method, segments, start) {
                    continue;
                }
                let mut canonical = fold_prefixes(&segments[..start]);
                canonical.extend(rule.run.iter().map(|lit| (*lit).to_owned()));
                canonical.extend_from_slice(&segments[start + rule.run.len()..]);
                let class = match rule.kind {
                    RouteKind::Harmless => RouteClass::Harmless,
                    RouteKind::Model if self.is_enforced(rule.api) => RouteClass::Enforced,
                    RouteKind::Model => RouteClass::NoAdapter,
                };
                return Route {
                    api: Some(rule.api),
                    class,
                    path: render(&canonical),
                };
            }
        }
        Route {
            api: None,
            class: RouteClass::Unknown,
            path: render(&fold_prefixes(segments)),
        }
    }

    fn matches(&self, rule: &RouteRule, method: &str, segments: &[String], start: usize) -> bool {
        let end = start + rule.run.len();
        if end > segments.len() {
            return false;
        }
        let rest = segments.len() - end;
        let tail_ok = match rule.tail {
            Tail::End => rest == 0,
            Tail::One => rest == 1,
            Tail::Any => true,
        };
        tail_ok
            && (rule.methods.is_empty() || rule.methods.contains(&method))
            && segments[start..end]
                .iter()
                .zip(rule.run)
                .all(|(s, lit)| s.eq_ignore_ascii_case(lit))
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
