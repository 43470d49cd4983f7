//! Sends one chat completion to the model (or to an in-process gateway), retrying on 429, 5xx,
//! connection errors and timeouts with exponential backoff that honours `Retry-After`. The
//! connection itself comes from the gateway's shared client builder.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use super::{OnlineConfig, OnlineError};
use crate::proxy::client::{ClientBuilder, HttpsClient};

/// An OpenAI-compatible chat-completions endpoint.
pub(super) struct Upstream {
    client: HttpsClient<Full<Bytes>>,
    url: String,
    api_key: Option<String>,
    timeout: Duration,
}

/// One model answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    /// `choices[0].message.content`.
    pub(super) text: String,
    /// `usage.prompt_tokens`, when reported.
    pub(super) prompt_tokens: Option<u64>,
    /// The gateway's `x-deliberate-action` header (gateway route only).
    pub(super) action: Option<String>,
}

/// `{base}/v1/chat/completions`, unless `base` already ends in `/v1` or `/chat/completions`.
pub(super) fn completions_url(base: &str) -> Result<String, OnlineError> {
    let b = base.trim_end_matches('/');
    if !(b.starts_with("http://") || b.starts_with("https://")) {
        return Err(OnlineError::Url(base.to_owned()));
    }
    Ok(if b.ends_with("/chat/completions") {
        b.to_owned()
    } else if b.ends_with("/v1") {
        format!("{b}/chat/completions")
    } else {
        format!("{b}/v1/chat/completions")
    })
}

impl Upstream {
    /// A client for the endpoint under `base`.
    pub(super) fn new(base: &str, cfg: &OnlineConfig) -> Result<Upstream, OnlineError> {
        let url = completions_url(base)?;
        url.parse::<http::Uri>()
            .map_err(|_| OnlineError::Url(base.to_owned()))?;
        let client = ClientBuilder::new()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OnlineError::Tls(e.to_string()))?;
        Ok(Upstream {
            client,
            url,
            api_key: cfg.api_key.clone(),
            timeout: cfg.timeout,
        })
    }

    fn fail(&self, message: impl Into<String>) -> OnlineError {
        OnlineError::Upstream {
            url: self.url.clone(),
            message: message.into(),
        }
    }

    /// One attempt: `Ok(Err(retry_after))` asks for a retry.
    async fn attempt(&self, body: &Bytes) -> Result<Result<Answer, Option<Duration>>, OnlineError> {
        let mut req = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        if let Some(k) = &self.api_key {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| self.fail(e.to_string()))?;
        let fut = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let action = resp
                .headers()
                .get("x-deliberate-action")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = resp.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, action, retry_after, bytes))
        };
        let (status, action, retry_after, bytes) =
            match tokio::time::timeout(self.timeout, fut).await {
                Err(_) => return Ok(Err(None)),
                // Connection refused / reset: worth a retry.
                Ok(Err(_)) => return Ok(Err(None)),
                Ok(Ok(x)) => x,
            };
        if status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(Err(retry_after));
        }
        if !status.is_success() {
            return Err(self.fail(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            )));
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.fail(format!("response is not JSON: {e}")))?;
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| self.fail("response has no choices[0].message.content"))?
            .to_owned();
        Ok(Ok(Answer {
            text,
            prompt_tokens: v["usage"]["prompt_tokens"].as_u64(),
            action,
        }))
    }

    /// The answer to `body`, retried as the module docs say.
    pub(super) async fn complete(&self, body: Bytes) -> Result<Answer, OnlineError> {
        const ATTEMPTS: u32 = 6;
        let mut last = String::from("no attempt");
        for i in 0..ATTEMPTS {
            match self.attempt(&body).await? {
                Ok(a) => return Ok(a),
                Err(retry_after) => {
                    last = "429 / 5xx / timeout / connection error".into();
                    if i + 1 == ATTEMPTS {
                        break;
                    }
                    let backoff = Duration::from_millis(250 * 2u64.pow(i));
                    let wait = retry_after.unwrap_or(backoff).min(Duration::from_secs(60));
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Err(self.fail(format!("gave up after {ATTEMPTS} attempts: {last}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_urls() {
        assert_eq!(
            completions_url("http://h:1").unwrap(),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            completions_url("http://h:1/v1/").unwrap(),
            "http://h:1/v1/chat/completions"
        );
        assert!(completions_url("h:1").is_err());
    }
}
