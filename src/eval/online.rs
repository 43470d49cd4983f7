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
//!   model), [`inject::choose`] +
//!   [`inject::render`] as a `system` / `developer` message
//!   before the user message (`spec` arm only), the call, the output scan. It does not exercise
//!   the gateway's HTTP handling, headers or streaming.
//!
//! Either way the request is `POST {upstream}/v1/chat/completions` with `temperature: 0`,
//! retried on 429 / 5xx / connection errors / timeouts with exponential backoff (honouring
//! `Retry-After`), `--concurrency` at a time, with progress on stderr. An answer counts as a
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

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::dataset::{Content, Dataset, Label};
use super::metrics::Rate;
use super::refusal_detector::RefusalDetector;
use super::report::{Style, Table};
use crate::engine::{Action, Stage, inject};
use crate::policy::{CompiledPolicy, InjectRole};

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

/// Counts for one arm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmReport {
    /// `spec` or `no-spec`.
    pub name: String,
    /// Unsafe prompts.
    pub unsafe_n: u64,
    /// Unsafe prompts answered safely (refused or blocked).
    pub unsafe_safe: u64,
    /// Safe prompts.
    pub safe_n: u64,
    /// Safe prompts answered (not refused, not blocked).
    pub safe_answered: u64,
    /// Prompts blocked by the input filter (model not called).
    pub input_blocked: u64,
    /// Answers blocked by the output filter.
    pub output_blocked: u64,
    /// Answers redacted by the output filter.
    pub output_redacted: u64,
    /// Answers the detector graded as a refusal by the model.
    pub model_refused: u64,
    /// Requests that carried an injection.
    pub injected: u64,
    /// Injected characters, summed.
    pub injected_chars: u64,
    /// Sum and count of upstream-reported `prompt_tokens`.
    pub prompt_tokens: (u64, u64),
    /// Answers taken from the cache.
    pub cached: u64,
}

impl ArmReport {
    /// Share of unsafe prompts answered safely.
    pub fn not_unsafe(&self) -> Rate {
        Rate::new(self.unsafe_safe as f64, self.unsafe_n as f64)
    }

    /// Share of safe prompts answered.
    pub fn not_overrefuse(&self) -> Rate {
        Rate::new(self.safe_answered as f64, self.safe_n as f64)
    }

    /// Mean tokens added by injection per request, approximated as characters / 4.
    pub fn injected_tokens_approx(&self) -> f64 {
        let n = self.unsafe_n + self.safe_n;
        if n == 0 {
            0.0
        } else {
            self.injected_chars as f64 / 4.0 / n as f64
        }
    }

    /// Mean upstream-reported prompt tokens, when reported.
    pub fn mean_prompt_tokens(&self) -> Option<f64> {
        (self.prompt_tokens.1 > 0)
            .then(|| self.prompt_tokens.0 as f64 / self.prompt_tokens.1 as f64)
    }
}

/// The A/B figures.
#[derive(Debug, Clone, Default)]
pub struct OnlineReport {
    /// Endpoint.
    pub upstream: String,
    /// How the model was reached.
    pub route: Route,
    /// Model.
    pub model: String,
    /// Detector label.
    pub detector: String,
    /// Policy label.
    pub policy: String,
    /// Per arm (`spec`, `no-spec`).
    pub arms: Vec<ArmReport>,
    /// Data sets or rows not sent (output-stage sets, `--limit`), with why.
    pub notes: Vec<String>,
}

impl OnlineReport {
    /// JSON shape.
    pub fn to_json(&self) -> Value {
        let rate = |r: Rate| json!({"value": r.value, "ci": r.ci(), "k": r.k, "n": r.n});
        json!({
            "upstream": self.upstream,
            "route": match self.route { Route::Gateway => "gateway", Route::Direct => "direct" },
            "model": self.model,
            "policy": self.policy,
            "refusal_detector": self.detector,
            "notes": self.notes,
            "arms": self.arms.iter().map(|a| json!({
                "arm": a.name,
                "not_unsafe": rate(a.not_unsafe()),
                "not_overrefuse": rate(a.not_overrefuse()),
                "input_blocked": a.input_blocked,
                "output_blocked": a.output_blocked,
                "output_redacted": a.output_redacted,
                "model_refused": a.model_refused,
                "injected_requests": a.injected,
                "injected_tokens_per_request_approx": a.injected_tokens_approx(),
                "mean_prompt_tokens_reported": a.mean_prompt_tokens(),
                "cached_answers": a.cached,
            })).collect::<Vec<_>>(),
        })
    }

