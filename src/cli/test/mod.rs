//! `deliberate test [POLICY|DIR]... [--format text|json|junit] [--coverage]`
//!
//! Runs each rule's inline examples and every case of the test files, buffered and streamed:
//! split in two at every character boundary, and fed byte by byte. A case passes only if all
//! of these agree with the expectation. The spec sections' judge examples run too
//! (`judge_examples.rs`: against the rules, recorded verdicts, or a live `--judge`).

mod judge_examples;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::engine::CompiledPolicy;
use crate::engine::cases::{Case, example_cases, file_cases, run_case as judge};
use crate::policy::parse_yaml;
use crate::policy::raw::RawTestFile;

/// Output formats of `test`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// One line per failure and a summary.
    Text,
    /// A JSON report.
    Json,
    /// JUnit XML, for CI systems.
    Junit,
}

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files, test files, or directories (a directory's `*.yaml` are policies and its
    /// `tests/*.yaml` test files). Default: `policies`.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// List rules that no passing case made fire.
    #[arg(long)]
    pub coverage: bool,
    /// With `--judge URL`: write the verdicts on the spec's judge examples to
    /// `tests/<policy>.verdicts.json`, which later runs replay without a model.
    #[arg(long, requires = "judge")]
    pub record: bool,
    /// Judge the spec's labeled examples with a judge model (`--judge URL`).
    #[command(flatten)]
    pub judge: crate::cli::judge_opts::JudgeArgs,
}

/// One test case's result.
#[derive(Debug, Serialize)]
pub struct CaseResult {
    /// Policy file.
    pub policy: String,
    /// Case name.
    pub name: String,
    /// Passed?
    pub passed: bool,
    /// Why not.
    pub failure: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("policies")]
    } else {
        args.paths.clone()
    };
    let mut policies: Vec<PathBuf> = Vec::new();
    let mut test_files: Vec<PathBuf> = Vec::new();
    for p in &paths {
        if p.is_dir() {
            policies.extend(crate::cli::policy_files(std::slice::from_ref(p))?);
            let tests = p.join("tests");
            if tests.is_dir() {
                test_files.extend(crate::cli::policy_files(&[tests])?);
            }
        } else if looks_like_test_file(p) {
            test_files.push(p.clone());
        } else {
            policies.push(p.clone());
        }
    }
    let mut results = Vec::new();
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut all_rules: BTreeSet<(String, String)> = BTreeSet::new();
    let mut load_failed = false;
    // Inline examples.
    for file in &policies {
        let label = file.display().to_string();
        let policy = match CompiledPolicy::load(file) {
            Ok(p) => p,
            Err(e) => {
                load_failed = true;
                results.push(CaseResult {
                    policy: label,
                    name: "load".into(),
                    passed: false,
                    failure: Some(e.to_string()),
                });
                continue;
            }
        };
        for rule in &policy.rules {
            all_rules.insert((label.clone(), rule.id.clone()));
        }
        for case in example_cases(&policy) {
            let r = run_case(&policy, &case, &label, &mut covered);
            results.push(r);
        }
        results.extend(judge_examples::run(
            &policy,
            file,
            &label,
            &args.judge,
            args.record,
        )?);
    }
    // Test files.
    for tf in &test_files {
        let src = std::fs::read_to_string(tf)?;
        let raw: RawTestFile = match parse_yaml(&src) {
            Ok(r) => r,
            Err((loc, msg)) => {
                load_failed = true;
                results.push(CaseResult {
                    policy: tf.display().to_string(),
                    name: "parse".into(),
                    passed: false,
                    failure: Some(format!(
                        "{}:{}:{}: {msg}",
                        tf.display(),
                        loc.line,
                        loc.column
                    )),
                });
                continue;
            }
        };
        let policy_path = match &raw.policy {
            Some(p) => tf.parent().unwrap_or(Path::new(".")).join(p),
            None => match policies.as_slice() {
                [only] => only.clone(),
                _ => anyhow::bail!(
                    "{}: no `policy:` given and not exactly one policy named",
                    tf.display()
                ),
            },
        };
        let label = policy_path.display().to_string();
        let policy = match CompiledPolicy::load(&policy_path) {
            Ok(p) => p,
            Err(e) => {
                load_failed = true;
                results.push(CaseResult {
                    policy: label,
                    name: tf.display().to_string(),
                    passed: false,
                    failure: Some(e.to_string()),
                });
                continue;
            }
        };
        for rule in &policy.rules {
            all_rules.insert((label.clone(), rule.id.clone()));
        }
        for case in file_cases(&raw, &tf.display().to_string()) {
            results.push(run_case(&policy, &case, &label, &mut covered));
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    let passed = results.len() - failed;
    let uncovered: Vec<&(String, String)> = all_rules.difference(&covered).collect();
    match args.format {
        Format::Text => {
            for r in results.iter().filter(|r| !r.passed) {
                outln!(
                    "FAIL {} :: {}\n     {}",
                    r.policy,
                    r.name,
                    r.failure.as_deref().unwrap_or("")
                );
            }
            if args.coverage {
                if uncovered.is_empty() {
                    outln!("coverage: every rule fired in at least one passing case");
                } else {
                    outln!(
                        "coverage: {} rule(s) no passing case made fire:",
                        uncovered.len()
                    );
                    for (p, r) in &uncovered {
                        outln!("  {p} :: {r}");
                    }
                }
            }
            outln!("{passed} passed, {failed} failed");
        }
        Format::Json => {
            let v = serde_json::json!({
                "passed": passed, "failed": failed, "results": results,
                "uncovered": uncovered.iter().map(|(p, r)| serde_json::json!({"policy": p, "rule": r})).collect::<Vec<_>>(),
            });
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Junit => print_junit(&results, failed),
    }
    Ok(if failed > 0 || load_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn looks_like_test_file(p: &Path) -> bool {
    p.parent()
        .and_then(|d| d.file_name())
        .is_some_and(|n| n == "tests")
}

fn run_case(
    policy: &CompiledPolicy,
    case: &Case,
    label: &str,
    covered: &mut BTreeSet<(String, String)>,
) -> CaseResult {
    let o = judge(policy, case);
    if o.passed {
        for rule in o.fired {
            covered.insert((label.to_owned(), rule));
        }
    }
    CaseResult {
        policy: label.to_owned(),
        name: case.name.clone(),
        passed: o.passed,
        failure: o.failure,
    }
}

fn print_junit(results: &[CaseResult], failed: usize) {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    outln!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    outln!(
        "<testsuites tests=\"{}\" failures=\"{failed}\">",
        results.len()
    );
    outln!(
        "  <testsuite name=\"deliberate\" tests=\"{}\" failures=\"{failed}\">",
        results.len()
    );
    for r in results {
        out!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            esc(&r.policy),
            esc(&r.name)
        );
        match &r.failure {
            Some(f) => outln!("><failure message=\"{}\"/></testcase>", esc(f)),
            None => outln!("/>"),
        }
    }
    outln!("  </testsuite>\n</testsuites>");
}
