//! The offline run over all data sets, and its rendering as a table, Markdown or JSON.

use std::sync::Arc;

use serde_json::{Value, json};

use super::EvalOptions;
use super::dataset::{Content, Dataset};
use super::metrics::{Confusion, Rate};
use super::offline::{
    Changes, Example, Positive, SpanReport, Summary, changes, evaluate_cases, evaluate_spans,
};
use super::refusal_detector::{self, RefusalAccuracy, RefusalDetector};
use crate::engine::CompiledPolicy;
use crate::policy::{LoadError, Stage};

/// What a labeled data set gave.
#[derive(Debug, Clone)]
pub struct CasesResult {
    /// Counts under the policy.
    pub summary: Summary,
    /// Safe cases caught.
    pub worst_false_blocks: Vec<Example>,
    /// Unsafe cases missed.
    pub worst_misses: Vec<Example>,
    /// With `--compare`: the old policy's counts and the cases that changed.
    pub compare: Option<(Summary, Changes)>,
}

/// What one data set gave.
#[derive(Debug, Clone)]
pub enum DatasetResult {
    /// Labeled cases.
    Cases(CasesResult),
    /// PII spans.
    Spans {
        /// Stage scanned.
        stage: Stage,
        /// Figures.
        report: SpanReport,
    },
    /// Refusal-detector accuracy on labeled completions.
    Refusal {
        /// Detector label.
        detector: String,
        /// Figures.
        accuracy: RefusalAccuracy,
    },
}

/// One data set's report.
#[derive(Debug, Clone)]
pub struct DatasetReport {
    /// Display name.
    pub name: String,
    /// Detected format.
    pub format: &'static str,
    /// Rows left out on purpose, with why.
    pub skipped: Option<(usize, String)>,
    /// Figures.
    pub result: DatasetResult,
}

/// A threshold from the command line and whether the run met it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdCheck {
    /// `max_false_block_rate` or `min_catch_rate`.
    pub name: &'static str,
    /// The limit.
    pub limit: f64,
    /// The measured value (`None`: nothing to measure it on, which does not fail the run).
    pub value: Option<f64>,
    /// Met?
    pub passed: bool,
}

/// A whole offline run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Policy label (`name@hash`).
    pub policy: String,
    /// Old policy label, with `--compare`.
    pub compare_policy: Option<String>,
    /// What counted as caught.
    pub positive: Positive,
    /// Per data set.
    pub datasets: Vec<DatasetReport>,
    /// All labeled cases together.
    pub summary: Summary,
    /// All labeled cases under the old policy, with `--compare`.
    pub compare_summary: Option<Summary>,
    /// Thresholds checked.
    pub thresholds: Vec<ThresholdCheck>,
}

impl Report {
    /// Whether every threshold was met.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }
}

/// Runs `policy` (and `old`, to compare) over every data set.
pub fn run_offline(
    policy: &Arc<CompiledPolicy>,
    old: Option<&Arc<CompiledPolicy>>,
    datasets: &[Dataset],
    opts: &EvalOptions,
) -> Result<Report, LoadError> {
    let mut detector: Option<RefusalDetector> = opts.refusal_detector.clone();
    let mut out = Vec::new();
    let mut summary = Summary::default();
    let mut compare_summary = old.map(|_| Summary::default());
    for ds in datasets {
        let result = match &ds.content {
            Content::Cases(cases) => {
                let r = evaluate_cases(policy, cases, opts.positive);
                summary.merge(&r.summary);
                let compare = old.map(|o| {
                    let ro = evaluate_cases(o, cases, opts.positive);
                    if let Some(cs) = compare_summary.as_mut() {
                        cs.merge(&ro.summary);
                    }
                    (
                        ro.summary.clone(),
                        changes(cases, &ro.outcomes, &r.outcomes),
                    )
                });
                DatasetResult::Cases(CasesResult {
                    worst_false_blocks: r.worst_false_blocks(cases, opts.examples),
                    worst_misses: r.worst_misses(cases, opts.examples),
                    summary: r.summary,
                    compare,
                })
            }
            Content::Spans(texts) => DatasetResult::Spans {
                stage: opts.span_stage,
                report: evaluate_spans(policy, texts, opts.span_stage),
            },
            Content::Completions(rows) => {
                let d = match &detector {
                    Some(d) => d.clone(),
                    None => {
                        let d = RefusalDetector::builtin()?;
                        detector = Some(d.clone());
                        d
                    }
                };
                DatasetResult::Refusal {
                    detector: d.label(),
                    accuracy: refusal_detector::accuracy(&d, rows),
                }
            }
        };
        out.push(DatasetReport {
            name: ds.name.clone(),
            format: ds.format,
            skipped: ds.skipped.clone(),
            result,
        });
    }
    let mut thresholds = Vec::new();
    if let Some(limit) = opts.max_false_block_rate {
        let value = summary.all.false_block_rate().value;
        thresholds.push(ThresholdCheck {
            name: "max_false_block_rate",
            limit,
            value,
            passed: value.is_none_or(|v| v <= limit),
        });
    }
    if let Some(limit) = opts.min_catch_rate {
        let value = summary.all.catch_rate().value;
        thresholds.push(ThresholdCheck {
            name: "min_catch_rate",
            limit,
            value,
            passed: value.is_none_or(|v| v >= limit),
        });
    }
    Ok(Report {
        policy: policy.label(),
        compare_policy: old.map(|o| o.label()),
        positive: opts.positive,
        datasets: out,
        summary,
        compare_summary,
        thresholds,
    })
}