    /// The A/B table.
    pub fn render(&self, style: Style) -> String {
        let mut out = String::new();
        let title = format!(
            "A/B through {} ({}, {}): policy {}, graded by {}",
            self.model,
            self.upstream,
            match self.route {
                Route::Gateway => "via the gateway",
                Route::Direct => "engine called directly",
            },
            self.policy,
            self.detector
        );
        match style {
            Style::Markdown => out.push_str(&format!("### {title}\n\n")),
            Style::Text => {
                out.push_str(&format!("{title}\n{}\n", "-".repeat(title.chars().count())))
            }
        }
        let mut t = Table::new(&[
            "arm",
            "not_unsafe",
            "not_overrefuse",
            "input blocked",
            "output blocked / redacted",
            "model refused",
            "tokens added (≈ chars/4)",
            "prompt tokens (reported)",
        ]);
        for a in &self.arms {
            t.row(vec![
                a.name.clone(),
                a.not_unsafe().display(),
                a.not_overrefuse().display(),
                a.input_blocked.to_string(),
                format!("{} / {}", a.output_blocked, a.output_redacted),
                a.model_refused.to_string(),
                format!("{:.0}", a.injected_tokens_approx()),
                a.mean_prompt_tokens()
                    .map_or_else(|| "–".into(), |m| format!("{m:.0}")),
            ]);
        }
        out.push_str(&t.render(style));
        for n in &self.notes {
            out.push_str(&format!("\nnote: {n}"));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out
    }
}

// === HTTP ===

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Upstream {
    client: HttpsClient,
    url: String,
    api_key: Option<String>,
    timeout: Duration,
}

/// One model answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    text: String,
    prompt_tokens: Option<u64>,
    /// The gateway's `x-deliberate-action` header (gateway route only).
    action: Option<String>,
}

fn completions_url(base: &str) -> Result<String, OnlineError> {
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
    fn new(base: &str, cfg: &OnlineConfig) -> Result<Upstream, OnlineError> {
        let url = completions_url(base)?;
        url.parse::<http::Uri>()
            .map_err(|_| OnlineError::Url(base.to_owned()))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| OnlineError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
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

    async fn complete(&self, body: Bytes) -> Result<Answer, OnlineError> {
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

// === cache ===

/// FNV-1a, 64 bit: a stable key across runs and platforms.
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

struct Cache {
    path: PathBuf,
    answers: HashMap<String, Answer>,
    file: Mutex<std::fs::File>,
}

impl Cache {
    fn open(path: &PathBuf) -> Result<Cache, OnlineError> {
        let fail = |m: String| OnlineError::Cache {
            path: path.clone(),
            message: m,
        };
        let mut answers = HashMap::new();
        if path.exists() {
            let src = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
            for (i, line) in src.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                // A torn last line (the run was killed mid-write) is the one thing we drop.
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    if i + 1 == src.lines().count() {
                        continue;
                    }
                    return Err(fail(format!("line {}: not JSON", i + 1)));
                };
                if let (Some(k), Some(t)) = (v["key"].as_str(), v["answer"].as_str()) {
                    answers.insert(
                        k.to_owned(),
                        Answer {
                            text: t.to_owned(),
                            prompt_tokens: v["prompt_tokens"].as_u64(),
                            action: v["action"].as_str().map(str::to_owned),
                        },
                    );
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Cache {
            path: path.clone(),
            answers,
            file: Mutex::new(file),
        })
    }

    fn put(&self, key: &str, arm: &str, a: &Answer) -> Result<(), OnlineError> {
        let line = json!({
            "key": key, "arm": arm, "answer": a.text, "prompt_tokens": a.prompt_tokens,
            "action": a.action,
        });
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(f, "{line}")
            .and_then(|_| f.flush())
            .map_err(|e| OnlineError::Cache {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }
}

// === gateway ===

/// Starts an in-process gateway for one arm on 127.0.0.1:0 in front of the upstream; the
/// `no-spec` arm's gateway has injection switched off. Dropping the sender stops it.
async fn start_gateway(
    cfg: &OnlineConfig,
    no_spec: bool,
) -> Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>), OnlineError> {
    let fail = |e: &dyn std::fmt::Display| OnlineError::Gateway(e.to_string());
    // The gateway forwards `/v1/x` to `{upstream}/x`: give it the `/v1` base.
    let base = completions_url(&cfg.upstream)?;
    let base = base.trim_end_matches("/chat/completions").to_owned();
    let config = crate::proxy::Config {
        listen: "127.0.0.1:0".into(),
        upstream: Some(crate::proxy::Config::upstream_for(&base)),
        policies: vec![cfg.policy_path.clone()],
        reload: false,
        enforce: crate::layer::EnforceOptions {
            inject_mode: no_spec.then_some(crate::policy::InjectMode::Off),
            ..crate::layer::EnforceOptions::default()
        },
        audit_path: None,
        ..crate::proxy::Config::default()
    };
    let gateway = crate::proxy::Gateway::new(config).map_err(|e| fail(&e))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail(&e))?;
    let addr = listener.local_addr().map_err(|e| fail(&e))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) = gateway.serve(listener, shutdown).await {
            tracing::error!(error = %e, "eval gateway stopped");
        }
    });
    Ok((addr, tx))
}

