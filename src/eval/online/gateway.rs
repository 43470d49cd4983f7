//! The in-process gateways of the `gateway` route, one per arm.

use super::client::completions_url;
use super::{OnlineConfig, OnlineError};

/// Starts an in-process gateway for one arm on 127.0.0.1:0 in front of the upstream; the
/// `no-spec` arm's gateway has injection switched off. Dropping the sender stops it.
pub(super) async fn start_gateway(
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
            default_system: cfg
                .default_system
                .iter()
                .map(|t| crate::layer::DefaultSystem {
                    model: None,
                    text: t.clone(),
                })
                .collect(),
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
