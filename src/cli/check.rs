//! `deliberate check POLICY...`

use std::path::PathBuf;
use std::process::ExitCode;

use crate::engine::CompiledPolicy;
use crate::policy::{Level, Stage};

/// Mixed-language sample text for the scan-speed probe.
const PROBE_TEXT: &str = "The quarterly report shows steady growth in all regions; the team \
expects the release before the end of the month. Die Ergebnisse zeigen ein stetiges Wachstum. \
Результаты показывают устойчивый рост во всех регионах. Τα αποτελέσματα δείχνουν σταθερή \
ανάπτυξη. 前四半期の結果は着実な成長を示しています。上一季度的结果显示稳步增长。\n";

/// Below this many MiB/s (release builds) the probe warns.
const SLOW_MIB_S: f64 = 20.0;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files, or directories of them.
    #[arg(required_unless_present = "config")]
    pub policies: Vec<PathBuf>,
    /// A `deliberate serve` config: compile every policy set it names and prove that no set
    /// removes or weakens a `block` or `redact` rule of the base set.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Measure how fast each stage scans mixed-language text (warns when a release build
    /// scans slower than 20 MiB/s: the sign of a regex that fell off the DFA).
    #[arg(long)]
    pub probe: bool,
}

/// Times buffered scans of each stage over about 256 KiB of mixed-language text. Returns
/// whether a stage was slow.
fn probe(p: &CompiledPolicy, file: &std::path::Path) -> bool {
    let text = PROBE_TEXT.repeat(256 * 1024 / PROBE_TEXT.len());
    let mut slow = false;
    for stage in Stage::ALL {
        if p.rules.iter().all(|r| !r.applies_to(stage)) {
            continue;
        }
        let start = std::time::Instant::now();
        let mut rounds = 0u32;
        while rounds < 3 || start.elapsed() < std::time::Duration::from_millis(300) {
            std::hint::black_box(p.scan(&text, stage, None));
            rounds += 1;
        }
        let mib_s = f64::from(rounds) * text.len() as f64
            / start.elapsed().as_secs_f64()
            / (1024.0 * 1024.0);
        let build = if cfg!(debug_assertions) {
            " (debug build: slow by design)"
        } else {
            ""
        };
        outln!(
            "{}: probe: {} scans run at {mib_s:.1} MiB/s on mixed-language text{build}",
            file.display(),
            stage.as_str()
        );
        if !cfg!(debug_assertions) && mib_s < SLOW_MIB_S {
            slow = true;
            outln!(
                "{}:0:0: warning: {} scans run at {mib_s:.1} MiB/s: a regex probably left the fast DFA (Unicode \\b, huge Unicode classes); see the regex warnings above",
                file.display(),
                stage.as_str()
            );
        }
    }
    slow
}

/// One line on the policy's judge readiness: which sections a judge can classify against,
/// how many rules escalate, how each stage is judged. `None` for a policy without judge
/// fields.
fn judge_summary(p: &CompiledPolicy) -> Option<String> {
    let ready: Vec<&str> = p
        .spec
        .sections
        .iter()
        .filter(|s| s.judge.as_ref().is_some_and(|j| j.is_ready()))
        .map(|s| s.id.as_str())
        .collect();
    let examples: usize = p
        .spec
        .sections
        .iter()
        .filter_map(|s| s.judge.as_ref())
        .map(|j| j.examples.len())
        .sum();
    let escalating = p.rules.iter().filter(|r| r.escalate).count();
    if escalating == 0 && p.spec.sections.iter().all(|s| s.judge.is_none()) {
        return None;
    }
    let modes: Vec<String> = Stage::ALL
        .iter()
        .map(|s| format!("{} {:?}", s.as_str(), p.judge.mode(*s)).to_lowercase())
        .collect();
    let line = format!(
        "{} of {} sections judge-ready ({}), {examples} labeled examples, {escalating} escalating \
         rules; {}; streams {:?}, budget {} ms, fail {:?}",
        ready.len(),
        p.spec.sections.len(),
        if ready.is_empty() {
            "none".to_owned()
        } else {
            ready.join(", ")
        },
        modes.join(", "),
        p.judge.stream,
        p.judge.budget.as_millis(),
        p.judge.on_error,
    )
    .to_lowercase();
    Some(line)
}

/// `check --config FILE`: every set compiles and keeps the base's blocks and redactions.
fn run_config(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = match crate::proxy::Config::from_file(path) {
        Ok(c) => c,
        Err(e) => {
            outln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if config.policies.is_empty() {
        outln!(
            "{}:0:0: error: no `policies:`: the base set is empty",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut failed = false;
    let sets = std::iter::once((
        crate::proxy::DEFAULT_SET.to_owned(),
        config.policies.clone(),
    ))
    .chain(
        config
            .selection
            .sets
            .iter()
            .map(|s| (s.name.clone(), s.paths(&config.policies))),
    );
    for (name, paths) in sets {
        match crate::proxy::load_set(&paths) {
            Ok(set) => outln!("{}: set `{name}`: ok: {}", path.display(), set.label()),
            Err(e) => {
                failed = true;
                outln!("{e}");
                outln!("{}: set `{name}`: failed to compile", path.display());
            }
        }
    }
    for r in &config.selection.rules {
        outln!(
            "{}:{}:{}: select → set `{}`",
            path.display(),
            r.at.0,
            r.at.1,
            r.set
        );
    }
    let diags = crate::proxy::overlay::check_sets(&config);
    for d in &diags {
        outln!("{d}");
    }
    failed |= diags.iter().any(|d| d.level == Level::Error);
    if !failed {
        outln!(
            "{}: ok: every request selects one of {} set(s), and each keeps every base block and redact rule",
            path.display(),
            config.selection.sets.len() + 1
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(c) = &args.config {
        let code = run_config(c)?;
        if args.policies.is_empty() || code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    let files = super::policy_files(&args.policies)?;
    if files.is_empty() {
        anyhow::bail!("no policy files found in {:?}", args.policies);
    }
    let mut failed = false;
    for file in files {
        match CompiledPolicy::load(&file) {
            Ok(p) => {
                for w in &p.warnings {
                    outln!("{w}");
                }
                failed |= args.deny_warnings && !p.warnings.is_empty();
                let sections_used = p.spec.sections.len();
                outln!(
                    "{}: ok: policy {} ({} rules, {} sections, {} warnings); stream holdback {} bytes output, {} bytes reasoning",
                    file.display(),
                    p.label(),
                    p.rules.len(),
                    sections_used,
                    p.warnings.len(),
                    p.holdback(Stage::Output),
                    p.holdback(Stage::Reasoning),
                );
                if let Some(j) = judge_summary(&p) {
                    outln!("{}: judge: {j}", file.display());
                }
                if args.probe {
                    let slow = probe(&p, &file);
                    failed |= args.deny_warnings && slow;
                }
            }
            Err(e) => {
                failed = true;
                for d in &e.diagnostics {
                    outln!("{d}");
                }
                let n = e
                    .diagnostics
                    .iter()
                    .filter(|d| d.level == Level::Error)
                    .count();
                outln!("{}: failed: {n} error(s)", file.display());
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
