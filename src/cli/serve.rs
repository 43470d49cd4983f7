//! `deliberate serve`: run the gateway.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::layer::{BlockResponse, ReasoningMode};
use crate::proxy::{Config, OtherRoutes};
use crate::wire::Placement;

/// Policy used when none is given and it exists.
const DEFAULT_POLICY: &str = "policies/default.yaml";

/// Arguments of `deliberate serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (YAML); the flags below override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Policy file to enforce (repeat to enforce several, in order). Default: the config's
    /// `policies:`, else policies/default.yaml.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Upstream base URL, e.g. https://api.openai.com/v1. Without one, the built-in echo
    /// upstream answers.
    #[arg(long, value_name = "URL", conflicts_with = "echo")]
    pub upstream: Option<String>,
    /// Use the built-in echo upstream even if the config names an upstream.
    #[arg(long)]
    pub echo: bool,
    /// Environment variable with an API key for the upstream (used when a client sends no
    /// Authorization header).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Append one JSON line per request to this file.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Answer to a blocked request: a refusal completion, or an OpenAI-shaped 400.
    #[arg(long, value_name = "KIND", value_parser = ["completion", "error400"])]
    pub block_response: Option<String>,
    /// Where the spec goes: its own first message, or merged into the system message.
    #[arg(long, value_name = "WHERE", value_parser = ["prepend", "merge"])]
    pub placement: Option<String>,
    /// The model's own default system prompt (what its chat template adds when a request has
    /// no system message): kept at the head of the injected spec for requests without one, for
    /// every model (per model: `injection.default_system` in the config).
    #[arg(long, value_name = "TEXT")]
    pub default_system: Option<String>,
    /// Reasoning fields in answers: pass, strip, or scan with the reasoning stage.
    #[arg(long, value_name = "MODE", value_parser = ["pass", "strip", "scan"])]
    pub reasoning: Option<String>,
    /// Routes the gateway cannot enforce (model APIs without an adapter, unknown /v1/*
    /// routes): refuse them (the default), or pass them upstream unscanned, marked
    /// `x-deliberate-enforcement: skipped`.
    #[arg(long, value_name = "MODE", value_parser = ["pass", "refuse"])]
    pub other_routes: Option<String>,
    /// Do not watch the policy files (SIGHUP still reloads).
    #[arg(long)]
    pub no_reload: bool,
    /// Export traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318), with
    /// the config's other `telemetry:` settings or their defaults.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// A judge model (`--judge URL`): escalating rules and judged stages go to it.
    #[command(flatten)]
    pub judge: super::judge_opts::JudgeArgs,
}

