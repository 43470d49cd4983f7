//! Policy hot reload: on a change to a policy file (or one it includes), or on `SIGHUP`, every
//! policy of the set is compiled again; the new set goes into force only if all of them
//! compile. Requests already running keep the set they started with. Each policy set of the
//! config reloads on its own: a broken file keeps that set's last good version.
//!
//! The watcher watches the directories of the files, not the files, so a file replaced by a
//! rename (editors) or a Kubernetes ConfigMap update (the `..data` symlink swapped to a new
//! timestamped directory) is seen: an event on any path that now resolves to a watched file,
//! or on the `..data` link itself, triggers a reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::health::Health;
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

/// One policy set of the gateway, as the reloader sees it.
#[derive(Debug, Clone)]
pub struct SetSource {
    /// The set's name (`default` for the config's top-level `policies:`).
    pub name: String,
    /// Its policy files, enforced in this order.
    pub paths: Vec<PathBuf>,
    /// Where the compiled set goes.
    pub policies: SharedPolicies,
}

/// Reloads `set` now; logs and counts the result and records it in `health`.
pub fn reload(set: &SetSource, metrics: &Metrics, health: &Health) -> bool {
    let (paths, policies, name) = (&set.paths, &set.policies, set.name.clone());
    match load_set(paths) {
        Ok(set) => {
            let old = policies.current();
            if old.label() != set.label() {
                tracing::info!(policy = %set.label(), previous = %old.label(), "policy reloaded");
            } else {
                tracing::info!(policy = %set.label(), "policy reloaded (unchanged)");
            }
            if name == super::DEFAULT_SET {
                metrics.set_policy(set.label());
            }
            health.loaded(&name, set.label());
            policies.replace(set);
            metrics.reload("ok");
            true
        }
        Err(e) => {
            tracing::error!(
                set = %name,
                policy = %policies.current().label(),
                "policy reload failed; keeping the policy in force:\n{e}"
            );
            health.failed(&name, &e);
            metrics.reload("failed");
            false
        }
    }
}

/// Watches the policy files and listens for `SIGHUP`; runs until the returned handle is
/// aborted.
pub fn spawn(
    set: SetSource,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    watch: bool,
) -> tokio::task::JoinHandle<()> {
    let (paths, policies) = (set.paths.clone(), set.policies.clone());
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
            let (s, m, h) = (set.clone(), metrics.clone(), health.clone());
            let _ = tokio::task::spawn_blocking(move || reload(&s, &m, &h)).await;
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
                .any(|p| is_data_link(p) || names.iter().any(|n| same_file(p, n)))
        {
            let _ = tx.try_send(());
        }
    })?;
    // The directories of the files as configured too: where a ConfigMap's `..data` link is.
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .chain(paths)
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        watcher.watch(&d, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// The `..data` symlink Kubernetes swaps when a mounted ConfigMap changes.
fn is_data_link(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "..data")
}

fn same_file(event_path: &Path, wanted: &Path) -> bool {
    event_path == wanted || event_path.canonicalize().is_ok_and(|p| p == wanted)
}
