//! Upstream failures, and the one mapping from a failure to an HTTP status and an
//! [`ErrorInfo`] (which the request's adapter renders in its API's shape).

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use crate::wire::{ErrorInfo, ErrorKind};

/// A boxed error, as bodies and services pass them around.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which upstream timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Opening the connection (TCP and TLS).
    Connect,
    /// Waiting for the response headers.
    FirstByte,
    /// Waiting between two pieces of the response body.
    Idle,
    /// The whole exchange.
    Total,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first-byte",
            TimeoutPhase::Idle => "idle",
            TimeoutPhase::Total => "total",
        })
    }
}

/// An upstream timeout. Upstream services and bodies return it (boxed) so the layer can answer
/// `504` before the headers went out, or end a stream in-band after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upstream {phase} timeout after {after:?}")]
pub struct UpstreamTimeout {
    /// Which timeout.
    pub phase: TimeoutPhase,
    /// Its length.
    pub after: Duration,
}

/// The client's request body did not arrive whole in time. A body that fails with it (boxed)
/// is answered `408 request_timeout` by the layer, and its audit record says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive within {after:?}")]
pub struct RequestBodyTimeout {
    /// The limit (`timeouts.request_body` in the gateway).
    pub after: Duration,
}

/// Why the layer could not get a usable answer from the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A timeout fired.
    Timeout(UpstreamTimeout),
    /// The connection failed, was reset, or the body errored.
    Upstream(String),
    /// The upstream answered something that is not a chat completion (bad JSON, bad SSE,
    /// compressed body, too large).
    Protocol(String),
    /// The stream ended before it was complete.
    Truncated,
}

impl Fault {
    /// An upstream answer the adapter could not read (`what`: "response body", "stream
    /// event"). The client is told where it failed but not what the body said (the detail
    /// goes to the log): serde's messages quote the body's strings and keys, which nobody
    /// scanned.
    pub fn unreadable(what: &str, e: &crate::wire::WireError) -> Fault {
        tracing::warn!(detail = %e, "upstream {what} unusable");
        Fault::Protocol(format!("{what}: {}", e.without_quotes()))
    }

    /// Classifies an error from the inner service or body.
    pub fn from_error(err: &(dyn std::error::Error + 'static)) -> Fault {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(t) = e.downcast_ref::<UpstreamTimeout>() {
                return Fault::Timeout(*t);
            }
            cur = e.source();
        }
        Fault::Upstream(error_chain(err))
    }

    /// Status before headers went out.
    pub fn status(&self) -> StatusCode {
        match self {
            Fault::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// The OpenAI error `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Fault::Timeout(_) => "upstream_timeout",
            Fault::Upstream(_) => "upstream_error",
            Fault::Protocol(_) => "upstream_protocol_error",
            Fault::Truncated => "upstream_truncated",
        }
    }

    /// A message for the client and the audit log.
    pub fn message(&self) -> String {
        match self {
            Fault::Timeout(t) => t.to_string(),
            Fault::Upstream(m) => format!("upstream request failed: {m}"),
            Fault::Protocol(m) => format!("upstream answered something unusable: {m}"),
            Fault::Truncated => "upstream stream ended before it was complete".to_owned(),
        }
    }

    /// What the client is told.
    pub fn info(&self) -> ErrorInfo {
        let kind = match self {
            Fault::Timeout(_) => ErrorKind::Timeout,
            _ => ErrorKind::Upstream,
        };
        ErrorInfo::new(kind, self.message(), self.code())
    }
}

/// `err` and its sources, joined by `: `.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// A JSON value as a body.
pub(crate) fn json_bytes(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}
