//! Resident set size of processes, read from `/proc/PID/status` (Linux only).

use anyhow::{Context as _, bail};

/// `VmRSS` of process `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    for line in status.lines() {
        if let Some(value) = line.strip_prefix("VmRSS:") {
            let kib = value.trim().trim_end_matches("kB").trim();
            return kib
                .parse()
                .with_context(|| format!("unexpected VmRSS line in {path}: {line:?}"));
        }
    }
    bail!("{path} has no VmRSS line (a kernel thread or a zombie?)")
}

/// Sum of `VmRSS` over `pids`, in KiB (a proxy may run as several processes: nginx's master
/// and workers, LiteLLM's server and its workers).
pub fn total_vm_rss_kib(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&pid| vm_rss_kib(pid)).sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss() {
        let kib = vm_rss_kib(std::process::id()).unwrap();
        assert!(kib > 0);
    }
}
