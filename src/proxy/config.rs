//! The `deliberate serve` configuration: a strict YAML file (unknown keys are errors, every
//! error with `file:line:col`), then command-line flags on top.
//!
//! One concern in one file (over 600 lines): reading the configuration. The raw serde types
//! and their checks sit next to the typed [`Config`] they fill, so a new key is one edit here.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! upstream:                       # absent: the built-in echo upstream
//!   url: https://api.openai.com/v1
//!   api_key_env: OPENAI_API_KEY   # used when the client sends no Authorization
//!   replace_authorization: false  # true: always use the key above
//! policies: [policies/default.yaml]   # relative to this file
//! reload: true                    # watch policy files; SIGHUP reloads too
//! injection: {placement: prepend, role: system, mode: relevant,
//!             default_system: [{model: "qwen*", text: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."}]}
//!                                 # a model's own default system prompt, kept at the head of the
//!                                 # spec when a request has no system message (a string: every model)
//! block_response: completion      # completion | error400
//! reasoning: scan                 # pass | strip | scan
//! other_routes: refuse            # refuse | pass (model routes without an adapter, unknown /v1 routes)
//! limits: {max_request_bytes: 4MiB, max_response_bytes: 16MiB, max_event_bytes: 1MiB, max_header_bytes: 64KiB,
//!          scan_cache_bytes: 16MiB,     # input scans remembered (repeated system prompts, earlier turns); 0: off
//!          max_scan_bytes: 16MiB,       # a request's texts after normalization; more: 413 scan_budget_exceeded
//!          max_connections: 1024}       # open client connections; lowered to fit `ulimit -n`
//! timeouts: {header_read: 10s, client_idle: 60s, request_body: 30s,   # client side
//!            connect: 10s, first_byte: 300s, idle: 120s, total: 900s, shutdown_grace: 30s}
//! audit: {path: audit.jsonl, record_texts: false}   # texts: personal data, for eval --replay
//! shadow: {policies: [candidate.yaml], sample: 0.1}  # runs beside the live policies, audit only
//! health: {upstream_probe: 10s, probe_timeout: 2s}   # /readyz: TCP connect to the upstream; 0s: off
//! tenant_header: x-tenant         # policy selection: see `tenants` (sets, select)
//! sets: {team-a: {policies: [team-a.yaml]}}
//! select: [{tenant: team-a, set: team-a}]
//! echo: {delay: 0ms}
//! playground: false               # true: the policy playground at /playground (loopback only)
//! playground_allow_remote: false  # true: also when listening on a non-loopback address
//! judge: {url: http://127.0.0.1:8081/v1, model: judge, api_key_env: JUDGE_API_KEY,
//!         timeout: 5s, max_concurrency: 4, cache_entries: 10000}   # absent: no judge
//! telemetry: {otlp_endpoint: http://127.0.0.1:4318, service_name: deliberate,
//!             sample_ratio: 1.0, export_timeout: 10s}   # OTLP traces; absent: off
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use super::config_error::ConfigError;
pub use super::health::HealthConfig;
use super::telemetry::TelemetryConfig;
use super::tenants::{RawSelect, RawSet, RawShadow, Selection};
use crate::layer::{BlockResponse, DefaultSystem, EnforceOptions, ReasoningMode};
use crate::policy::parse_yaml;
use crate::policy::{InjectMode, InjectRole};
use crate::wire::Placement;

/// What to do with routes the gateway cannot enforce: model routes whose API has no adapter
/// (embeddings, files, …, and Responses, legacy Completions and Anthropic Messages until their
/// adapters land) and unknown routes under `/v1/` (see [`RouteTable`](super::RouteTable)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherRoutes {
    /// Forward them to the upstream on their canonical path, unscanned; the answer says
    /// `x-deliberate-enforcement: skipped`. Must be chosen explicitly.
    Pass,
    /// Answer `404` with the code `route_not_enforced` (the default: fail closed).
    #[default]
    Refuse,
}

/// Upstream settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Base URL, e.g. `https://api.openai.com/v1`; a request to `/v1/x` goes to `<url>/x`.
    pub url: String,
    /// Environment variable holding an API key for the upstream.
    pub api_key_env: Option<String>,
    /// Always send the key above, replacing the client's `Authorization`.
    pub replace_authorization: bool,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

/// Timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Reading a request head from a client (HTTP/1; from the first byte hyper parses).
    pub header_read: Duration,
    /// A client connection with no request in progress (keep-alive, or never a byte sent) is
    /// closed after this.
    pub client_idle: Duration,
    /// A whole request body must arrive within this of its head (else `408`, connection closed).
    pub request_body: Duration,
    /// Opening an upstream connection.
    pub connect: Duration,
    /// Upstream response head.
    pub first_byte: Duration,
    /// Gap between two pieces of an upstream body.
    pub idle: Duration,
    /// A whole upstream exchange.
    pub total: Duration,
    /// How long shutdown waits for open requests.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(10),
            client_idle: Duration::from_secs(60),
            request_body: Duration::from_secs(30),
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(300),
            idle: Duration::from_secs(120),
            total: Duration::from_secs(900),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The resolved configuration of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// The upstream; `None` for the built-in echo upstream.
    pub upstream: Option<UpstreamConfig>,
    /// Policy files, enforced in this order.
    pub policies: Vec<PathBuf>,
    /// Watch the policy files and reload on change.
    pub reload: bool,
    /// Enforcement options.
    pub enforce: EnforceOptions,
    /// Routes the gateway cannot enforce.
    pub other_routes: OtherRoutes,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Most open client connections (lowered at start to fit the open-files limit).
    pub max_connections: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// JSONL audit log; `None`: no log.
    pub audit_path: Option<PathBuf>,
    /// Keep the scanned texts in audit records (personal data; see `layer::shadow`).
    pub record_texts: bool,
    /// Delay between the words the echo upstream streams.
    pub echo_delay: Duration,
    /// Serve the policy playground at `/playground` (over the policies above).
    pub playground: bool,
    /// Serve it even when listening on a non-loopback address.
    pub playground_allow_remote: bool,
    /// The judge model; `None`: escalating rules apply their fallback.
    pub judge: Option<super::judge::JudgeConfig>,
    /// The readiness probe of the upstream.
    pub health: HealthConfig,
    /// Which policy set a request is enforced with.
    pub selection: Selection,
    /// OpenTelemetry traces over OTLP; `None`: off.
    pub telemetry: Option<TelemetryConfig>,
    /// The configuration file, when read from one.
    pub file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".to_owned(),
            upstream: None,
            policies: Vec::new(),
            reload: true,
            enforce: EnforceOptions::default(),
            other_routes: OtherRoutes::Refuse,
            max_header_bytes: 64 << 10,
            max_connections: 1024,
            timeouts: Timeouts::default(),
            audit_path: None,
            record_texts: false,
            echo_delay: Duration::ZERO,
            playground: false,
            playground_allow_remote: false,
            judge: None,
            health: HealthConfig::default(),
            selection: Selection::default(),
            telemetry: None,
            file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    upstream: Option<RawUpstream>,
    #[serde(default)]
    policies: Option<Vec<PathBuf>>,
    #[serde(default)]
    reload: Option<bool>,
    #[serde(default)]
    injection: Option<RawInjection>,
    #[serde(default)]
    block_response: Option<BlockResponse>,
    #[serde(default)]
    reasoning: Option<ReasoningMode>,
    #[serde(default)]
    other_routes: Option<OtherRoutes>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    timeouts: Option<RawTimeouts>,
    #[serde(default)]
    audit: Option<RawAudit>,
    #[serde(default)]
    echo: Option<RawEcho>,
    #[serde(default)]
    playground: Option<bool>,
    #[serde(default)]
    playground_allow_remote: Option<bool>,
    #[serde(default)]
    judge: Option<RawJudge>,
    #[serde(default)]
    health: Option<RawHealth>,
    #[serde(default)]
    tenant_header: Option<String>,
    #[serde(default)]
    shadow: Option<serde_saphyr::Spanned<RawShadow>>,
    #[serde(default)]
    sets: Option<std::collections::BTreeMap<String, serde_saphyr::Spanned<RawSet>>>,
    #[serde(default)]
    select: Option<Vec<serde_saphyr::Spanned<RawSelect>>>,
    #[serde(default)]
    telemetry: Option<serde_saphyr::Spanned<RawTelemetry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    otlp_endpoint: String,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    sample_ratio: Option<f64>,
    #[serde(default)]
    export_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJudge {
    url: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    timeout: Option<Dur>,
    #[serde(default)]
    max_concurrency: Option<usize>,
    #[serde(default)]
    cache_entries: Option<usize>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    json_mode: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default)]
    upstream_probe: Option<Dur>,
    #[serde(default)]
    probe_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    replace_authorization: bool,
    #[serde(default)]
    pool_max_idle_per_host: Option<usize>,
    #[serde(default)]
    pool_idle_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInjection {
    #[serde(default)]
    placement: Option<Placement>,
    #[serde(default)]
    role: Option<InjectRole>,
    #[serde(default)]
    mode: Option<InjectMode>,
    #[serde(default)]
    default_system: Option<RawDefaultSystem>,
}

