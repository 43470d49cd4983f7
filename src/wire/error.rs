//! Errors the gateway answers itself, independent of the API: [`ErrorInfo`] says what went
//! wrong; each [`Adapter`](super::Adapter) renders it in its own shape
//! ([`Adapter::error_body`](super::Adapter::error_body)).

use serde_json::{Value, json};

/// What kind of failure an error reports; decides the error `type` each API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The client's request is malformed or not allowed (400, 404, 408).
    InvalidRequest,
    /// The request body is over the limit (413).
    TooLarge,
    /// The policy refused the request (400 when the operator asks for errors over refusals).
    PolicyViolation,
    /// The upstream failed or answered something unusable (502).
    Upstream,
    /// An upstream timeout fired (504).
    Timeout,
    /// The gateway is at capacity (503).
    Overloaded,
}

/// An error the gateway answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// What kind.
    pub kind: ErrorKind,
    /// For the client and the audit log.
    pub message: String,
    /// A stable machine-readable code (`invalid_json`, `upstream_timeout`, …).
    pub code: &'static str,
    /// The request field at fault, when there is one (`messages`).
    pub param: Option<&'static str>,
}

impl ErrorInfo {
    /// An error of `kind` with `message` and `code`.
    pub fn new(kind: ErrorKind, message: impl Into<String>, code: &'static str) -> Self {
        ErrorInfo {
            kind,
            message: message.into(),
            code,
            param: None,
        }
    }

    /// The same error naming the request field at fault.
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// The OpenAI error `type` for this kind.
    pub fn openai_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::TooLarge | ErrorKind::PolicyViolation => {
                "invalid_request_error"
            }
            ErrorKind::Upstream | ErrorKind::Timeout => "upstream_error",
            ErrorKind::Overloaded => "server_error",
        }
    }

    /// The OpenAI-shaped body: `{"error": {"message", "type", "param", "code"}}`.
    ///
    /// ```
    /// use deliberate::wire::{ErrorInfo, ErrorKind};
    ///
    /// let body = ErrorInfo::new(ErrorKind::InvalidRequest, "bad", "invalid_json").openai_body();
    /// assert_eq!(body["error"]["code"], "invalid_json");
    /// assert_eq!(body["error"]["type"], "invalid_request_error");
    /// assert!(body["error"]["param"].is_null());
    /// ```
    pub fn openai_body(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.openai_type(),
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

/// An OpenAI-shaped error body with a given `type` (for callers outside an adapter).
///
/// ```
/// use deliberate::wire::error::openai_error_body;
///
/// let body = openai_error_body("bad", "invalid_request_error", Some("invalid_json"));
/// assert_eq!(body["error"]["code"], "invalid_json");
/// assert!(body["error"]["param"].is_null());
/// ```
pub fn openai_error_body(message: &str, error_type: &str, code: Option<&str>) -> Value {
    json!({
        "error": {
            "message": message,
            "type": error_type,
            "param": null,
            "code": code,
        }
    })
}
