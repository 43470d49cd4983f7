//! `bench-report`: turns the results of a `run.sh` run into markdown tables.
//!
//! Input: a whitespace-separated file of `round target metric value` lines (`#` starts a
//! comment), as `run.sh` writes it. Output on stdout:
//!
//! 1. the median over rounds of each measurement, per target;
//! 2. the same against the bare hop: latencies as the latency a target *adds* over calling the
//!    mock directly (per round, then the median), divided by what the bare hop adds; throughput,
//!    inter-chunk gap and memory per stream as plain ratios to the bare hop's;
//! 3. notes on anything that makes a figure suspect: errors, requests left unsent, a target
//!    that could not keep up with the offered rate.
//!
//! ```text
//! bench-report results.tsv --baseline bare --direct direct
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use deliberate_bench_harness::stats::median;

/// Markdown tables of medians and ratios from a proxy benchmark run.
#[derive(Debug, Parser)]
#[command(name = "bench-report", version)]
struct Args {
    /// Results file: `round target metric value` lines.
    results: PathBuf,
    /// Target the ratios are taken against.
    #[arg(long, default_value = "bare")]
    baseline: String,
    /// Target that calls the mock upstream directly: "added" latency is over this one.
    #[arg(long, default_value = "direct")]
    direct: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?;
    let results =
        Results::parse(&text).with_context(|| format!("parsing {}", args.results.display()))?;
    print!("{}", results.render(&args.baseline, &args.direct));
    Ok(())
}

// === impl Results ===

/// Every measurement of a run, by target and metric.
#[derive(Debug, Default)]
struct Results {
    /// Targets in order of first appearance.
    targets: Vec<String>,
    /// `(target, metric)` → `(round, value)` samples.
    samples: BTreeMap<(String, String), Vec<(u32, f64)>>,
}