/// Builds the configuration: file, then flags.
pub fn config(a: &Args) -> anyhow::Result<Config> {
    let mut c = match &a.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    if !a.policies.is_empty() {
        c.policies = a.policies.clone();
    }
    if c.policies.is_empty() && Path::new(DEFAULT_POLICY).is_file() {
        c.policies = vec![PathBuf::from(DEFAULT_POLICY)];
    }
    if let Some(l) = &a.listen {
        c.listen = l.clone();
    }
    if let Some(u) = &a.upstream {
        let mut up = Config::upstream_for(u);
        if let Some(old) = &c.upstream {
            up.api_key_env = old.api_key_env.clone();
            up.replace_authorization = old.replace_authorization;
        }
        c.upstream = Some(up);
    }
    if a.echo {
        c.upstream = None;
    }
    if let Some(k) = &a.api_key_env {
        match &mut c.upstream {
            Some(u) => u.api_key_env = Some(k.clone()),
            None => anyhow::bail!("--api-key-env needs an upstream (--upstream URL)"),
        }
    }
    if let Some(p) = &a.audit {
        c.audit_path = Some(p.clone());
    }
    if let Some(j) = a.judge.config() {
        c.judge = Some(j);
    }
    if let Some(b) = &a.block_response {
        c.enforce.block_response = if b == "error400" {
            BlockResponse::Error400
        } else {
            BlockResponse::Completion
        };
    }
    if let Some(p) = &a.placement {
        c.enforce.placement = if p == "merge" {
            Placement::Merge
        } else {
            Placement::Prepend
        };
    }
    if let Some(t) = &a.default_system {
        c.enforce.default_system = vec![crate::layer::DefaultSystem {
            model: None,
            text: t.clone(),
        }];
    }
    if let Some(r) = &a.reasoning {
        c.enforce.reasoning = match r.as_str() {
            "pass" => ReasoningMode::Pass,
            "strip" => ReasoningMode::Strip,
            _ => ReasoningMode::Scan,
        };
    }
    if let Some(o) = &a.other_routes {
        c.other_routes = if o == "refuse" {
            OtherRoutes::Refuse
        } else {
            OtherRoutes::Pass
        };
    }
    if a.no_reload {
        c.reload = false;
    }
    if let Some(url) = &a.otlp_endpoint {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "--otlp-endpoint `{url}` must be an http:// or https:// URL (OTLP/HTTP)"
        );
        let mut t = c
            .telemetry
            .take()
            .unwrap_or_else(|| crate::proxy::telemetry::TelemetryConfig::new(url.clone()));
        t.otlp_endpoint = url.clone();
        c.telemetry = Some(t);
    }
    Ok(c)
}

/// Runs `deliberate serve`.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let config = config(&a)?;
    if config.policies.is_empty() {
        anyhow::bail!("no policy: give --policy FILE (or `policies:` in --config FILE)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        #[cfg(feature = "otel")]
        let telemetry = start_tracing(&config)?;
        #[cfg(not(feature = "otel"))]
        start_tracing(&config)?;
        let served = serve(config).await;
        // After the drain: the last requests' spans are in the queue.
        #[cfg(feature = "otel")]
        if let Some(t) = telemetry {
            t.shutdown().await;
        }
        served
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Sets up logging, and the OTLP exporter when the config has `telemetry:`; the exporter is
/// returned to be flushed after the server drained.
#[cfg(feature = "otel")]
fn start_tracing(config: &Config) -> anyhow::Result<Option<crate::proxy::telemetry::Telemetry>> {
    let Some(tc) = &config.telemetry else {
        super::init_tracing();
        return Ok(None);
    };
    let t = crate::proxy::telemetry::Telemetry::start(tc, tokio::runtime::Handle::current())?;
    super::init_tracing_with(&t);
    tracing::info!(
        endpoint = t.url(),
        service = %tc.service_name,
        sample_ratio = tc.sample_ratio,
        "exporting traces over OTLP/HTTP"
    );
    Ok(Some(t))
}

/// Sets up logging; a config asking for traces is refused (this build has no exporter).
#[cfg(not(feature = "otel"))]
fn start_tracing(config: &Config) -> anyhow::Result<()> {
    super::init_tracing();
    if config.telemetry.is_some() {
        anyhow::bail!(
            "`telemetry:` is set but this build has no OpenTelemetry exporter: build with \
             `--features otel` (in the default features), or remove `telemetry:`"
        );
    }
    Ok(())
}

/// Binds the listener and serves until SIGTERM or Ctrl-C, then drains.
async fn serve(config: Config) -> anyhow::Result<()> {
    {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        if config.upstream.is_none() {
            eprintln!(
                "\n  *** deliberate: no --upstream given: using the built-in ECHO upstream ***\n  \
                 *** replies repeat your last message; nothing reaches a real model      ***\n"
            );
        }
        let gateway = crate::proxy::Gateway::new(config)?;
        eprintln!(
            "deliberate serve: listening on http://{} (policy {})",
            listener.local_addr()?,
            gateway.policies().current().label()
        );
        gateway.serve(listener, shutdown_signal()).await?;
        anyhow::Ok(())
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}
