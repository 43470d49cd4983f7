//! `deliberate check POLICY...`

use std::path::PathBuf;
use std::process::ExitCode;

use crate::policy::{CompiledPolicy, Level, Stage};

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files, or directories of them.
    #[arg(required = true)]
    pub policies: Vec<PathBuf>,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = super::policy_files(&args.policies)?;
    if files.is_empty() {
        anyhow::bail!("no policy files found in {:?}", args.policies);
    }
    let mut failed = false;
    for file in files {
        match CompiledPolicy::load(&file) {
            Ok(p) => {
                for w in &p.warnings {
                    println!("{w}");
                }
                failed |= args.deny_warnings && !p.warnings.is_empty();
                let sections_used = p.spec.sections.len();
                println!(
                    "{}: ok: policy {} ({} rules, {} sections, {} warnings); stream holdback {} bytes output, {} bytes reasoning",
                    file.display(),
                    p.label(),
                    p.rules.len(),
                    sections_used,
                    p.warnings.len(),
                    p.holdback(Stage::Output),
                    p.holdback(Stage::Reasoning),
                );
            }
            Err(e) => {
                failed = true;
                for d in &e.diagnostics {
                    println!("{d}");
                }
                let n = e
                    .diagnostics
                    .iter()
                    .filter(|d| d.level == Level::Error)
                    .count();
                println!("{}: failed: {n} error(s)", file.display());
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