// === JSON ===

impl Report {
    /// The JSON report: `policy`, `positive`, `summary` (`n`, counts, `catch_rate`,
    /// `false_block_rate`, `precision`, `recall`, `f1`, each a [`Rate`], and `by_category`),
    /// `datasets`, `thresholds`, `passed`, and `compare` with `--compare`.
    pub fn to_json(&self) -> Value {
        let datasets: Vec<Value> = self
            .datasets
            .iter()
            .map(|d| {
                let mut v = json!({"name": d.name, "format": d.format});
                if let Some((n, why)) = &d.skipped {
                    v["skipped"] = json!({"n": n, "reason": why});
                }
                match &d.result {
                    DatasetResult::Cases(c) => {
                        v["kind"] = json!("labeled");
                        v["summary"] = c.summary.to_json();
                        v["worst_false_blocks"] = json!(c.worst_false_blocks);
                        v["worst_misses"] = json!(c.worst_misses);
                        if let Some((old, ch)) = &c.compare {
                            v["compare"] = json!({
                                "old_summary": old.to_json(),
                                "newly_caught": ch.newly_caught,
                                "newly_released": ch.newly_released,
                            });
                        }
                    }
                    DatasetResult::Spans { stage, report } => {
                        v["kind"] = json!("spans");
                        v["stage"] = json!(stage);
                        v["spans"] = report.to_json();
                    }
                    DatasetResult::Refusal { detector, accuracy } => {
                        v["kind"] = json!("refusal_detector");
                        v["detector"] = json!(detector);
                        v["refusal_detector"] = accuracy.to_json();
                    }
                }
                v
            })
            .collect();
        let mut v = json!({
            "policy": self.policy,
            "positive": self.positive.as_str(),
            "summary": self.summary.to_json(),
            "datasets": datasets,
            "thresholds": self.thresholds.iter().map(|t| json!({
                "name": t.name, "limit": t.limit, "value": t.value, "passed": t.passed,
            })).collect::<Vec<_>>(),
            "passed": self.passed(),
        });
        if let (Some(p), Some(s)) = (&self.compare_policy, &self.compare_summary) {
            v["compare"] = json!({"policy": p, "summary": s.to_json()});
        }
        v
    }
}

// === tables ===

/// Rendering style of [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Aligned plain text.
    Text,
    /// GitHub Markdown.
    Markdown,
}

/// A small table renderer.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders it.
    pub fn render(&self, style: Style) -> String {
        let n = self.headers.len();
        let width = |i: usize| {
            std::iter::once(&self.headers[i])
                .chain(self.rows.iter().filter_map(|r| r.get(i)))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..n).map(width).collect();
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let padded: Vec<String> = (0..n)
                .map(|i| {
                    let c = cells.get(i).map(String::as_str).unwrap_or("");
                    let c = if style == Style::Markdown {
                        c.replace('|', "\\|")
                    } else {
                        c.to_owned()
                    };
                    let pad = widths[i].saturating_sub(c.chars().count());
                    format!("{c}{}", " ".repeat(pad))
                })
                .collect();
            match style {
                Style::Text => out.push_str(padded.join("  ").trim_end()),
                Style::Markdown => {
                    out.push_str("| ");
                    out.push_str(&padded.join(" | "));
                    out.push_str(" |");
                }
            }
            out.push('\n');
        };
        line(&self.headers, &mut out);
        match style {
            Style::Text => {
                let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&dashes.join("  "));
                out.push('\n');
            }
            Style::Markdown => {
                let dashes: Vec<String> = widths.iter().map(|w| "-".repeat((*w).max(3))).collect();
                out.push_str(&format!("| {} |\n", dashes.join(" | ")));
            }
        }
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }
}