// === run ===

struct Job {
    arm: usize,
    label: Label,
    /// Input blocked: the refusal, no request.
    blocked: bool,
    injected_chars: usize,
    body: Option<(String, Bytes)>,
    input_redacted: bool,
}

/// Runs every input-stage labeled prompt through the model in both arms.
pub async fn run(
    policy: &CompiledPolicy,
    detector: &RefusalDetector,
    datasets: &[Dataset],
    cfg: &OnlineConfig,
) -> Result<OnlineReport, OnlineError> {
    let cache = Arc::new(Cache::open(&cfg.cache)?);
    // Gateways live until the end of the run: dropping `_stop` shuts them down.
    let (upstreams, _stop) = match cfg.route {
        Route::Direct => {
            let u = Arc::new(Upstream::new(&cfg.upstream, cfg)?);
            (vec![u.clone(), u], Vec::new())
        }
        Route::Gateway => {
            let mut ups = Vec::new();
            let mut stops = Vec::new();
            for arm in 0..ARMS.len() {
                let (addr, stop) = start_gateway(cfg, arm == 1).await?;
                ups.push(Arc::new(Upstream::new(&format!("http://{addr}"), cfg)?));
                stops.push(stop);
            }
            (ups, stops)
        }
    };
    let mut report = OnlineReport {
        upstream: cfg.upstream.clone(),
        route: cfg.route,
        model: cfg.model.clone(),
        detector: detector.label(),
        policy: policy.label(),
        arms: ARMS
            .iter()
            .map(|a| ArmReport {
                name: (*a).to_owned(),
                ..ArmReport::default()
            })
            .collect(),
        notes: Vec::new(),
    };
    if matches!(policy.spec.inject, crate::policy::InjectMode::Off) {
        report
            .notes
            .push("the policy has `inject: off`: both arms are the same".into());
    }
    let role = match policy.spec.role {
        InjectRole::System => "system",
        InjectRole::Developer => "developer",
    };
    let mut jobs = Vec::new();
    for ds in datasets {
        let Content::Cases(cases) = &ds.content else {
            continue;
        };
        let inputs: Vec<_> = cases.iter().filter(|c| c.stage == Stage::Input).collect();
        if inputs.len() < cases.len() {
            report.notes.push(format!(
                "{}: {} output-stage cases not sent (nothing to ask the model)",
                ds.name,
                cases.len() - inputs.len()
            ));
        }
        let take = cfg.limit.unwrap_or(usize::MAX).min(inputs.len());
        if take < inputs.len() {
            report.notes.push(format!(
                "{}: {take} of {} prompts, evenly spaced through the file (--limit)",
                ds.name,
                inputs.len()
            ));
        }
        // Evenly spaced, so that a small run still covers a file sorted by label or category.
        let picked = (0..take).map(|i| inputs[i * inputs.len() / take]);
        for c in picked {
            let d = policy.scan(&c.text, Stage::Input, Some("user"));
            let blocked = d.action == Action::Block;
            let mut fired = d.sections();
            fired.extend(d.triggered.iter().map(String::as_str));
            let chosen = inject::choose(policy, policy.spec.inject, &fired);
            let injection = (!chosen.is_empty()).then(|| inject::render(policy, &chosen));
            // Direct route: the user message as the gateway forwards it, redactions applied.
            // Gateway route: the client's message; the gateway redacts and injects.
            let user_text = if d.action == Action::Redact && cfg.route == Route::Direct {
                d.output.clone()
            } else {
                c.text.clone()
            };
            for (arm, arm_name) in ARMS.iter().enumerate() {
                let inj = if arm == 0 { injection.as_deref() } else { None };
                let mut messages = Vec::new();
                if let (Some(t), Route::Direct) = (inj, cfg.route) {
                    messages.push(json!({"role": role, "content": t}));
                }
                messages.push(json!({"role": "user", "content": user_text}));
                let body = json!({
                    "model": cfg.model,
                    "messages": messages,
                    "max_tokens": cfg.max_tokens,
                    "temperature": 0,
                });
                let bytes = Bytes::from(body.to_string());
                // The gateway route's answers depend on the arm and the policy, not only on
                // what the client sent.
                let route = match cfg.route {
                    Route::Direct => String::new(),
                    Route::Gateway => format!("gateway\u{0}{arm_name}\u{0}{}", policy.hash),
                };
                let key = fnv1a(
                    format!(
                        "{}\u{0}{}\u{0}{}{route}",
                        cfg.model,
                        cfg.max_tokens,
                        json!(messages)
                    )
                    .as_bytes(),
                );
                jobs.push(Job {
                    arm,
                    label: c.label,
                    blocked,
                    injected_chars: inj.map_or(0, |t| t.chars().count()),
                    // The gateway answers blocked requests itself; send them too.
                    body: (!blocked || cfg.route == Route::Gateway).then_some((key, bytes)),
                    input_redacted: d.action == Action::Redact,
                });
            }
        }
    }
    let total = jobs.iter().filter(|j| j.body.is_some()).count();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = |done: usize, cached: bool| {
        if done == total || done % 10 == 0 || !cached {
            eprint!("\r[eval] {done}/{total} answers");
            if done == total {
                eprintln!();
            }
        }
    };
    // Fetch answers, `concurrency` at a time.
    let fetches = jobs.iter().enumerate().filter_map(|(i, j)| {
        let (key, body) = j.body.clone()?;
        let upstream = upstreams[j.arm].clone();
        let cache = cache.clone();
        let done = done.clone();
        let arm = ARMS[j.arm];
        Some(async move {
            let (answer, cached) = match cache.answers.get(&key) {
                Some(a) => (a.clone(), true),
                None => {
                    let a = upstream.complete(body).await?;
                    cache.put(&key, arm, &a)?;
                    (a, false)
                }
            };
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, cached);
            Ok::<_, OnlineError>((i, answer, cached))
        })
    });
    let mut results: Vec<Option<(Answer, bool)>> = vec![None; jobs.len()];
    let mut stream = futures_util::stream::iter(fetches).buffer_unordered(cfg.concurrency.max(1));
    while let Some(r) = stream.next().await {
        let (i, a, cached) = r?;
        results[i] = Some((a, cached));
    }
    if total == 0 {
        eprintln!("[eval] no prompts to send");
    }
    for (j, r) in jobs.iter().zip(results) {
        let arm = &mut report.arms[j.arm];
        arm.injected_chars += j.injected_chars as u64;
        arm.injected += u64::from(j.injected_chars > 0);
        let refused = if j.blocked {
            arm.input_blocked += 1;
            true
        } else if let Some((answer, cached)) = r {
            arm.cached += u64::from(cached);
            if let Some(t) = answer.prompt_tokens {
                arm.prompt_tokens.0 += t;
                arm.prompt_tokens.1 += 1;
            }
            // Direct: scan the answer here. Gateway: it did, and says so in a header.
            let (action, text) = match cfg.route {
                Route::Direct => {
                    let d = policy.scan(&answer.text, Stage::Output, None);
                    (d.action, d.output)
                }
                Route::Gateway => {
                    let a = match answer.action.as_deref() {
                        Some("block") => Action::Block,
                        Some("redact") if !j.input_redacted => Action::Redact,
                        _ => Action::Allow,
                    };
                    (a, answer.text)
                }
            };
            match action {
                Action::Block => {
                    arm.output_blocked += 1;
                    true
                }
                a => {
                    if a == Action::Redact {
                        arm.output_redacted += 1;
                    }
                    let r = detector.is_refusal(&text);
                    arm.model_refused += u64::from(r);
                    r
                }
            }
        } else {
            // Unreachable: every non-blocked job was fetched or the run returned an error.
            continue;
        };
        match j.label {
            Label::Unsafe => {
                arm.unsafe_n += 1;
                arm.unsafe_safe += u64::from(refused);
            }
            Label::Safe => {
                arm.safe_n += 1;
                arm.safe_answered += u64::from(!refused);
            }
        }
    }
    Ok(report)
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

    #[test]
    fn cache_keys_are_stable() {
        assert_eq!(fnv1a(b""), "cbf29ce484222325");
        assert_eq!(fnv1a(b"a"), "af63dc4c8601ec8c");
    }
}
