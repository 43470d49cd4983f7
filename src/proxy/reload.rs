//! Policy hot reload: on a change to a policy file (or one it includes), or on `SIGHUP`, every
//! policy is compiled again; the new set goes into force only if all of them compile. Requests
//! already running keep the set they started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::metrics::Metrics;
use crate::engine::CompiledPolicy;
use crate::layer::{PolicySet, SharedPolicies};

/// Loads every policy file; the first failure is the error (its diagnostics, one per line).
pub fn load_set(paths: &[PathBuf]) -> Result<PolicySet, String> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        match CompiledPolicy::load(p) {
            Ok(policy) => {
                for w in &policy.warnings {
                    tracing::warn!("{w}");
                }
                out.push(policy);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(PolicySet::new(out))
}

/// Every file the set was compiled from.
fn sources(set: &PolicySet, configured: &[PathBuf]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = configured.to_vec();
    for p in set.policies() {
        v.extend(p.sources.iter().cloned());
    }
    v.iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect()
}

/// Reloads now; logs and counts the result.
pub fn reload(paths: &[PathBuf], policies: &SharedPolicies, metrics: &Metrics) -> bool {
    match load_set(paths) {
        Ok(set) => {
            let old = policies.current();
            if old.label() != set.label() {
                tracing::info!(policy = %set.label(), previous = %old.label(), "policy reloaded");
            } else {
                tracing::info!(policy = %set.label(), "policy reloaded (unchanged)");
            }
            metrics.set_policy(set.label());
            policies.replace(set);
            metrics.reload("ok");
            true
        }
        Err(e) => {
            tracing::error!(
                policy = %policies.current().label(),
                "policy reload failed; keeping the policy in force:\n{e}"
            );
            metrics.reload("failed");
            false
        }
    }
}

/// Watches the policy files and listens for `SIGHUP`; runs until the returned handle is
/// aborted.
pub fn spawn(
    paths: Vec<PathBuf>,
    policies: SharedPolicies,
    metrics: Arc<Metrics>,
    watch: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<()>(16);
        let arm = |policies: &SharedPolicies| {
            if !watch {
                return None;
            }
            match make_watcher(&paths, policies, tx.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch policy files; reload with SIGHUP");
                    None
                }
            }
        };
        let mut watcher = arm(&policies);
        #[cfg(unix)]
        {
            let tx = tx.clone();
            if let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading policies");
                        if tx.send(()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
        while rx.recv().await.is_some() {
            // Editors write a file in several steps: let them settle.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            let (p, pol, m) = (paths.clone(), policies.clone(), metrics.clone());
            let _ = tokio::task::spawn_blocking(move || reload(&p, &pol, &m)).await;
            // Includes may have changed, and some editors replace the file: watch afresh.
            drop(watcher.take());
            watcher = arm(&policies);
        }
    })
}

fn make_watcher(
    paths: &[PathBuf],
    policies: &SharedPolicies,
    tx: mpsc::Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let files = sources(&policies.current(), paths);
    let names = files.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !ev.kind.is_access()
            && ev
                .paths
                .iter()
                .any(|p| names.iter().any(|n| same_file(p, n)))
        {
            let _ = tx.try_send(());
        }
    })?;
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        watcher.watch(&d, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

fn same_file(event_path: &Path, wanted: &Path) -> bool {
    event_path == wanted || event_path.canonicalize().is_ok_and(|p| p == wanted)
}