fn confusion_row(name: &str, c: &Confusion) -> Vec<String> {
    vec![
        name.to_owned(),
        c.n().to_string(),
        (c.tp + c.fn_).to_string(),
        c.catch_rate().display(),
        c.false_block_rate().display(),
        c.precision().display(),
        c.f1().display(),
    ]
}

const SUMMARY_HEADERS: &[&str] = &[
    "category",
    "n",
    "unsafe",
    "catch rate (recall)",
    "false-block rate",
    "precision",
    "F1",
];

fn summary_table(s: &Summary, style: Style) -> String {
    let mut t = Table::new(SUMMARY_HEADERS);
    if s.by_category.len() > 1 {
        for (k, c) in &s.by_category {
            t.row(confusion_row(k, c));
        }
    }
    t.row(confusion_row("overall", &s.all));
    t.render(style)
}

fn examples_table(ex: &[Example], style: Style) -> String {
    let mut t = Table::new(&["source", "category", "action", "rule", "text"]);
    for e in ex {
        t.row(vec![
            e.source.clone(),
            e.category.clone(),
            e.action.as_str().to_owned(),
            e.rule.clone().unwrap_or_else(|| "–".into()),
            super::offline::shorten(&e.text, 90),
        ]);
    }
    t.render(style)
}

/// A heading: Markdown `#`s, or the title underlined (`=` for levels 1–2, `-` below).
pub(crate) fn heading(level: usize, title: &str, style: Style) -> String {
    match style {
        Style::Markdown => format!("{} {title}\n\n", "#".repeat(level)),
        Style::Text => {
            let ch = if level <= 2 { '=' } else { '-' };
            format!(
                "{title}\n{}\n",
                ch.to_string().repeat(title.chars().count())
            )
        }
    }
}

/// A blank line between blocks.
const GAP: &str = "\n";

/// A titled table of examples; nothing when there are none.
fn examples_section(out: &mut String, title: &str, ex: &[Example], style: Style) {
    if ex.is_empty() {
        return;
    }
    out.push_str(&format!("{title}:\n{GAP}"));
    out.push_str(&examples_table(ex, style));
    out.push_str(GAP);
}

impl Report {
    /// Renders the report as aligned text or Markdown.
    pub fn render(&self, style: Style) -> String {
        let mut out = String::new();
        out.push_str(&heading(
            2,
            &format!("deliberate eval: {}", self.policy),
            style,
        ));
        out.push_str(&format!(
            "caught = {} · 95 % Wilson intervals in brackets\n{GAP}",
            match self.positive {
                Positive::Block => "decision `block`",
                Positive::BlockOrRedact => "decision `block` or `redact`",
                Positive::Any => "any finding",
            }
        ));
        for d in &self.datasets {
            out.push_str(&heading(3, &format!("{} ({})", d.name, d.format), style));
            if let Some((n, why)) = &d.skipped {
                out.push_str(&format!("left out: {n} {why}\n{GAP}"));
            }
            match &d.result {
                DatasetResult::Cases(c) => {
                    out.push_str(&summary_table(&c.summary, style));
                    out.push_str(GAP);
                    examples_section(&mut out, "worst false blocks", &c.worst_false_blocks, style);
                    examples_section(&mut out, "misses", &c.worst_misses, style);
                    if let Some((old, ch)) = &c.compare {
                        self.render_changes(&mut out, &c.summary, old, ch, style);
                    }
                }
                DatasetResult::Spans { stage, report } => {
                    render_spans(&mut out, *stage, report, style);
                }
                DatasetResult::Refusal { detector, accuracy } => {
                    render_refusal(&mut out, detector, accuracy, style);
                }
            }
        }
        let has_cases = self
            .datasets
            .iter()
            .filter(|d| matches!(d.result, DatasetResult::Cases(_)))
            .count();
        if has_cases > 1 {
            out.push_str(&heading(3, "all labeled data sets", style));
            let mut t = Table::new(SUMMARY_HEADERS);
            t.row(confusion_row("overall", &self.summary.all));
            if let Some(old) = &self.compare_summary {
                t.row(confusion_row("overall (old policy)", &old.all));
            }
            out.push_str(&t.render(style));
            out.push_str(GAP);
        }
        for t in &self.thresholds {
            out.push_str(&format!(
                "threshold {} {}: {} ({})\n",
                t.name,
                t.limit,
                if t.passed { "met" } else { "MISSED" },
                t.value
                    .map_or_else(|| "nothing to measure".into(), |v| format!("{v:.4}"))
            ));
        }
        out
    }

