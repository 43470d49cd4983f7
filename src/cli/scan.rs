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
    /// Scan as a stream fed in pieces of this many bytes (shows what a client would receive).
    #[arg(long)]
    pub stream_chunk: Option<usize>,
    /// The text; `-` or nothing reads standard input.
    pub text: Option<String>,
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
    let (decision, pieces) = match args.stream_chunk {
        None => (policy.scan(&text, args.stage, role), None),
        Some(n) => {
            let t = stream_trace(&policy, args.stage, &text, n);
            (t.decision, Some(t.pieces))
        }
    };
    match args.format {
        Format::Json => {
            let mut v = json_value(&decision);
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
        }
    }
    Ok(ExitCode::SUCCESS)
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
