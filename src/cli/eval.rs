//! `deliberate eval --policy FILE --dataset FILE... [--format table|json|markdown|html]
//! [--compare OLD_POLICY] [--max-false-block-rate X] [--min-catch-rate Y]
//! [--upstream URL [--model NAME]]`
//!
//! Offline (the default): the policy's rules over labeled data sets; see
//! [`crate::eval::dataset`] for the formats and [`crate::eval::offline`] for the figures.
//! With `--judge URL`: rules alone, judge alone and the cascade ([`crate::eval::cascade`]).
//! With `--upstream`: every labeled prompt also goes to a real model in two arms, with and
//! without spec injection; see [`crate::eval::online`].
//!
//! Exit status: 0 when every threshold is met, 1 when one is missed, 2 on errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::engine::CompiledPolicy;
use crate::eval::dataset::{self, ReadOptions};
use crate::eval::refusal_detector::RefusalDetector;
use crate::eval::report::Style;
use crate::eval::{EvalOptions, Positive, online, run_offline};
use crate::policy::LoadError;
use crate::policy::Stage;

/// Output formats of `eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text tables.
    Table,
    /// A JSON object with `summary` (`n`, `catch_rate`, `false_block_rate`, `precision`,
    /// `recall`, `by_category`; every rate is `{value, ci, k, n}`), `datasets`, `thresholds`.
    Json,
    /// GitHub Markdown tables (for READMEs and CI summaries).
    Markdown,
    /// One self-contained HTML page: bars with intervals, highlighted examples, A/B arms,
    /// `--compare` flips (the playground's report view opens it).
    Html,
}

/// Arguments of `eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// Data set files: JSONL, CSV/TSV, BIG-bench task.json, XSTest prompts or completions,
    /// presidio span data, JailbreakBench artifacts (detected by name and shape).
    #[arg(long, num_args = 1.., required_unless_present = "replay")]
    pub dataset: Vec<PathBuf>,
    /// An audit log written with `audit: {record_texts: true}`: every recorded text is a case
    /// labeled by what the live policy did to it, so the report (with `--compare live.yaml`:
    /// the texts newly blocked or let through, per rule) says what the candidate would have
    /// decided differently.
    #[arg(long, value_name = "AUDIT_JSONL")]
    pub replay: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// An older policy: report which cases are newly caught or newly let through.
    #[arg(long, value_name = "OLD_POLICY")]
    pub compare: Option<PathBuf>,
    /// Exit 1 when the overall false-block rate is above this (0..1).
    #[arg(long, value_name = "X")]
    pub max_false_block_rate: Option<f64>,
    /// Exit 1 when the overall catch rate is below this (0..1).
    #[arg(long, value_name = "Y")]
    pub min_catch_rate: Option<f64>,
    /// What counts as caught.
    #[arg(long, value_enum, default_value = "block")]
    pub positive: Positive,
    /// CSV column / JSONL key holding the text (default: text, prompt, input, content, question).
    #[arg(long, value_name = "C")]
    pub text_column: Option<String>,
    /// CSV column / JSONL key holding the label (default: label).
    #[arg(long, value_name = "L")]
    pub label_column: Option<String>,
    /// CSV column / JSONL key holding the category (default: category, type).
    #[arg(long, value_name = "K")]
    pub category_column: Option<String>,
    /// A label value that means unsafe (repeatable); every other label then means safe.
    #[arg(long, value_name = "V")]
    pub unsafe_label: Vec<String>,
    /// Stage to scan labeled prompts at (default input; JSONL rows may set `stage`).
    #[arg(long)]
    pub stage: Option<Stage>,
    /// Stage to scan PII span data at.
    #[arg(long, default_value = "output")]
    pub span_stage: Stage,
    /// How many worst false blocks and misses to list per data set.
    #[arg(long, default_value_t = 10)]
    pub examples: usize,
    /// The refusal-detector policy (default: the built-in policies/refusal-detector.yaml).
    #[arg(long, value_name = "FILE")]
    pub refusal_detector: Option<PathBuf>,

    // --- online mode ---
    /// Base URL of an OpenAI-compatible endpoint: run each labeled prompt through the model,
    /// with and without spec injection.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Model name sent upstream.
    #[arg(long, default_value = "default")]
    pub model: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// `max_tokens` per answer.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
    /// Only N prompts of each data set, evenly spaced through it (online mode).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// JSONL cache of answers; an interrupted run continues from it
    /// (default: `.deliberate-eval-cache.jsonl`).
    #[arg(
        long,
        value_name = "FILE",
        default_value = ".deliberate-eval-cache.jsonl"
    )]
    pub cache: PathBuf,
    /// Online mode: write every prompt with both arms' outcomes and answers here (JSONL: `prompt`,
    /// `label`, `sections` injected, per arm `outcome` and `answer`), for reading the answers.
    /// The report lists `--examples` of each direction in which the arms differ.
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Online mode: a system message of the client's own, sent in both arms before each
    /// prompt (a deployed application's system prompt). Without one, the spec arm's injected
    /// system message takes the place of the chat template's default system prompt while the
    /// no-spec arm keeps it, so the arms differ by more than the spec.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Online mode: the model's default system prompt (what its chat template adds when a
    /// conversation has no system message), kept at the head of the spec arm's injected message
    /// when there is no `--system`, as the gateway's `injection.default_system` does. The
    /// no-spec arm gets it from the template.
    #[arg(long, value_name = "TEXT")]
    pub default_system: Option<String>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// How prompts reach the model: through an in-process gateway per arm (the full
    /// pipeline), or with the engine called directly.
    #[arg(long, value_enum, default_value = "gateway")]
    pub route: online::Route,
    /// API key sent as `Authorization: Bearer` (or set DELIBERATE_EVAL_API_KEY).
    #[arg(long, env = "DELIBERATE_EVAL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    // --- judge ---
    /// With `--judge URL`: the rules alone, the judge alone and the cascade on the labeled
    /// texts (catch rate, false blocks, precision, judge calls and seconds per 100 texts).
    #[command(flatten)]
    pub judge: super::judge_opts::JudgeArgs,
}

