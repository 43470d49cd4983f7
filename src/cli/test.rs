//! `deliberate test [POLICY|DIR]... [--format text|json|junit] [--coverage]`
//!
//! Runs each rule's inline examples and every case of the test files, buffered and streamed:
//! split in two at every character boundary, and fed byte by byte. A case passes only if all
//! of these agree with the expectation. The spec sections' judge examples run too
//! (`judge_examples.rs`: against the rules, recorded verdicts, or a live `--judge`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::engine::splits::check_every_split;
use crate::engine::{CompiledPolicy, Decision};
use crate::policy::raw::{RawExpectAction, RawStage, RawTestFile};
use crate::policy::{Action, Stage, parse_yaml};

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
    pub judge: super::judge_opts::JudgeArgs,
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

struct Case {
    name: String,
    text: String,
    stage: Stage,
    role: Option<String>,
    expect: Expect,
}

enum Expect {
    /// The rule fires (or not).
    Rule { rule: String, fires: bool },
    /// A whole-decision expectation from a test file.
    Decision {
        action: Action,
        rules: Option<Vec<String>>,
        output: Option<String>,
        spans: Option<Vec<[usize; 2]>>,
    },
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
            policies.extend(super::policy_files(std::slice::from_ref(p))?);
            let tests = p.join("tests");
            if tests.is_dir() {
                test_files.extend(super::policy_files(&[tests])?);
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
        results.extend(super::judge_examples::run(
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
        for (i, c) in raw.cases.iter().enumerate() {
            let loc = c.referenced;
            let c = &c.value;
            let stage = match c.stage.unwrap_or(RawStage::Input) {
                RawStage::Input => Stage::Input,
                RawStage::Output => Stage::Output,
                RawStage::Reasoning => Stage::Reasoning,
            };
            let case = Case {
                name: format!(
                    "{}:{}: {}",
                    tf.display(),
                    loc.line(),
                    c.name.clone().unwrap_or_else(|| format!("case {}", i + 1))
                ),
                text: c.text.clone(),
                stage,
                role: if stage == Stage::Input {
                    Some(c.role.clone().unwrap_or_else(|| "user".into()))
                } else {
                    None
                },
                expect: Expect::Decision {
                    action: match c.expect {
                        RawExpectAction::Allow => Action::Allow,
                        RawExpectAction::Flag => Action::Flag,
                        RawExpectAction::Redact => Action::Redact,
                        RawExpectAction::Block => Action::Block,
                    },
                    rules: c.rules.clone(),
                    output: c.output.clone(),
                    spans: c.spans.clone(),
                },
            };
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

fn example_cases(policy: &CompiledPolicy) -> Vec<Case> {
    let mut out = Vec::new();
    for rule in &policy.rules {
        let stage = rule.stages.first().copied().unwrap_or(Stage::Input);
        let role = (stage == Stage::Input)
            .then(|| rule.roles.first().cloned().unwrap_or_else(|| "user".into()));
        for (texts, fires) in [
            (&rule.examples.should_match, true),
            (&rule.examples.no_match, false),
        ] {
            for t in texts {
                out.push(Case {
                    name: format!(
                        "{} {} {:?}",
                        rule.id,
                        if fires { "matches" } else { "does not match" },
                        t
                    ),
                    text: t.clone(),
                    stage,
                    role: role.clone(),
                    expect: Expect::Rule {
                        rule: rule.id.clone(),
                        fires,
                    },
                });
            }
        }
    }
    out
}

fn run_case(
    policy: &CompiledPolicy,
    case: &Case,
    label: &str,
    covered: &mut BTreeSet<(String, String)>,
) -> CaseResult {
    let d = policy.scan(&case.text, case.stage, case.role.as_deref());
    let mut failure = check_expectation(case, &d);
    if failure.is_none() {
        // Streams are scanned with every rule of the stage (no role), so a role-filtered input
        // case is compared with the role-less buffered scan of the same text.
        let reference = match case.role {
            Some(_) => policy.scan(&case.text, case.stage, None),
            None => d.clone(),
        };
        failure = check_every_split(policy, case.stage, &case.text, &reference)
            .err()
            .map(|e| e.to_string());
    }
    if failure.is_none() {
        for f in &d.findings {
            covered.insert((label.to_owned(), f.rule.clone()));
        }
    }
    CaseResult {
        policy: label.to_owned(),
        name: case.name.clone(),
        passed: failure.is_none(),
        failure,
    }
}

fn check_expectation(case: &Case, d: &Decision) -> Option<String> {
    let fired: Vec<&str> = d.findings.iter().map(|f| f.rule.as_str()).collect();
    match &case.expect {
        Expect::Rule { rule, fires } => {
            let did = fired.contains(&rule.as_str());
            if did != *fires {
                return Some(format!(
                    "expected rule {rule} {}; findings: {}",
                    if *fires { "to fire" } else { "not to fire" },
                    describe(d)
                ));
            }
            None
        }
        Expect::Decision {
            action,
            rules,
            output,
            spans,
        } => {
            if d.action != *action {
                return Some(format!(
                    "expected {}, got {}; findings: {}",
                    action.as_str(),
                    d.action.as_str(),
                    describe(d)
                ));
            }
            if let Some(rules) = rules {
                for r in rules {
                    if !fired.contains(&r.as_str()) {
                        return Some(format!("expected rule {r} among findings: {}", describe(d)));
                    }
                }
            }
            if let Some(o) = output
                && &d.output != o
            {
                return Some(format!("expected output {o:?}, got {:?}", d.output));
            }
            if let Some(spans) = spans {
                let got: Vec<[usize; 2]> = d.findings.iter().map(|f| [f.start, f.end]).collect();
                for s in spans {
                    if !got.contains(s) {
                        return Some(format!("expected span {s:?} among {got:?}"));
                    }
                }
            }
            None
        }
    }
}

fn describe(d: &Decision) -> String {
    if d.findings.is_empty() {
        return "none".into();
    }
    d.findings
        .iter()
        .map(|f| format!("{}@{}..{}", f.rule, f.start, f.end))
        .collect::<Vec<_>>()
        .join(", ")
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
