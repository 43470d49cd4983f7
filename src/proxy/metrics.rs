//! Prometheus metrics, rendered by hand in the text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The gateway's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, String), u64>>,
    findings: Mutex<BTreeMap<(String, String, String, String), u64>>,
    reloads: Mutex<BTreeMap<&'static str, u64>>,
    added: Histogram,
    upstream: Histogram,
    active_streams: AtomicI64,
    policy: Mutex<String>,
    open_connections: AtomicI64,
    connections_refused: Mutex<BTreeMap<&'static str, u64>>,
    connections_closed: Mutex<BTreeMap<&'static str, u64>>,
    accept_errors: AtomicU64,
    judge_verdicts: Mutex<BTreeMap<&'static str, u64>>,
    judge_errors: Mutex<BTreeMap<&'static str, u64>>,
    judge_cache_hits: AtomicU64,
    judge_latency: Histogram,
    /// (tenant, set, action): requests by the labels of policy selection.
    tenant_requests: Mutex<BTreeMap<(String, String, String), u64>>,
    /// (set, change, rule): shadow decisions that differ from the live one.
    shadow: Mutex<BTreeMap<(String, &'static str, String), u64>>,
    /// (set, agree|differ).
    shadow_runs: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (tenant, set, rule, action).
    tenant_findings: Mutex<BTreeMap<(String, String, String, String), u64>>,
}

/// A counter family with one label: its name, help text, label name and values by label value.
type LabeledCounter<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a Mutex<BTreeMap<&'static str, u64>>,
);