/// `default_system`: one text for every model, or a list of `{model, text}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDefaultSystem {
    All(String),
    Per(Vec<DefaultSystem>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    max_request_bytes: Option<Size>,
    #[serde(default)]
    max_response_bytes: Option<Size>,
    #[serde(default)]
    max_event_bytes: Option<Size>,
    #[serde(default)]
    max_header_bytes: Option<Size>,
    #[serde(default)]
    max_audit_deliberation_bytes: Option<Size>,
    #[serde(default)]
    scan_cache_bytes: Option<Size>,
    #[serde(default)]
    max_scan_bytes: Option<Size>,
    #[serde(default)]
    max_connections: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default)]
    header_read: Option<Dur>,
    #[serde(default)]
    client_idle: Option<Dur>,
    #[serde(default)]
    request_body: Option<Dur>,
    #[serde(default)]
    connect: Option<Dur>,
    #[serde(default)]
    first_byte: Option<Dur>,
    #[serde(default)]
    idle: Option<Dur>,
    #[serde(default)]
    total: Option<Dur>,
    #[serde(default)]
    shutdown_grace: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: PathBuf,
    #[serde(default)]
    record_texts: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEcho {
    #[serde(default)]
    delay: Option<Dur>,
}

/// A duration: `250ms`, `10s`, `5m`, `1h`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dur(Duration);