fn load_policy(path: &PathBuf) -> anyhow::Result<std::sync::Arc<CompiledPolicy>> {
    CompiledPolicy::load(path).map_err(|e: LoadError| {
        let msgs: Vec<String> = e.diagnostics.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!(
            "cannot load policy {}:\n{}",
            path.display(),
            msgs.join("\n")
        )
    })
}

/// Data set arguments: files as given; a directory stands for the data files directly inside it
/// (`*.jsonl`, `*.ndjson`, `*.csv`, `*.tsv`, `*.json`), sorted, and must hold at least one.
fn dataset_files(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    super::files_in(
        args,
        &["jsonl", "ndjson", "csv", "tsv", "json"],
        Some("data set"),
    )
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    for (name, v) in [
        ("--max-false-block-rate", args.max_false_block_rate),
        ("--min-catch-rate", args.min_catch_rate),
    ] {
        if let Some(v) = v
            && !(0.0..=1.0).contains(&v)
        {
            anyhow::bail!("{name} takes a share between 0 and 1, not {v}");
        }
    }
    let policy = load_policy(&args.policy)?;
    let old = args.compare.as_ref().map(load_policy).transpose()?;
    let opts = ReadOptions {
        text_column: args.text_column.clone(),
        label_column: args.label_column.clone(),
        category_column: args.category_column.clone(),
        unsafe_labels: args.unsafe_label.clone(),
        stage: args.stage,
    };
    let mut datasets = Vec::new();
    for path in &dataset_files(&args.dataset)? {
        datasets.extend(dataset::read(path, &opts)?);
    }
    for path in &args.replay {
        datasets.push(dataset::read_audit(path)?);
    }
    let detector = match &args.refusal_detector {
        Some(p) => Some(RefusalDetector::load(p).map_err(|e| {
            let msgs: Vec<String> = e.diagnostics.iter().map(|d| d.to_string()).collect();
            anyhow::anyhow!(
                "cannot load refusal detector {}:\n{}",
                p.display(),
                msgs.join("\n")
            )
        })?),
        None => None,
    };
    let eval_opts = EvalOptions {
        positive: args.positive,
        span_stage: args.span_stage,
        examples: args.examples,
        refusal_detector: detector.clone(),
        max_false_block_rate: args.max_false_block_rate,
        min_catch_rate: args.min_catch_rate,
    };
    let report = run_offline(&policy, old.as_ref(), &datasets, &eval_opts)
        .context("loading the built-in refusal detector")?;

    let online_report = match &args.upstream {
        Some(url) => {
            let detector = match detector {
                Some(d) => d,
                None => RefusalDetector::builtin().context("built-in refusal detector")?,
            };
            let cfg = online::OnlineConfig {
                upstream: url.clone(),
                model: args.model.clone(),
                concurrency: args.concurrency.max(1),
                max_tokens: args.max_tokens,
                limit: args.limit,
                cache: args.cache.clone(),
                timeout: std::time::Duration::from_secs(args.timeout),
                api_key: args.api_key.clone(),
                route: args.route,
                policy_path: args.policy.clone(),
                examples: args.examples,
                answers: args.answers.clone(),
                system: args.system.clone(),
                default_system: args.default_system.clone(),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            Some(rt.block_on(online::run(&policy, &detector, &datasets, &cfg))?)
        }
        None => None,
    };
    let cascade = match args.judge.config() {
        Some(_) => {
            let cases: Vec<dataset::Case> = datasets
                .iter()
                .filter_map(|d| match &d.content {
                    dataset::Content::Cases(c) => Some(c.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            let _guard = rt.enter();
            let judge = args.judge.client()?.context("no judge")?;
            Some(rt.block_on(crate::eval::cascade::run_cascade(
                &policy,
                &judge,
                args.judge.judge_timeout,
                &cases,
                args.judge.judge_concurrency,
            )))
        }
        None => None,
    };

    match args.format {
        Format::Json => {
            let mut v = report.to_json();
            if let Some(o) = &online_report {
                v["online"] = o.to_json();
            }
            if let Some(c) = &cascade {
                v["cascade"] = c.to_json();
            }
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Html => {
            out!(
                "{}",
                crate::eval::html::render(&report, online_report.as_ref(), &policy, old.as_deref())
            );
        }
        Format::Table | Format::Markdown => {
            let style = if args.format == Format::Markdown {
                Style::Markdown
            } else {
                Style::Text
            };
            out!("{}", report.render(style));
            if let Some(o) = &online_report {
                outln!();
                out!("{}", o.render(style));
            }
            if let Some(c) = &cascade {
                outln!();
                outln!("Rules, judge and cascade on the labeled texts:");
                out!("{}", c.to_markdown());
            }
        }
    }
    for t in report.thresholds.iter().filter(|t| !t.passed) {
        eprintln!(
            "threshold missed: {} is {:.4}, limit {}",
            t.name,
            t.value.unwrap_or(f64::NAN),
            t.limit
        );
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
