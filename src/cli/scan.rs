//! `deliberate scan --policy FILE [--stage S] [--format text|json] [TEXT | -]`

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::engine::CompiledPolicy;
use crate::engine::Decision;
use crate::engine::trace::{Piece, stream_trace};
use crate::policy::{Action, Stage};

/// Output formats of `scan`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable, spans highlighted on a terminal.
    Text,
    /// `{"action", "findings": [{"rule","section","stage","start","end","text"}], "output"}`.
    Json,
}

/// Arguments of `scan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// Stage: input, output or reasoning.
    #[arg(long, default_value = "input")]
    pub stage: Stage,
    /// Message role for input scans.
    #[arg(long, default_value = "user")]
    pub role: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Scan as a stream fed in pieces of this many bytes (shows what a client would receive;
    /// output and reasoning stages only).
    #[arg(long)]
    pub stream_chunk: Option<usize>,
    /// The text; `-` or nothing reads standard input.
    pub text: Option<String>,
    /// Also ask a judge model (`--judge URL`) and explain its verdict and what the cascade
    /// decides.
    #[command(flatten)]
    pub judge: super::judge_opts::JudgeArgs,
}

impl clap::ValueEnum for Stage {
    fn value_variants<'a>() -> &'a [Self] {
        &Stage::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policy = match CompiledPolicy::load(&args.policy) {
        Ok(p) => p,
        Err(e) => {
            for d in &e.diagnostics {
                eprintln!("{d}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let text = match args.text.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            s
        }
        Some(t) => t.to_owned(),
    };
    let role = (args.stage == Stage::Input).then_some(args.role.as_str());
    if args.stream_chunk.is_some() && args.stage == Stage::Input {
        // The stream scanner has no role (it scans answers); a trace of input pieces would
        // apply every input rule and disagree with the buffered scan for role-bound rules.
        anyhow::bail!(
            "--stream-chunk traces a streamed answer: use it with --stage output or reasoning \
             (a gateway reads a request whole before it scans its input)"
        );
    }
    let (decision, pieces) = match args.stream_chunk {
        None => (policy.scan(&text, args.stage, role), None),
        Some(n) => {
            let t = stream_trace(&policy, args.stage, &text, n);
            (t.decision, Some(t.pieces))
        }
    };
    let judged = match args.judge.config() {
        Some(_) => Some(explain_judge(&args, &policy, &text, &decision)?),
        None => None,
    };
    match args.format {
        Format::Json => {
            let mut v = json_value(&decision);
            if let (Some(j), Some(obj)) = (&judged, v.as_object_mut()) {
                obj.insert("judge".to_owned(), j.clone());
            }
            if let (Some(pieces), Some(obj)) = (&pieces, v.as_object_mut()) {
                let list = pieces
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "received": p.received, "frontier": p.frontier, "released": p.released,
                        })
                    })
                    .collect();
                obj.insert("pieces".to_owned(), serde_json::Value::Array(list));
            }
            outln!("{v}");
        }
        Format::Text => {
            print_text(&policy, &text, &decision, std::io::stdout().is_terminal());
            if let Some(pieces) = &pieces {
                print_pieces(pieces);
            }
            if let Some(j) = &judged {
                print_judge(j);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the judge about `text`: against the escalated sections when the rules escalate, else
/// against the policy's judged sections. Returns the explanation as JSON.
fn explain_judge(
    args: &Args,
    policy: &CompiledPolicy,
    text: &str,
    d: &Decision,
) -> anyhow::Result<serde_json::Value> {
    let rt = super::judge_opts::runtime()?;
    let _guard = rt.enter();
    let Some(judge) = args.judge.client()? else {
        anyhow::bail!("no judge");
    };
    let escalation = policy.escalation(d);
    let sections = escalation
        .as_ref()
        .map(|e| e.sections.clone())
        .unwrap_or_default();
    let (asked, res) = super::judge_opts::judge_blocking(
        &rt,
        &judge,
        policy,
        args.stage,
        &sections,
        text,
        args.judge.judge_timeout,
    );
    let plain_block = escalation.is_none() && d.action == Action::Block;
    let cascade = if plain_block {
        "block (a rule blocks on its own; the gateway would not ask the judge)"
    } else {
        match &res {
            Ok(j) if j.verdict.violation => "block (the judge found a violation)",
            Ok(_) if escalation.is_some() => "the escalated rules are set aside (no violation)",
            Ok(_) => "as the rules decided (no violation)",
            Err(_) => match policy.judge.on_error {
                crate::engine::judge::FailMode::Closed => "block (the judge failed; fail closed)",
                crate::engine::judge::FailMode::Open => "allow (the judge failed; fail open)",
            },
        }
    };
    Ok(serde_json::json!({
        "url": judge.url(),
        "sections": asked,
        "escalated_rules": escalation.map(|e| e.rules).unwrap_or_default(),
        "verdict": res.as_ref().ok().map(|j| &j.verdict),
        "error": res.as_ref().err().map(ToString::to_string),
        "seconds": res.as_ref().map_or(0.0, |j| j.elapsed.as_secs_f64()),
        "cascade": cascade,
    }))
}

fn print_judge(j: &serde_json::Value) {
    let s = |k: &str| j[k].as_str().unwrap_or("").to_owned();
    outln!("judge:   {} (sections: {})", s("url"), j["sections"]);
    if let Some(r) = j["escalated_rules"].as_array().filter(|a| !a.is_empty()) {
        outln!("escalated by: {}", serde_json::Value::Array(r.clone()));
    }
    match j["verdict"].as_object() {
        Some(v) => {
            outln!(
                "verdict: violation={} section={} rule_ids={} confidence={} ({:.2} s)",
                v["violation"],
                v["section"],
                v["rule_ids"],
                v["confidence"],
                j["seconds"].as_f64().unwrap_or(0.0)
            );
            outln!("rationale: {}", v["rationale"].as_str().unwrap_or(""));
        }
        None => outln!("verdict: none: {}", s("error")),
    }
    outln!("cascade: {}", s("cascade"));
}

fn print_pieces(pieces: &[Piece]) {
    outln!("pieces:  (received / frontier / released bytes; held = received - released)");
    for (i, p) in pieces.iter().enumerate() {
        outln!(
            "  {:>4}  {:>6} {:>6} {:>6}  held {}",
            i + 1,
            p.received,
            p.frontier,
            p.released,
            p.received - p.released
        );
    }
}

/// The JSON of DESIGN.md.
fn json_value(d: &Decision) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = d
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "rule": f.rule, "section": f.section, "stage": f.stage,
                "start": f.start, "end": f.end, "text": f.text,
            })
        })
        .collect();
    serde_json::json!({"action": d.action, "findings": findings, "output": d.output})
}