/// Renders counter families with one label each, in the text exposition format.
fn labeled_counters(out: &mut String, families: &[LabeledCounter<'_>]) {
    for (name, help, label, map) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(m) = map.lock() {
            for (value, n) in m.iter() {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        }
    }
}

/// `n` in decimal, written into `buf`.
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Counts a request to `route` answered with `status` (`cancelled` when none) after
    /// `action`.
    pub fn request(&self, route: &str, status: Option<u16>, action: &str) {
        let mut digits = [0u8; 5];
        let status = match status {
            Some(s) => decimal(s, &mut digits),
            None => "cancelled",
        };
        if let Ok(mut m) = self.requests.lock() {
            // A request adds to a counter that exists (labels are bounded): found without
            // building a key of fresh strings.
            let seen = m
                .iter_mut()
                .find(|((r, s, a), _)| r == route && s == status && a == action);
            match seen {
                Some((_, n)) => *n += 1,
                None => {
                    m.insert((route.to_owned(), status.to_owned(), action.to_owned()), 1);
                }
            }
        }
    }

    /// Counts a finding.
    pub fn finding(&self, rule: &str, section: Option<&str>, stage: &str, action: &str) {
        if let Ok(mut m) = self.findings.lock() {
            let key = (
                rule.to_owned(),
                section.unwrap_or("").to_owned(),
                stage.to_owned(),
                action.to_owned(),
            );
            *m.entry(key).or_default() += 1;
        }
    }

    /// Counts a request of `tenant` enforced with policy set `set` (bounded labels: the
    /// tenants and sets the config names).
    pub fn tenant_request(&self, tenant: &str, set: &str, action: &str) {
        if let Ok(mut m) = self.tenant_requests.lock() {
            *m.entry((tenant.to_owned(), set.to_owned(), action.to_owned()))
                .or_default() += 1;
        }
    }

    /// Counts a finding on a request of `tenant` enforced with `set`.
    pub fn tenant_finding(&self, tenant: &str, set: &str, rule: &str, action: &str) {
        if let Ok(mut m) = self.tenant_findings.lock() {
            let key = (
                tenant.to_owned(),
                set.to_owned(),
                rule.to_owned(),
                action.to_owned(),
            );
            *m.entry(key).or_default() += 1;
        }
    }

    /// Counts a shadow run on set `set`: whether its action agreed with the live one.
    pub fn shadow_run(&self, set: &str, agree: bool) {
        if let Ok(mut m) = self.shadow_runs.lock() {
            let k = (set.to_owned(), if agree { "agree" } else { "differ" });
            *m.entry(k).or_default() += 1;
        }
    }

    /// Counts a rule whose shadow decision differs: `would_block` (the candidate blocks where
    /// the live policy did not) or `would_unblock` (the live policy blocked, the candidate
    /// would not).
    pub fn shadow_change(&self, set: &str, change: &'static str, rule: &str) {
        if let Ok(mut m) = self.shadow.lock() {
            *m.entry((set.to_owned(), change, rule.to_owned()))
                .or_default() += 1;
        }
    }

    /// Records the time the gateway added to a request.
    pub fn added_latency(&self, seconds: f64) {
        self.added.observe(seconds);
    }

    /// Records an upstream response time (to headers).
    pub fn upstream_latency(&self, seconds: f64) {
        self.upstream.observe(seconds);
    }

    /// A stream opened (`+1`) or closed (`-1`).
    pub fn streams(&self, delta: i64) {
        self.active_streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// A client connection opened (`+1`) or closed (`-1`).
    pub fn connections_open(&self, delta: i64) {
        self.open_connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a connection refused at the connection cap: answered `503`, or `closed` at once.
    pub fn connection_refused(&self, how: &'static str) {
        if let Ok(mut m) = self.connections_refused.lock() {
            *m.entry(how).or_default() += 1;
        }
    }

    /// Counts a connection the gateway closed: `idle`, `evicted`, `header_read` or
    /// `request_body`.
    pub fn connection_closed(&self, reason: &'static str) {
        if let Ok(mut m) = self.connections_closed.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Counts a failed `accept` (out of file descriptors and the like).
    pub fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a policy reload: `ok` or `failed`.
    pub fn reload(&self, result: &'static str) {
        if let Ok(mut m) = self.reloads.lock() {
            *m.entry(result).or_default() += 1;
        }
    }

    /// Counts a judge verdict (`violation` / `no_violation`); `seconds` is the call time
    /// (cache hits count as hits and are not timed).
    pub fn judge_verdict(&self, verdict: &'static str, cached: bool, seconds: f64) {
        if let Ok(mut m) = self.judge_verdicts.lock() {
            *m.entry(verdict).or_default() += 1;
        }
        if cached {
            self.judge_cache_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.judge_latency.observe(seconds);
        }
    }

    /// Counts a judge failure by kind (`timeout`, `error`, `malformed`).
    pub fn judge_error(&self, kind: &'static str) {
        if let Ok(mut m) = self.judge_errors.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// Sets the label of the policy in force.
    pub fn set_policy(&self, label: &str) {
        if let Ok(mut p) = self.policy.lock() {
            *p = label.to_owned();
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP deliberate_requests_total Requests by route, status and action.\n");
        out.push_str("# TYPE deliberate_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status, action), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "deliberate_requests_total{{route=\"{}\",status=\"{status}\",action=\"{}\"}} {n}",
                    escape(route),
                    escape(action)
                );
            }
        }
        out.push_str(
            "# HELP deliberate_findings_total Rule findings by rule, section, stage and action.\n",
        );
        out.push_str("# TYPE deliberate_findings_total counter\n");
        if let Ok(m) = self.findings.lock() {
            for ((rule, section, stage, action), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "deliberate_findings_total{{rule=\"{}\",section=\"{}\",stage=\"{stage}\",action=\"{action}\"}} {n}",
                    escape(rule),
                    escape(section)
                );
            }
        }
        out.push_str("# HELP deliberate_tenant_requests_total Enforced requests by tenant, policy set and action.\n# TYPE deliberate_tenant_requests_total counter\n");
        if let Ok(m) = self.tenant_requests.lock() {
            for ((tenant, set, action), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "deliberate_tenant_requests_total{{tenant=\"{}\",set=\"{}\",action=\"{action}\"}} {n}",
                    escape(tenant),
                    escape(set)
                );
            }
        }
        out.push_str("# HELP deliberate_tenant_findings_total Rule findings by tenant, policy set, rule and action.\n# TYPE deliberate_tenant_findings_total counter\n");
        if let Ok(m) = self.tenant_findings.lock() {
            for ((tenant, set, rule, action), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "deliberate_tenant_findings_total{{tenant=\"{}\",set=\"{}\",rule=\"{}\",action=\"{action}\"}} {n}",
                    escape(tenant),
                    escape(set),
                    escape(rule)
                );
            }
        }
        out.push_str("# HELP deliberate_shadow_runs_total Requests scanned by a shadow candidate, by set and whether its action agreed with the live one.\n# TYPE deliberate_shadow_runs_total counter\n");
        if let Ok(m) = self.shadow_runs.lock() {
            for ((set, agree), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "deliberate_shadow_runs_total{{set=\"{}\",result=\"{agree}\"}} {n}",
                    escape(set)
                );
            }
        }
        out.push_str("# HELP deliberate_shadow_changes_total Rules behind a shadow decision that differs from the live one: would_block or would_unblock.\n# TYPE deliberate_shadow_changes_total counter\n");
        if let Ok(m) = self.shadow.lock() {
            for ((set, change, rule), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "deliberate_shadow_changes_total{{set=\"{}\",change=\"{change}\",rule=\"{}\"}} {n}",
                    escape(set),
                    escape(rule)
                );
            }
        }
        self.added.render(
            &mut out,
            "deliberate_added_latency_seconds",
            "Time the gateway itself spent on a request (scanning, injecting, re-encoding).",
        );
        self.upstream.render(
            &mut out,
            "deliberate_upstream_latency_seconds",
            "Upstream time to response headers.",
        );
        self.judge_latency.render(
            &mut out,
            "deliberate_judge_latency_seconds",
            "Judge call time (cache hits excluded).",
        );
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed).to_string();
        let gauge = |n: &AtomicI64| n.load(Ordering::Relaxed).to_string();
        let scalars = [
            (
                "deliberate_active_streams",
                "gauge",
                "Streamed responses in flight.",
                gauge(&self.active_streams),
            ),
            (
                "deliberate_open_connections",
                "gauge",
                "Open client connections.",
                gauge(&self.open_connections),
            ),
            (
                "deliberate_accept_errors_total",
                "counter",
                "Failed accepts (out of file descriptors and the like).",
                load(&self.accept_errors),
            ),
            (
                "deliberate_judge_cache_hits_total",
                "counter",
                "Verdicts served from the judge cache.",
                load(&self.judge_cache_hits),
            ),
        ];
        for (name, kind, help, value) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let families = [
            (
                "deliberate_connections_refused_total",
                "Client connections refused at the connection cap, by how (503 or closed).",
                "how",
                &self.connections_refused,
            ),
            (
                "deliberate_connections_closed_total",
                "Client connections the gateway closed, by reason (idle, evicted, header_read, request_body).",
                "reason",
                &self.connections_closed,
            ),
            (
                "deliberate_judge_verdicts_total",
                "Judge verdicts by verdict (violation, no_violation), cache hits included.",
                "verdict",
                &self.judge_verdicts,
            ),
            (
                "deliberate_judge_errors_total",
                "Judge calls without a verdict, by kind (timeout, error, malformed).",
                "kind",
                &self.judge_errors,
            ),
            (
                "deliberate_policy_reloads_total",
                "Policy reloads by result.",
                "result",
                &self.reloads,
            ),
        ];
        labeled_counters(&mut out, &families);
        if let Ok(p) = self.policy.lock() {
            let _ = writeln!(
                out,
                "# HELP deliberate_policy_info The policies in force.\n# TYPE deliberate_policy_info gauge\ndeliberate_policy_info{{policy=\"{}\"}} 1",
                escape(&p)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("/v1/chat/completions", Some(200), "block");
        m.finding("bomb", Some("illicit"), "input", "block");
        m.added_latency(0.002);
        m.streams(1);
        m.connections_open(2);
        m.connection_refused("503");
        m.connection_closed("idle");
        let text = m.render();
        assert!(text.contains("deliberate_open_connections 2"));
        assert!(text.contains("deliberate_connections_refused_total{how=\"503\"} 1"));
        assert!(text.contains("deliberate_connections_closed_total{reason=\"idle\"} 1"));
        assert!(text.contains(
            "deliberate_requests_total{route=\"/v1/chat/completions\",status=\"200\",action=\"block\"} 1"
        ));
        assert!(text.contains("deliberate_findings_total{rule=\"bomb\",section=\"illicit\",stage=\"input\",action=\"block\"} 1"));
        assert!(text.contains("deliberate_added_latency_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(text.contains("deliberate_added_latency_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("deliberate_active_streams 1"));
    }

    /// A counter counts on from where it stood; statuses are written in decimal.
    #[test]
    fn requests_count_per_label_set() {
        let m = Metrics::default();
        for status in [Some(200), Some(200), Some(5), Some(65535), None, Some(200)] {
            m.request("r", status, "allow");
        }
        m.request("r", Some(200), "block");
        let text = m.render();
        for line in [
            "status=\"200\",action=\"allow\"} 3",
            "status=\"200\",action=\"block\"} 1",
            "status=\"5\",action=\"allow\"} 1",
            "status=\"65535\",action=\"allow\"} 1",
            "status=\"cancelled\",action=\"allow\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
