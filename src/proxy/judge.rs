//! [`HttpJudge`]: the [`Judge`] of `deliberate serve`, `scan --judge` and `eval --judge` — any
//! OpenAI-compatible Chat Completions endpoint (llama.cpp server, vLLM, Ollama, a provider).
//!
//! Each call waits for one of `max_concurrency` slots, sends the policy-as-prompt as the
//! system message and the text as the user message (temperature 0, JSON mode), and parses the
//! answer strictly; the whole call — waiting for a slot included — is bounded by the smaller
//! of the policy's budget and the configured `timeout`. Verdicts are cached by the prompt's
//! key (policy hash, stage, section set, text). Metrics: latency, verdicts, errors, cache hits.
//!
//! ```yaml
//! judge:
//!   url: http://127.0.0.1:8081/v1      # …/chat/completions is added
//!   model: gpt-oss-safeguard-20b
//!   api_key_env: JUDGE_API_KEY
//!   timeout: 5s
//!   max_concurrency: 4
//!   cache_entries: 10000                # 0: no cache
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::Metrics;
use super::client::{ClientBuilder, HttpsClient};
use crate::engine::judge::{JudgePrompt, Verdict, parse_verdict};
use crate::layer::{Judge, JudgeError, JudgeFuture, Judged};

/// Settings of the judge endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgeConfig {
    /// Base URL (`…/v1`) or the full `…/chat/completions` URL.
    pub url: String,
    /// Model name sent in the request.
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token).
    pub api_key_env: Option<String>,
    /// Longest call, whatever the policy's budget.
    pub timeout: Duration,
    /// Calls in flight at once; more wait (within their budget).
    pub max_concurrency: usize,
    /// Verdicts cached; 0 turns the cache off.
    pub cache_entries: usize,
    /// `max_tokens` of the judge's answer.
    pub max_tokens: u32,
    /// Ask for `response_format: {"type": "json_object"}`.
    pub json_mode: bool,
}

impl JudgeConfig {
    /// Defaults for an endpoint at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        JudgeConfig {
            url: url.into(),
            model: "judge".to_owned(),
            api_key_env: None,
            timeout: Duration::from_secs(10),
            max_concurrency: 4,
            cache_entries: 10_000,
            max_tokens: 400,
            json_mode: true,
        }
    }
}

/// The judge endpoint cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("judge: {0}")]
pub struct JudgeConfigError(String);

/// A [`Judge`] over an OpenAI-compatible endpoint. Cheap to clone.
#[derive(Clone)]
pub struct HttpJudge {
    inner: Arc<Inner>,
}

struct Inner {
    client: HttpsClient<Full<Bytes>>,
    url: String,
    uri: http::Uri,
    config: JudgeConfig,
    api_key: Option<String>,
    slots: Semaphore,
    cache: Option<quick_cache::sync::Cache<u128, Verdict>>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for HttpJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpJudge")
            .field("url", &self.inner.url)
            .field("model", &self.inner.config.model)
            .finish()
    }
}

/// `{base}/v1/chat/completions`, unless `base` already ends in `/v1` or `/chat/completions`.
pub fn completions_url(base: &str) -> Option<String> {
    let b = base.trim_end_matches('/');
    if !(b.starts_with("http://") || b.starts_with("https://")) {
        return None;
    }
    Some(if b.ends_with("/chat/completions") {
        b.to_owned()
    } else if b.ends_with("/v1") {
        format!("{b}/chat/completions")
    } else {
        format!("{b}/v1/chat/completions")
    })
}

impl HttpJudge {
    /// A judge for `config`; `metrics` receives its counters. The API key is read from the
    /// environment now.
    pub fn new(
        config: JudgeConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, JudgeConfigError> {
        let url = completions_url(&config.url)
            .ok_or_else(|| JudgeConfigError(format!("`{}` is not an http(s) URL", config.url)))?;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| JudgeConfigError(format!("`{url}`: {e}")))?;
        let client = ClientBuilder::new()
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool(config.max_concurrency.max(1), Duration::from_secs(60))
            .build()
            .map_err(|e| JudgeConfigError(e.to_string()))?;
        let api_key = match &config.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                JudgeConfigError(format!("the environment variable {var} is not set"))
            })?),
            None => None,
        };
        let cache =
            (config.cache_entries > 0).then(|| quick_cache::sync::Cache::new(config.cache_entries));
        Ok(HttpJudge {
            inner: Arc::new(Inner {
                client,
                url,
                uri,
                slots: Semaphore::new(config.max_concurrency.max(1)),
                config,
                api_key,
                cache,
                metrics,
            }),
        })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }
}

impl Inner {
    fn body(&self, prompt: &JudgePrompt) -> Bytes {
        let mut body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
            "stream": false,
        });
        if self.config.json_mode {
            body["response_format"] = json!({"type": "json_object"});
        }
        Bytes::from(body.to_string())
    }

    async fn call(
        &self,
        prompt: &JudgePrompt,
        span: &tracing::Span,
    ) -> Result<Verdict, JudgeError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| JudgeError::Transport("judge closed".to_owned()))?;
        let mut req = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        if let Some(k) = &self.api_key {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let mut req = req
            .body(Full::new(self.body(prompt)))
            .map_err(|e| JudgeError::Transport(e.to_string()))?;
        super::telemetry::inject(span, req.headers_mut());
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| JudgeError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| JudgeError::Transport(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(JudgeError::Status(status.as_u16()));
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| JudgeError::Malformed(format!("judge response is not JSON: {e}")))?;
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| {
                JudgeError::Malformed("judge response has no choices[0].message.content".to_owned())
            })?;
        parse_verdict(text, &prompt.sections).map_err(|e| JudgeError::Malformed(e.to_string()))
    }

    fn count(&self, res: &Result<Judged, JudgeError>) {
        let Some(m) = &self.metrics else { return };
        match res {
            Ok(j) => {
                let verdict = if j.verdict.violation {
                    "violation"
                } else {
                    "no_violation"
                };
                m.judge_verdict(verdict, j.cached, j.elapsed.as_secs_f64());
            }
            Err(e) => m.judge_error(e.kind()),
        }
    }
}

impl Judge for HttpJudge {
    fn judge(&self, prompt: JudgePrompt, budget: Duration) -> JudgeFuture {
        let inner = self.inner.clone();
        // The caller's span (the layer's `judge` span): the call continues its trace.
        let span = tracing::Span::current();
        Box::pin(async move {
            let started = Instant::now();
            if let Some(v) = inner.cache.as_ref().and_then(|c| c.get(&prompt.cache_key)) {
                let res = Ok(Judged {
                    verdict: v,
                    cached: true,
                    elapsed: started.elapsed(),
                });
                inner.count(&res);
                return res;
            }
            let limit = budget.min(inner.config.timeout);
            let res = match tokio::time::timeout(limit, inner.call(&prompt, &span)).await {
                Err(_) => Err(JudgeError::Timeout(limit)),
                Ok(Err(e)) => Err(e),
                Ok(Ok(verdict)) => {
                    if let Some(c) = &inner.cache {
                        c.insert(prompt.cache_key, verdict.clone());
                    }
                    Ok(Judged {
                        verdict,
                        cached: false,
                        elapsed: started.elapsed(),
                    })
                }
            };
            inner.count(&res);
            res
        })
    }

    fn spawn(&self, call: JudgeFuture, done: Box<dyn FnOnce(Result<Judged, JudgeError>) + Send>) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { done(call.await) });
        }
    }

    fn can_spawn(&self) -> bool {
        tokio::runtime::Handle::try_current().is_ok()
    }
}
