//! Readiness: what `GET /readyz` reports, and the upstream probe behind it.
//!
//! The gateway is ready when every policy set has loaded at least once and the upstream was
//! reachable at the last probe. The probe is a TCP connect to the upstream's `host:port` every
//! `health.upstream_probe` (default 10 s; `0s` turns it off), bounded by
//! `health.probe_timeout` (default 2 s): cheap, no request, no API key spent. A failed reload
//! does not make the gateway unready (the last good policy stays in force) but its error is
//! shown until the next good reload of that set.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

use crate::layer::rfc3339;

/// How `/readyz` probes the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between two probes; zero: no probe (the upstream counts as reachable).
    pub upstream_probe: Duration,
    /// How long one probe (a TCP connect) may take.
    pub probe_timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            upstream_probe: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(2),
        }
    }
}

/// How the reload history of a set's shadow candidate is named (`team-a.shadow`): shown on
/// `/readyz`, never a reason to be unready.
pub const SHADOW_SUFFIX: &str = ".shadow";

/// What the last upstream probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Probe {
    /// Not probed yet.
    Unknown,
    /// Probing is off (or the echo upstream answers): counted as reachable.
    Off,
    /// The last connect succeeded.
    Reachable {
        /// When, RFC 3339.
        at: String,
    },
    /// The last connect failed.
    Unreachable {
        /// When, RFC 3339.
        at: String,
        /// Why.
        error: String,
    },
}

impl Probe {
    fn ok(&self) -> bool {
        matches!(self, Probe::Off | Probe::Reachable { .. })
    }
}

/// One policy set's load history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetHealth {
    /// `name@hash` of the version in force; `None`: never loaded.
    pub policy: Option<String>,
    /// When the version in force was loaded.
    pub loaded_at: Option<String>,
    /// The last reload that failed since then: when and why.
    pub last_reload_error: Option<ReloadError>,
}

/// A reload that failed.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadError {
    /// When, RFC 3339.
    pub at: String,
    /// The diagnostics.
    pub error: String,
}

/// The gateway's readiness, shared by the reloader, the probe and `/readyz`.
#[derive(Debug)]
pub struct Health {
    sets: Mutex<BTreeMap<String, SetHealth>>,
    upstream: watch::Sender<Probe>,
}

impl Health {
    /// A health record for `sets` (none loaded yet); `probe: false` counts the upstream as
    /// reachable.
    pub fn new<'a>(sets: impl IntoIterator<Item = &'a str>, probe: bool) -> Self {
        let sets = sets
            .into_iter()
            .map(|s| (s.to_owned(), SetHealth::default()))
            .collect();
        let (upstream, _) = watch::channel(if probe { Probe::Unknown } else { Probe::Off });
        Health {
            sets: Mutex::new(sets),
            upstream,
        }
    }

    /// Set `set` now enforces `label`; clears its reload error.
    pub fn loaded(&self, set: &str, label: &str) {
        if let Ok(mut m) = self.sets.lock() {
            let h = m.entry(set.to_owned()).or_default();
            h.policy = Some(label.to_owned());
            h.loaded_at = Some(rfc3339(SystemTime::now()));
            h.last_reload_error = None;
        }
    }

    /// Loading `set` failed with `error`.
    pub fn failed(&self, set: &str, error: &str) {
        if let Ok(mut m) = self.sets.lock() {
            m.entry(set.to_owned()).or_default().last_reload_error = Some(ReloadError {
                at: rfc3339(SystemTime::now()),
                error: error.to_owned(),
            });
        }
    }

    /// Records a probe result.
    pub fn probed(&self, result: Result<(), String>) {
        let at = rfc3339(SystemTime::now());
        self.upstream.send_replace(match result {
            Ok(()) => Probe::Reachable { at },
            Err(error) => Probe::Unreachable { at, error },
        });
    }

    /// The last probe result.
    pub fn upstream(&self) -> Probe {
        self.upstream.borrow().clone()
    }

    /// Waits (at most `max`) for the first probe result, so `/readyz` right after start says
    /// what is true rather than "unknown".
    pub async fn first_probe(&self, max: Duration) {
        let mut rx = self.upstream.subscribe();
        let _ = tokio::time::timeout(max, rx.wait_for(|p| *p != Probe::Unknown)).await;
    }

    /// Whether the gateway is ready, and the `/readyz` body.
    pub fn report(&self, upstream_url: &str) -> (bool, serde_json::Value) {
        let sets = self.sets.lock().map(|m| m.clone()).unwrap_or_default();
        let probe = self.upstream();
        let never: Vec<&str> = sets
            .iter()
            .filter(|(k, h)| h.policy.is_none() && !k.ends_with(SHADOW_SUFFIX))
            .map(|(k, _)| k.as_str())
            .collect();
        let mut reasons = Vec::new();
        if !never.is_empty() {
            reasons.push(format!("policy set never loaded: {}", never.join(", ")));
        }
        match &probe {
            Probe::Unknown => reasons.push("upstream not probed yet".to_owned()),
            Probe::Unreachable { error, .. } => {
                reasons.push(format!("upstream unreachable: {error}"));
            }
            Probe::Off | Probe::Reachable { .. } => {}
        }
        let ready = reasons.is_empty() && probe.ok();
        let policy = sets
            .values()
            .filter_map(|h| h.policy.as_deref())
            .collect::<Vec<_>>()
            .join(";");
        let last_reload_error = sets
            .values()
            .filter_map(|h| h.last_reload_error.as_ref())
            .max_by(|a, b| a.at.cmp(&b.at))
            .map(|e| e.error.clone());
        let body = serde_json::json!({
            "status": if ready { "ready" } else { "not ready" },
            "reasons": reasons,
            "policy": policy,
            "upstream": upstream_url,
            "upstream_probe": probe,
            "last_reload_error": last_reload_error,
            "sets": sets,
        });
        (ready, body)
    }
}

/// Probes `authority` (`host:port`) every `interval`, each connect bounded by `timeout`, until
/// the returned task is aborted.
pub(crate) fn spawn_probe(
    health: std::sync::Arc<Health>,
    authority: String,
    interval: Duration,
    timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result =
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&authority))
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("connect to {authority}: {e}")),
                    Err(_) => Err(format!("connect to {authority}: no answer in {timeout:?}")),
                };
            if let Err(e) = &result
                && health.upstream().ok()
            {
                tracing::warn!(error = %e, "upstream probe failed: not ready");
            }
            health.probed(result);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_set_loaded_and_the_upstream_answers() {
        let h = Health::new(["default", "team-a"], true);
        let (ready, body) = h.report("http://up");
        assert!(!ready);
        assert_eq!(body["reasons"].as_array().map(Vec::len), Some(2), "{body}");
        h.loaded("default", "p@1");
        h.loaded("team-a", "q@2");
        assert!(!h.report("http://up").0, "not probed yet");
        h.probed(Ok(()));
        assert!(h.report("http://up").0);
        h.failed("team-a", "a.yaml:3:1: bad");
        let (ready, body) = h.report("http://up");
        assert!(
            ready,
            "a failed reload keeps the last good version in force"
        );
        assert_eq!(body["last_reload_error"], "a.yaml:3:1: bad");
        h.probed(Err("refused".to_owned()));
        let (ready, body) = h.report("http://up");
        assert!(!ready);
        assert_eq!(body["upstream_probe"]["state"], "unreachable");
        h.loaded("team-a", "q@3");
        assert!(h.report("x").1["last_reload_error"].is_null());
    }
}
