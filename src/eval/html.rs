//! `deliberate eval --format html`: the whole evaluation as one self-contained page — no
//! script, no external file — that a browser (or the playground's report view) opens as is.
//!
//! Per data set and overall: catch and false-block rates per category as bars with their 95 %
//! Wilson intervals drawn as a band; the worst misses and false blocks with the spans the
//! policy found highlighted; with `--compare`, the cases each policy decides differently; with
//! `--upstream`, the A/B arms side by side.

use std::fmt::Write as _;

use super::metrics::{Confusion, Rate};
use super::offline::{Example, Summary};
use super::online::OnlineReport;
use super::report::{DatasetResult, Report};
use crate::engine::CompiledPolicy;
use crate::policy::Stage;

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;color:#1d232b;margin:24px;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #d9dde3}
h3{font-size:14px;margin:18px 0 6px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaecf0;vertical-align:top}
th{color:#667085;font-weight:600}.muted{color:#667085}
.bar{position:relative;height:14px;width:260px;background:#f2f4f7;border-radius:3px;display:inline-block;vertical-align:middle}
.fill{position:absolute;left:0;top:0;bottom:0;border-radius:3px}.catch .fill{background:#12b76a}
.fb .fill{background:#f04438}.ci{position:absolute;top:-2px;bottom:-2px;border:1px solid #101828;border-radius:2px;background:rgba(16,24,40,.12)}
.num{font:12px ui-monospace,monospace;margin-left:8px}
.text{font:12px/1.5 ui-monospace,monospace;white-space:pre-wrap;word-break:break-word}
mark{background:#fde3e1;border-bottom:2px solid #d92d20;padding:0 1px}
mark.flag{background:#e0f2fe;border-color:#026aa2}mark.redact{background:#fef0c7;border-color:#b54708}
.arms{display:flex;gap:16px}.arm{flex:1;border:1px solid #d9dde3;border-radius:8px;padding:10px}
.pass{color:#067647}.failx{color:#d92d20}";

/// Renders the report as one HTML page. `policy` (and `old`, with `--compare`) re-scan the
/// examples shown, to highlight the spans they match.
pub fn render(
    report: &Report,
    online: Option<&OnlineReport>,
    policy: &CompiledPolicy,
    old: Option<&CompiledPolicy>,
) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>deliberate eval: {}</title><style>{STYLE}</style></head><body>",
        esc(&report.policy)
    );
    let _ = write!(
        o,
        "<h1 class=\"eval-report\">deliberate eval — policy <code>{}</code></h1><p class=\"muted\">caught means: {}",
        esc(&report.policy),
        esc(report.positive.as_str())
    );
    if let Some(c) = &report.compare_policy {
        let _ = write!(o, " · compared with <code>{}</code>", esc(c));
    }
    o.push_str("</p>");
    for t in &report.thresholds {
        let _ = write!(
            o,
            "<p class=\"{}\">threshold {}: {} (limit {})</p>",
            if t.passed { "pass" } else { "failx" },
            t.name,
            t.value.map_or("–".to_owned(), |v| format!("{v:.4}")),
            t.limit
        );
    }
    o.push_str("<h2>All labeled cases</h2>");
    summary_table(&mut o, &report.summary, report.compare_summary.as_ref());
    for ds in &report.datasets {
        let _ = write!(
            o,
            "<h2>{} <span class=\"muted\">({})</span></h2>",
            esc(&ds.name),
            ds.format
        );
        if let Some((n, why)) = &ds.skipped {
            let _ = write!(o, "<p class=\"muted\">{n} rows skipped: {}</p>", esc(why));
        }
        match &ds.result {
            DatasetResult::Cases(c) => {
                summary_table(&mut o, &c.summary, c.compare.as_ref().map(|(s, _)| s));
                examples(
                    &mut o,
                    "Worst false blocks (safe, caught)",
                    &c.worst_false_blocks,
                    policy,
                );
                examples(
                    &mut o,
                    "Worst misses (unsafe, not caught)",
                    &c.worst_misses,
                    policy,
                );
                if let (Some((_, ch)), Some(old)) = (&c.compare, old) {
                    examples(
                        &mut o,
                        "Newly caught (by this policy, not the old one)",
                        &ch.newly_caught,
                        policy,
                    );
                    examples(
                        &mut o,
                        "Newly let through (caught by the old policy only)",
                        &ch.newly_released,
                        old,
                    );
                }
            }
            DatasetResult::Spans { stage, report } => {
                let _ = write!(
                    o,
                    "<p>PII spans at stage {}: {} texts.</p><table><tr><th></th><th>rate</th></tr>",
                    stage.as_str(),
                    report.texts
                );
                rate_row(&mut o, "recall", &report.recall(), "catch");
                rate_row(&mut o, "precision", &report.precision(), "catch");
                o.push_str("</table>");
            }
            DatasetResult::Refusal { detector, accuracy } => {
                let _ = write!(
                    o,
                    "<p>Refusal detector <code>{}</code></p><table><tr><th></th><th>rate</th></tr>",
                    esc(detector)
                );
                rate_row(&mut o, "accuracy", &accuracy.confusion.accuracy(), "catch");
                rate_row(&mut o, "recall", &accuracy.confusion.catch_rate(), "catch");
                rate_row(
                    &mut o,
                    "precision",
                    &accuracy.confusion.precision(),
                    "catch",
                );
                o.push_str("</table>");
            }
        }
    }
    if let Some(on) = online {
        arms(&mut o, on);
    }
    o.push_str("</body></html>\n");
    o
}

fn summary_table(o: &mut String, s: &Summary, old: Option<&Summary>) {
    o.push_str("<table class=\"categories\"><tr><th>category</th><th>n</th><th>catch rate (unsafe caught)</th><th>false-block rate (safe caught)</th></tr>");
    let mut rows: Vec<(&str, &Confusion)> = vec![("all", &s.all)];
    rows.extend(s.by_category.iter().map(|(k, v)| (k.as_str(), v)));
    for (name, c) in rows {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            c.n(),
            bar(&c.catch_rate(), "catch"),
            bar(&c.false_block_rate(), "fb")
        );
        if let Some(oc) = old.and_then(|old| {
            if name == "all" {
                Some(&old.all)
            } else {
                old.by_category.get(name)
            }
        }) {
            let _ = write!(
                o,
                "<tr class=\"muted\"><td>↳ old policy</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                oc.n(),
                bar(&oc.catch_rate(), "catch"),
                bar(&oc.false_block_rate(), "fb")
            );
        }
    }
    o.push_str("</table>");
}

fn rate_row(o: &mut String, name: &str, r: &Rate, class: &str) {
    let _ = write!(o, "<tr><td>{name}</td><td>{}</td></tr>", bar(r, class));
}

/// A bar for `r`, its Wilson interval as a band over it, and the figures.
fn bar(r: &Rate, class: &str) -> String {
    let pct = |v: f64| (v * 100.0).clamp(0.0, 100.0);
    match (r.value, r.lo, r.hi) {
        (Some(v), Some(lo), Some(hi)) => format!(
            "<span class=\"bar {class}\" title=\"95% Wilson interval {:.1}–{:.1}%\"><span class=\"fill\" style=\"width:{:.1}%\"></span><span class=\"ci\" style=\"left:{:.1}%;width:{:.1}%\"></span></span><span class=\"num\">{}</span>",
            pct(lo),
            pct(hi),
            pct(v),
            pct(lo),
            (pct(hi) - pct(lo)).max(0.5),
            esc(&r.display())
        ),
        _ => "<span class=\"muted\">–</span>".to_owned(),
    }
}

fn examples(o: &mut String, title: &str, list: &[Example], policy: &CompiledPolicy) {
    if list.is_empty() {
        return;
    }
    let _ = write!(
        o,
        "<h3>{title}</h3><table class=\"examples\"><tr><th>case</th><th>category</th><th>action</th><th>text (spans the policy matches)</th></tr>"
    );
    for e in list {
        let _ = write!(
            o,
            "<tr><td class=\"muted\">{}</td><td>{}</td><td>{} {}</td><td class=\"text\">{}</td></tr>",
            esc(&e.source),
            esc(&e.category),
            e.action.as_str(),
            e.rule.as_deref().map(esc).unwrap_or_default(),
            highlighted(&e.text, policy)
        );
    }
    o.push_str("</table>");
}

/// `text` with the spans `policy` finds marked (input stage, then output if nothing fired
/// there: the examples do not say their stage).
fn highlighted(text: &str, policy: &CompiledPolicy) -> String {
    let mut d = policy.scan(text, Stage::Input, None);
    if d.findings.is_empty() {
        d = policy.scan(text, Stage::Output, None);
    }
    let mut spans: Vec<(usize, usize, &'static str)> = d
        .findings
        .iter()
        .map(|f| (f.start, f.end, f.action.as_str()))
        .collect();
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut out = String::new();
    let mut pos = 0;
    for (s, e, a) in spans {
        if s < pos || e > text.len() {
            continue;
        }
        out.push_str(&esc(&text[pos..s]));
        let _ = write!(
            out,
            "<mark class=\"{a}\" title=\"{a}\">{}</mark>",
            esc(&text[s..e])
        );
        pos = e;
    }
    out.push_str(&esc(&text[pos..]));
    out
}

fn arms(o: &mut String, on: &OnlineReport) {
    let _ = write!(
        o,
        "<h2>A/B through <code>{}</code> (model {})</h2><div class=\"arms\">",
        esc(&on.upstream),
        esc(&on.model)
    );
    for a in &on.arms {
        let _ = write!(
            o,
            "<div class=\"arm\"><h3>arm <code>{}</code></h3><table><tr><td>unsafe answered safely</td><td>{}</td></tr><tr><td>safe answered</td><td>{}</td></tr><tr><td>input blocked</td><td>{}</td></tr><tr><td>output blocked / redacted</td><td>{} / {}</td></tr><tr><td>model refused</td><td>{}</td></tr><tr><td>injected requests</td><td>{} (≈{:.0} tokens each)</td></tr></table></div>",
            esc(&a.name),
            bar(&a.not_unsafe(), "catch"),
            bar(&a.not_overrefuse(), "catch"),
            a.input_blocked,
            a.output_blocked,
            a.output_redacted,
            a.model_refused,
            a.injected,
            a.injected_tokens_approx()
        );
    }
    o.push_str("</div>");
    for n in &on.notes {
        let _ = write!(o, "<p class=\"muted\">{}</p>", esc(n));
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_the_interval_and_text_is_escaped() {
        let b = bar(&Rate::new(8.0, 10.0), "catch");
        assert!(b.contains("width:80.0%"), "{b}");
        assert!(b.contains("class=\"ci\""), "{b}");
        assert!(bar(&Rate::new(0.0, 0.0), "fb").contains('–'));
        let p = CompiledPolicy::from_yaml_str(
            "policy: h\nrules: [{id: b, match: {keywords: [bomb]}, action: block}]\n",
            "h.yaml",
        )
        .expect("compiles");
        assert_eq!(
            highlighted("<a> bomb", &p),
            "&lt;a&gt; <mark class=\"block\" title=\"block\">bomb</mark>"
        );
    }

    #[test]
    fn ab_arms_stand_side_by_side() {
        let arm = |name: &str, safe: u64| crate::eval::online::ArmReport {
            name: name.into(),
            unsafe_n: 10,
            unsafe_safe: safe,
            safe_n: 10,
            safe_answered: 9,
            ..Default::default()
        };
        let on = OnlineReport {
            upstream: "http://127.0.0.1:1/v1".into(),
            arms: vec![arm("spec", 8), arm("no-spec", 3)],
            ..Default::default()
        };
        let mut o = String::new();
        arms(&mut o, &on);
        let spec = o.find("arm <code>spec</code>").expect("spec arm");
        let plain = o.find("arm <code>no-spec</code>").expect("no-spec arm");
        assert!(
            spec < plain && o.starts_with("<h2>") && o.contains("class=\"arms\""),
            "{o}"
        );
        assert!(
            o.contains("width:80.0%") && o.contains("width:30.0%"),
            "{o}"
        );
    }
}