    /// `--compare`: the old and new figures, and the cases that changed.
    fn render_changes(
        &self,
        out: &mut String,
        new: &Summary,
        old: &Summary,
        ch: &Changes,
        style: Style,
    ) {
        out.push_str(&format!(
            "compared with {}: catch rate {} → {}, false-block rate {} → {}\n{GAP}",
            self.compare_policy.as_deref().unwrap_or("old policy"),
            pct(old.all.catch_rate().value),
            pct(new.all.catch_rate().value),
            pct(old.all.false_block_rate().value),
            pct(new.all.false_block_rate().value),
        ));
        out.push_str(&format!(
            "newly caught: {} · newly let through: {}\n{GAP}",
            ch.newly_caught.len(),
            ch.newly_released.len()
        ));
        examples_section(out, "newly caught", &ch.newly_caught, style);
        examples_section(out, "newly let through", &ch.newly_released, style);
    }
}

/// Span recall and precision per entity type, then per rule.
fn render_spans(out: &mut String, stage: Stage, report: &SpanReport, style: Style) {
    out.push_str(&format!(
        "{} texts scanned at the {} stage; a gold span is found when a `redact` finding \
         overlaps it\n{GAP}",
        report.texts,
        stage.as_str()
    ));
    let mut t = Table::new(&["entity type", "gold", "recall", "precision"]);
    for (e, c) in &report.by_entity {
        t.row(vec![
            e.clone(),
            c.gold.to_string(),
            c.recall().display(),
            c.precision().display(),
        ]);
    }
    t.row(vec![
        "overall (types a rule targets)".into(),
        report.recall_targeted().n.to_string(),
        report.recall_targeted().display(),
        report.precision().display(),
    ]);
    t.row(vec![
        "overall (all types)".into(),
        report.gold.to_string(),
        report.recall().display(),
        report.precision().display(),
    ]);
    out.push_str(&t.render(style));
    out.push_str(GAP);
    if !report.by_rule.is_empty() {
        let mut t = Table::new(&["rule", "attributed to", "redactions", "on a gold span"]);
        for (r, s) in &report.by_rule {
            t.row(vec![
                r.clone(),
                s.entity.clone().unwrap_or_else(|| "–".into()),
                s.findings.to_string(),
                s.overlapping.to_string(),
            ]);
        }
        out.push_str(&t.render(style));
        out.push_str(GAP);
    }
}

/// The refusal detector's accuracy against the human labels.
fn render_refusal(out: &mut String, detector: &str, accuracy: &RefusalAccuracy, style: Style) {
    let c = &accuracy.confusion;
    out.push_str(&format!(
        "refusal detector {detector} against human labels (refusal = full or partial \
         refusal)\n{GAP}"
    ));
    let mut t = Table::new(&["measure", "value"]);
    t.row(vec!["accuracy".into(), accuracy.accuracy().display()]);
    t.row(vec!["refusal recall".into(), c.catch_rate().display()]);
    t.row(vec!["refusal precision".into(), c.precision().display()]);
    t.row(vec![
        "compliance graded as refusal".into(),
        c.false_block_rate().display(),
    ]);
    for (l, (n, r)) in &accuracy.by_label {
        t.row(vec![
            format!("{} graded refusal", l.as_str()),
            Rate::new(*r as f64, *n as f64).display(),
        ]);
    }
    out.push_str(&t.render(style));
    out.push_str(GAP);
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{:.1}%", v * 100.0))
}
