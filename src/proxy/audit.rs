//! The JSONL audit log and the observer that feeds it and the metrics.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use super::metrics::Metrics;
use crate::layer::{AuditRecord, Observer};
use crate::policy::Action;

/// Appends one JSON line per record to a file, from a thread of its own, so a slow disk never
/// holds up a request. Records are flushed as soon as the queue is empty.
#[derive(Debug)]
pub struct AuditLog {
    tx: Option<mpsc::Sender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl AuditLog {
    /// Opens (creates or appends to) `path`.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::channel::<String>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("deliberate-audit".to_owned())
            .spawn(move || {
                let mut w = std::io::BufWriter::new(file);
                while let Ok(line) = rx.recv() {
                    let mut res = w
                        .write_all(line.as_bytes())
                        .and_then(|()| w.write_all(b"\n"));
                    while let Ok(more) = rx.try_recv() {
                        res = res
                            .and_then(|()| w.write_all(more.as_bytes()))
                            .and_then(|()| w.write_all(b"\n"));
                    }
                    if let Err(e) = res.and_then(|()| w.flush()) {
                        tracing::error!(path = %shown, error = %e, "cannot write the audit log");
                    }
                }
                let _ = w.flush();
            })?;
        Ok(AuditLog {
            tx: Some(tx),
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// Queues a record.
    pub fn write(&self, record: &AuditRecord) {
        self.write_line(serde_json::to_string(record));
    }

    /// Queues a late judge verdict (stream `monitor` mode) for request `id`: a line
    /// `{"id": …, "judged_late": {…}}`.
    pub fn write_judged(&self, id: &str, judged: &crate::layer::JudgeRecord) {
        self.write_line(serde_json::to_string(
            &serde_json::json!({"id": id, "judged_late": judged}),
        ));
    }

    fn write_line(&self, line: serde_json::Result<String>) {
        match line {
            Ok(line) => {
                if let Some(tx) = &self.tx
                    && tx.send(line).is_err()
                {
                    tracing::error!(path = %self.path.display(), "audit log writer stopped; record lost");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize an audit record"),
        }
    }

    /// Writes what is queued and stops the writer.
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Feeds audit records to the log and the metrics.
#[derive(Debug)]
pub struct ProxyObserver {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The audit log, if one is configured.
    pub log: Option<std::sync::Mutex<AuditLog>>,
}

impl Observer for ProxyObserver {
    fn record(&self, r: &AuditRecord) {
        self.metrics
            .request("/v1/chat/completions", r.status, r.action.as_str());
        for f in &r.findings {
            self.metrics.finding(
                &f.rule,
                f.section.as_deref(),
                f.stage.as_str(),
                f.action.as_str(),
            );
        }
        if let (Some(tenant), Some(set)) = (&r.tenant, &r.policy_set) {
            self.metrics.tenant_request(tenant, set, r.action.as_str());
            for f in &r.findings {
                self.metrics
                    .tenant_finding(tenant, set, &f.rule, f.action.as_str());
            }
        }
        if let Some(s) = &r.shadow {
            let set = r.policy_set.as_deref().unwrap_or(super::DEFAULT_SET);
            self.metrics.shadow_run(set, s.action == r.action);
            let (live, shadow) = (r.action == Action::Block, s.action == Action::Block);
            // Each rule once per request, however many texts it fired on.
            let blocking = |fs: &[crate::layer::AuditFinding]| {
                let mut rules: Vec<&str> = fs
                    .iter()
                    .filter(|f| f.action == Action::Block)
                    .map(|f| f.rule.as_str())
                    .collect();
                rules.sort_unstable();
                rules.dedup();
                rules.into_iter().map(str::to_owned).collect::<Vec<_>>()
            };
            if shadow && !live {
                for rule in blocking(&s.findings) {
                    self.metrics.shadow_change(set, "would_block", &rule);
                }
            } else if live && !shadow {
                for rule in blocking(&r.findings) {
                    self.metrics.shadow_change(set, "would_unblock", &rule);
                }
            }
        }
        self.metrics.added_latency(r.latency.gateway_ms / 1000.0);
        if let Some(u) = r.latency.upstream_ms {
            self.metrics.upstream_latency(u / 1000.0);
        }
        if let Some(log) = &self.log
            && let Ok(log) = log.lock()
        {
            log.write(r);
        }
    }

    fn stream_opened(&self) {
        self.metrics.streams(1);
    }

    fn judged_late(&self, id: &str, judged: &crate::layer::JudgeRecord) {
        if let Some(log) = &self.log
            && let Ok(log) = log.lock()
        {
            log.write_judged(id, judged);
        }
    }

    fn stream_closed(&self) {
        self.metrics.streams(-1);
    }
}