/// A size in bytes: `512`, `64KiB`, `4MiB`, `1GiB`, `10kB`, `2MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size(usize);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Dur(Duration::from_secs(n))),
            Raw::S(s) => parse_duration(&s)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n as usize)),
            Raw::S(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (e.g. 250ms, 10s, 5m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{s}` (ms, s, m, h)"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration `{s}`"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `512`, `64KiB`, `4MiB`, `1GiB`, `10kB`, `2MB`, `1GB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("invalid size `{s}` (e.g. 4MiB, 64KiB, 1000)"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}` (KiB, MiB, GiB, kB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` is too large"))
}

impl Config {
    /// Reads a configuration file; relative policy and audit paths are taken relative to its
    /// directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let err = |line: usize, column: usize, message: String| ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            message,
        };
        let src = std::fs::read_to_string(path)
            .map_err(|e| err(0, 0, format!("cannot read config: {e}")))?;
        Self::from_yaml_str(&src, path)
    }

    /// Reads configuration text; `path` names it in errors and anchors relative paths.
    pub fn from_yaml_str(src: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = if src.trim().is_empty() {
            parse_yaml("{}").map_err(|(_, m)| ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                message: m,
            })?
        } else {
            parse_yaml(src).map_err(|(loc, message)| ConfigError {
                file: path.to_path_buf(),
                line: loc.line as usize,
                column: loc.column as usize,
                message,
            })?
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let rel = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
        let mut c = Config {
            file: Some(path.to_path_buf()),
            ..Config::default()
        };
        let (th, sh, sets, sel) = (raw.tenant_header, raw.shadow, raw.sets, raw.select);
        c.selection = Selection::from_raw(path, th, sh, sets, sel, &rel)?;
        if let Some(l) = raw.listen {
            c.listen = l;
        }
        if let Some(t) = raw.telemetry {
            let at = t.referenced;
            let at = (at.line() as usize, at.column() as usize);
            let t = t.value;
            let mut tc = TelemetryConfig::new(t.otlp_endpoint);
            tc.service_name = t.service_name.unwrap_or(tc.service_name);
            tc.sample_ratio = t.sample_ratio.unwrap_or(tc.sample_ratio);
            tc.export_timeout = t.export_timeout.map_or(tc.export_timeout, |d| d.0);
            let problem = if !(0.0..=1.0).contains(&tc.sample_ratio) {
                Some(format!(
                    "telemetry sample_ratio {} is not within 0..1",
                    tc.sample_ratio
                ))
            } else if !(tc.otlp_endpoint.starts_with("http://")
                || tc.otlp_endpoint.starts_with("https://"))
            {
                Some(format!(
                    "telemetry otlp_endpoint `{}` must be an http:// or https:// URL (OTLP/HTTP)",
                    tc.otlp_endpoint
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                return Err(ConfigError {
                    file: path.to_path_buf(),
                    line: at.0,
                    column: at.1,
                    message,
                });
            }
            c.telemetry = Some(tc);
        }
        if let Some(j) = raw.judge {
            let mut jc = super::judge::JudgeConfig::new(j.url);
            jc.model = j.model.unwrap_or(jc.model);
            jc.api_key_env = j.api_key_env;
            jc.timeout = j.timeout.map_or(jc.timeout, |d| d.0);
            jc.max_concurrency = j.max_concurrency.unwrap_or(jc.max_concurrency);
            jc.cache_entries = j.cache_entries.unwrap_or(jc.cache_entries);
            jc.max_tokens = j.max_tokens.unwrap_or(jc.max_tokens);
            jc.json_mode = j.json_mode.unwrap_or(jc.json_mode);
            c.judge = Some(jc);
        }
        if let Some(u) = raw.upstream {
            c.upstream = Some(UpstreamConfig {
                url: u.url,
                api_key_env: u.api_key_env,
                replace_authorization: u.replace_authorization,
                pool_max_idle_per_host: u.pool_max_idle_per_host.unwrap_or(64),
                pool_idle_timeout: u.pool_idle_timeout.map_or(Duration::from_secs(90), |d| d.0),
            });
        }
        if let Some(p) = raw.policies {
            c.policies = p.into_iter().map(rel).collect();
        }
        if let Some(r) = raw.reload {
            c.reload = r;
        }
        if let Some(i) = raw.injection {
            if let Some(p) = i.placement {
                c.enforce.placement = p;
            }
            c.enforce.inject_role = i.role;
            c.enforce.inject_mode = i.mode;
            c.enforce.default_system = match i.default_system {
                None => Vec::new(),
                Some(RawDefaultSystem::All(text)) => vec![DefaultSystem { model: None, text }],
                Some(RawDefaultSystem::Per(v)) => v,
            };
        }
        if let Some(b) = raw.block_response {
            c.enforce.block_response = b;
        }
        if let Some(r) = raw.reasoning {
            c.enforce.reasoning = r;
        }
        if let Some(o) = raw.other_routes {
            c.other_routes = o;
        }
        if let Some(l) = raw.limits {
            let set = |v: Option<Size>, slot: &mut usize| {
                if let Some(Size(n)) = v {
                    *slot = n;
                }
            };
            set(l.max_request_bytes, &mut c.enforce.max_request_bytes);
            set(l.max_response_bytes, &mut c.enforce.max_response_bytes);
            set(l.max_event_bytes, &mut c.enforce.max_event_bytes);
            set(l.max_header_bytes, &mut c.max_header_bytes);
            set(
                l.max_audit_deliberation_bytes,
                &mut c.enforce.max_audit_deliberation_bytes,
            );
            set(l.scan_cache_bytes, &mut c.enforce.scan_cache_bytes);
            set(l.max_scan_bytes, &mut c.enforce.max_scan_bytes);
            if let Some(n) = l.max_connections {
                c.max_connections = n;
            }
        }
        if let Some(t) = raw.timeouts {
            let set = |v: Option<Dur>, slot: &mut Duration| {
                if let Some(Dur(d)) = v {
                    *slot = d;
                }
            };
            set(t.header_read, &mut c.timeouts.header_read);
            set(t.client_idle, &mut c.timeouts.client_idle);
            set(t.request_body, &mut c.timeouts.request_body);
            set(t.connect, &mut c.timeouts.connect);
            set(t.first_byte, &mut c.timeouts.first_byte);
            set(t.idle, &mut c.timeouts.idle);
            set(t.total, &mut c.timeouts.total);
            set(t.shutdown_grace, &mut c.timeouts.shutdown_grace);
        }
        if let Some(a) = raw.audit {
            c.audit_path = Some(rel(a.path));
            c.record_texts = a.record_texts;
        }
        if let Some(e) = raw.echo
            && let Some(Dur(d)) = e.delay
        {
            c.echo_delay = d;
        }
        c.playground = raw.playground.unwrap_or(false);
        c.playground_allow_remote = raw.playground_allow_remote.unwrap_or(false);
        if let Some(h) = raw.health {
            if let Some(Dur(d)) = h.upstream_probe {
                c.health.upstream_probe = d;
            }
            if let Some(Dur(d)) = h.probe_timeout {
                c.health.probe_timeout = d;
            }
        }
        Ok(c)
    }

    /// An upstream with defaults for `url`.
    pub fn upstream_for(url: &str) -> UpstreamConfig {
        UpstreamConfig {
            url: url.to_owned(),
            api_key_env: None,
            replace_authorization: false,
            pool_max_idle_per_host: 64,
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let c = Config::from_yaml_str(
            r#"
listen: 0.0.0.0:9000
upstream: {url: "http://127.0.0.1:8000/v1", api_key_env: KEY}
policies: [p.yaml]
injection: {placement: merge, role: developer}
block_response: error400
reasoning: strip
other_routes: pass
limits: {max_request_bytes: 1MiB, max_event_bytes: 64KiB, max_connections: 200}
timeouts: {first_byte: 2s, idle: 500ms, client_idle: 5s, request_body: 2s}
audit: {path: /tmp/a.jsonl}
health: {upstream_probe: 3s, probe_timeout: 250ms}
"#,
            Path::new("/etc/deliberate/config.yaml"),
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.policies, [PathBuf::from("/etc/deliberate/p.yaml")]);
        assert_eq!(c.enforce.placement, Placement::Merge);
        assert_eq!(c.enforce.inject_role, Some(InjectRole::Developer));
        assert_eq!(c.enforce.block_response, BlockResponse::Error400);
        assert_eq!(c.enforce.max_request_bytes, 1 << 20);
        assert_eq!(c.timeouts.idle, Duration::from_millis(500));
        assert_eq!(c.other_routes, OtherRoutes::Pass);
        assert_eq!(c.max_connections, 200);
        assert_eq!(c.timeouts.client_idle, Duration::from_secs(5));
        assert_eq!(c.timeouts.request_body, Duration::from_secs(2));
        assert_eq!(c.health.upstream_probe, Duration::from_secs(3));
        assert_eq!(c.health.probe_timeout, Duration::from_millis(250));
    }

    /// `default_system` is one text for every model or a list per model glob, first match wins.
    #[test]
    fn default_system_per_model() {
        let c = Config::from_yaml_str(
            "injection: {default_system: [{model: 'qwen*', text: You are Qwen.}, {text: Hi.}]}\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(
            c.enforce.default_system_for("qwen2.5"),
            Some("You are Qwen.")
        );
        assert_eq!(c.enforce.default_system_for("llama"), Some("Hi."));
        let c = Config::from_yaml_str("injection: {default_system: Hello.}\n", Path::new("c.yaml"))
            .unwrap();
        assert_eq!(c.enforce.default_system_for("any"), Some("Hello."));
        let c = Config::from_yaml_str("", Path::new("c.yaml")).unwrap();
        assert_eq!(c.enforce.default_system_for("any"), None);
        let bad = Config::from_yaml_str(
            "injection: {default_system: [{model: x, txt: y}]}\n",
            Path::new("c.yaml"),
        );
        assert!(bad.is_err());
    }

    #[test]
    fn telemetry_is_off_unless_configured_and_checked() {
        let c = Config::from_yaml_str("", Path::new("c.yaml")).unwrap();
        assert_eq!(c.telemetry, None);
        let c = Config::from_yaml_str(
            "telemetry: {otlp_endpoint: http://c:4318, sample_ratio: 0.25, export_timeout: 2s}\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let t = c.telemetry.unwrap();
        assert_eq!(
            (t.sample_ratio, t.service_name.as_str()),
            (0.25, "deliberate")
        );
        assert_eq!(t.export_timeout, Duration::from_secs(2));
        for bad in [
            "telemetry: {otlp_endpoint: http://c:4318, sample_ratio: 1.5}\n",
            "telemetry: {otlp_endpoint: c:4317}\n",
            "telemetry: {otlp_endpoint: http://c, sampel_ratio: 1}\n",
        ] {
            let e = Config::from_yaml_str(bad, Path::new("c.yaml")).unwrap_err();
            assert_eq!(e.line, 1, "{bad}: {e}");
        }
    }

    #[test]
    fn playground_is_off_unless_asked() {
        let c = Config::from_yaml_str("", Path::new("c.yaml")).unwrap();
        assert!(!c.playground && !c.playground_allow_remote);
        let c = Config::from_yaml_str("playground: true\n", Path::new("c.yaml")).unwrap();
        assert!(c.playground && !c.playground_allow_remote);
    }

    #[test]
    fn defaults_fail_closed_and_bound_clients() {
        let c = Config::from_yaml_str("", Path::new("c.yaml")).unwrap();
        assert_eq!(c.other_routes, OtherRoutes::Refuse);
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.timeouts.client_idle, Duration::from_secs(60));
        assert_eq!(c.timeouts.request_body, Duration::from_secs(30));
    }

    #[test]
    fn unknown_keys_are_errors_with_locations() {
        let e = Config::from_yaml_str("listen: x\ntimeouts:\n  idel: 5s\n", Path::new("c.yaml"))
            .unwrap_err();
        assert_eq!((e.line, e.file.to_str()), (3, Some("c.yaml")), "{e}");
        assert!(e.message.contains("idel"), "{e}");
        let e = Config::from_yaml_str("timeouts: {idle: 5 parsecs}\n", Path::new("c.yaml"))
            .unwrap_err();
        assert!(e.message.contains("parsecs") && e.line == 1, "{e}");
    }
}