impl Results {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut results = Self::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [round, target, metric, value] = fields[..] else {
                bail!(
                    "line {}: expected `round target metric value`, got {line:?}",
                    number + 1
                );
            };
            let round: u32 = round
                .parse()
                .with_context(|| format!("line {}: bad round {round:?}", number + 1))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("line {}: bad value {value:?}", number + 1))?;
            if !results.targets.iter().any(|t| t == target) {
                results.targets.push(target.to_owned());
            }
            results
                .samples
                .entry((target.to_owned(), metric.to_owned()))
                .or_default()
                .push((round, value));
        }
        Ok(results)
    }

    fn values(&self, target: &str, metric: &str) -> &[(u32, f64)] {
        self.samples
            .get(&(target.to_owned(), metric.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// Median over rounds.
    fn median(&self, target: &str, metric: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .values(target, metric)
            .iter()
            .map(|&(_, v)| v)
            .collect();
        median(&values)
    }

    /// Sum over rounds (for error counts).
    fn sum(&self, target: &str, metric: &str) -> f64 {
        self.values(target, metric).iter().map(|&(_, v)| v).sum()
    }

    /// What `target` adds over `direct`: the difference in each round, then the median.
    fn added(&self, target: &str, direct: &str, metric: &str) -> Option<f64> {
        let direct_values = self.values(direct, metric);
        let differences: Vec<f64> = self
            .values(target, metric)
            .iter()
            .filter_map(|&(round, value)| {
                let (_, base) = direct_values.iter().find(|&&(r, _)| r == round)?;
                Some(value - base)
            })
            .collect();
        median(&differences)
    }

    fn render(&self, baseline: &str, direct: &str) -> String {
        let mut out = String::new();
        let rate = self
            .targets
            .iter()
            .find_map(|t| self.median(t, "rate_offered_rps"))
            .map_or_else(|| "R".to_owned(), |r| format!("{r:.0}"));

        // Table 1: medians.
        let columns: [(&str, &str, f64); 10] = [
            ("unloaded_p50_us", "unloaded p50 µs", 1.0),
            ("unloaded_p99_us", "unloaded p99 µs", 1.0),
            ("rate_p50_us", "p50 µs @ {rate}/s", 1.0),
            ("rate_p99_us", "p99 µs @ {rate}/s", 1.0),
            ("sat_rps", "saturated req/s", 1.0),
            ("ttft_p50_us", "TTFT p50 µs", 1.0),
            ("ttft_p99_us", "TTFT p99 µs", 1.0),
            ("gap_p99_us", "gap p99 µs", 1.0),
            ("rss_idle_kib", "idle RSS MiB", 1.0 / 1024.0),
            ("bytes_per_stream", "bytes / open stream", 1.0),
        ];
        let _ = writeln!(out, "Medians of each measurement over the rounds.\n");
        let headers: Vec<String> = columns
            .iter()
            .map(|c| c.1.replace("{rate}", &rate))
            .collect();
        table_header(&mut out, "target", &headers);
        for target in &self.targets {
            let cells: Vec<String> = columns
                .iter()
                .map(|&(metric, _, scale)| {
                    self.median(target, metric)
                        .map_or_else(|| "—".to_owned(), |v| number(v * scale))
                })
                .collect();
            table_row(&mut out, target, &cells);
        }

        // Table 2: against the bare hop.
        let _ = writeln!(
            out,
            "\nAgainst the bare hop (`{baseline}`) of the same run. \"+µs\" is the latency a target \
             adds over calling the mock directly (`{direct}`), median of the per-round differences; \
             the factor is that added latency divided by the bare hop's (target: ≤ 1.3×). \
             Throughput, gap p99 and bytes per stream are plain ratios to the bare hop's \
             (targets: ≥ 0.8×, ≤ 1.3×, ≤ 16 KiB per stream).\n"
        );
        let added_columns = [
            ("unloaded_p50_us", "unloaded p50"),
            ("unloaded_p99_us", "unloaded p99"),
            ("rate_p50_us", "p50 @ {rate}/s"),
            ("rate_p99_us", "p99 @ {rate}/s"),
            ("ttft_p50_us", "TTFT p50"),
        ];
        let ratio_columns = [
            ("sat_rps", "saturated req/s"),
            ("gap_p99_us", "gap p99"),
            ("bytes_per_stream", "bytes / stream"),
        ];
        let headers: Vec<String> = added_columns
            .iter()
            .chain(ratio_columns.iter())
            .map(|c| c.1.replace("{rate}", &rate))
            .collect();
        table_header(&mut out, "target", &headers);
        for target in self.targets.iter().filter(|t| *t != direct) {
            let mut cells = Vec::new();
            for &(metric, _) in &added_columns {
                let added = self.added(target, direct, metric);
                let base = self.added(baseline, direct, metric);
                cells.push(match (added, base) {
                    (Some(added), Some(base)) if base > 0.0 => {
                        format!("{} ({})", signed(added), factor(added / base))
                    }
                    (Some(added), _) => signed(added),
                    (None, _) => "—".to_owned(),
                });
            }
            for &(metric, _) in &ratio_columns {
                let value = self.median(target, metric);
                let base = self.median(baseline, metric);
                cells.push(match (value, base) {
                    (Some(value), Some(base)) if base > 0.0 => factor(value / base),
                    _ => "—".to_owned(),
                });
            }
            table_row(&mut out, target, &cells);
        }

        // Notes.
        let mut notes = Vec::new();
        for target in &self.targets {
            for (metric, what) in [
                ("unloaded_errors", "errors unloaded"),
                ("sat_errors", "errors at saturation"),
                ("rate_errors", "errors at the fixed rate"),
                (
                    "rate_unsent",
                    "requests left unsent at the fixed rate (could not keep up)",
                ),
                ("stream_errors", "failed streams"),
                ("hold_errors", "streams that failed to open in the RSS test"),
            ] {
                let count = self.sum(target, metric);
                if count > 0.0 {
                    notes.push(format!("`{target}`: {count:.0} {what} over all rounds"));
                }
            }
            if let (Some(requested), Some(open)) = (
                self.median(target, "streams_requested"),
                self.median(target, "streams_open"),
            ) {
                if open < requested {
                    notes.push(format!(
                        "`{target}`: only {open:.0} of {requested:.0} streams opened in the RSS \
                         test (median); bytes per stream are over those that opened"
                    ));
                }
            }
            if let (Some(direct_events), Some(events)) = (
                self.median(direct, "content_events_per_stream"),
                self.median(target, "content_events_per_stream"),
            ) {
                if events < 0.9 * direct_events {
                    notes.push(format!(
                        "`{target}`: {events:.1} content events per stream where the mock sends \
                         {direct_events:.1}: it merges chunks (a policy gateway's first release \
                         carries every chunk its holdback kept back; merges after that make its \
                         gaps fewer and longer)"
                    ));
                }
            }
            let offered = self.median(target, "rate_offered_rps");
            let achieved = self.median(target, "rate_achieved_rps");
            if let (Some(offered), Some(achieved)) = (offered, achieved) {
                if achieved >= 0.95 * offered {
                    continue;
                }
                notes.push(format!(
                    "`{target}`: achieved {achieved:.0} of the {offered:.0} req/s offered: \
                     overloaded, its fixed-rate latencies measure a growing queue"
                ));
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "\nNotes:\n");
            for note in notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

/// A figure with as many decimals as it deserves.
fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A ratio: two decimals, or two significant digits below 0.01 (LiteLLM's throughput ratio
/// would otherwise read `0.00×`).
fn factor(ratio: f64) -> String {
    let decimals = if ratio.abs() >= 0.01 || ratio == 0.0 {
        2
    } else {
        (-ratio.abs().log10().floor()) as usize + 1
    };
    format!("{ratio:.decimals$}×")
}

/// A difference, with its sign: `+12.0`, `−3.00`.
fn signed(value: f64) -> String {
    let sign = if value < 0.0 { '−' } else { '+' };
    format!("{sign}{}", number(value.abs()))
}

fn table_header(out: &mut String, first: &str, headers: &[String]) {
    let _ = writeln!(out, "| {first} | {} |", headers.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(headers.len()));
}

fn table_row(out: &mut String, first: &str, cells: &[String]) {
    let _ = writeln!(out, "| {first} | {} |", cells.join(" | "));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const RUN: &str = "\
# round target metric value
1 direct unloaded_p50_us 100
1 bare unloaded_p50_us 150
1 nginx unloaded_p50_us 200
2 direct unloaded_p50_us 110
2 bare unloaded_p50_us 150
2 nginx unloaded_p50_us 230
1 bare sat_rps 1000
1 nginx sat_rps 800
1 nginx rate_errors 3
1 direct content_events_per_stream 20
1 nginx content_events_per_stream 1.0
1 nginx streams_requested 1000
1 nginx streams_open 500
";

    #[test]
    fn added_latency_is_paired_by_round() {
        let results = Results::parse(RUN).unwrap();
        // bare adds 50 and 40 → 45; nginx adds 100 and 120 → 110.
        assert_eq!(
            results.added("bare", "direct", "unloaded_p50_us"),
            Some(45.0)
        );
        assert_eq!(
            results.added("nginx", "direct", "unloaded_p50_us"),
            Some(110.0)
        );
    }

    #[test]
    fn renders_ratios_and_notes() {
        let out = Results::parse(RUN).unwrap().render("bare", "direct");
        assert!(out.contains("| nginx | +110 (2.44×)"), "{out}");
        assert!(out.contains("0.80×"), "{out}");
        assert!(out.contains("`nginx`: 3 errors at the fixed rate"), "{out}");
        assert!(out.contains("only 500 of 1000 streams opened"), "{out}");
        assert!(out.contains("1.0 content events per stream"), "{out}");
        assert!(
            !out.contains("`bare`: "),
            "no note on a clean target: {out}"
        );
    }

    #[test]
    fn small_ratios_keep_two_significant_digits() {
        assert_eq!(factor(1.0), "1.00×");
        assert_eq!(factor(0.0014), "0.0014×");
        assert_eq!(factor(0.0), "0.00×");
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(Results::parse("1 bare sat_rps").is_err());
        assert!(Results::parse("one bare sat_rps 3").is_err());
    }
}