fn print_text(policy: &CompiledPolicy, text: &str, d: &Decision, color: bool) {
    outln!("policy:  {}", policy.label());
    outln!("action:  {}", d.action.as_str());
    // The text with spans marked.
    let mut marks: Vec<(usize, usize, Action)> = d
        .findings
        .iter()
        .map(|f| (f.start, f.end, f.action))
        .collect();
    marks.sort_by_key(|m| (m.0, std::cmp::Reverse(m.1)));
    let mut shown = String::new();
    let mut pos = 0;
    for (s, e, a) in marks {
        if s < pos {
            continue;
        }
        shown.push_str(&text[pos..s]);
        let (open, close) = if color {
            let c = match a {
                Action::Block => "\x1b[1;41m",
                Action::Redact => "\x1b[1;43m",
                Action::Flag => "\x1b[1;46m",
                Action::Allow => "\x1b[1;42m",
            };
            (c.to_owned(), "\x1b[0m".to_owned())
        } else {
            ("[[".to_owned(), format!("]]{{{}}}", a.as_str()))
        };
        shown.push_str(&open);
        shown.push_str(&text[s..e]);
        shown.push_str(&close);
        pos = e;
    }
    shown.push_str(&text[pos..]);
    outln!("text:    {shown}");
    if d.findings.is_empty() {
        outln!("findings: none");
    } else {
        outln!("findings:");
        for f in &d.findings {
            outln!(
                "  {:<7} {} (section {}) bytes {}..{} {:?}",
                f.action.as_str(),
                f.rule,
                f.section.as_deref().unwrap_or("-"),
                f.start,
                f.end,
                f.text
            );
        }
    }
    outln!("output:  {}", d.output);
}
