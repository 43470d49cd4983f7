//! Every diagnostic the compiler can emit, table-driven (as aho-corasick's `src/tests.rs`):
//! the policy that provokes it, its level, its `line:col`, and a fragment of its message.
//!
//! The one diagnostic no test provokes is "keyword automaton too large": the Aho-Corasick DFA
//! builder only fails past 2^31 states, which the 1 MiB file limit keeps out of reach.

use std::path::Path;

use super::{MAX_PATTERN_CHARS, MAX_WITHIN, load, load_str};
use crate::policy::{Diagnostic, Level, LoadError, MAX_POLICY_BYTES};

use Level::{Error, Warning};

/// One expected diagnostic: what provokes it, where it points, what it says.
struct Case {
    /// The policy source (named `t.yaml`).
    src: String,
    level: Level,
    /// `line:col` the diagnostic points at.
    at: &'static str,
    /// A fragment of its message.
    says: String,
}

fn case(src: &str, level: Level, at: &'static str, says: &str) -> Case {
    Case {
        src: src.to_owned(),
        level,
        at,
        says: says.to_owned(),
    }
}

/// A policy with one rule, `r`, written as the flow mapping `rule`.
fn rule(rule: &str) -> String {
    format!("policy: t\nrules:\n  - {rule}\n")
}

/// The table. A rule with tests (`T`) keeps the "no tests" warning out of the way.
fn cases() -> Vec<Case> {
    const T: &str = "tests: {match: [x]}";
    let mut v = vec![
        // === the driver: names, spec, sections, rule ids, overrides ===
        case("policy: ''\n", Error, "1:9", "`policy` name is empty"),
        case(
            "policy: t\nspec:\n  deliberation_tag: 'a b'\n",
            Error,
            "3:21",
            "deliberation_tag must be a non-empty name",
        ),
        case(
            "policy: t\nspec:\n  sections:\n    - {id: ' ', text: x}\n",
            Error,
            "4:7",
            "section id is empty",
        ),
        case(
            "policy: t\nspec:\n  sections:\n    - {id: a, text: x}\n    - {id: a, text: y}\n",
            Error,
            "5:12",
            "duplicate section id `a`",
        ),
        case(
            "policy: t\nspec:\n  sections:\n    - {id: a, text: ' '}\n",
            Warning,
            "4:7",
            "section `a` has no text",
        ),
        case(
            &format!(
                "policy: t\nrules:\n  - {{id: r, match: {{keywords: [a]}}, action: flag, {T}}}\n  - {{id: r, match: {{keywords: [b]}}, action: flag, {T}}}\n"
            ),
            Error,
            "4:10",
            "duplicate rule id",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [a]}}, action: allow, overrides: [nope], {T}}}"
            )),
            Error,
            "3:64",
            "overrides names unknown rule `nope`",
        ),
        // === rules ===
        case(
            &rule("{id: 'a b', match: {keywords: [a]}, action: flag}"),
            Error,
            "3:10",
            "rule id `a b` must be non-empty letters, digits",
        ),
        case(
            &rule(&format!(
                "{{id: r, section: nope, match: {{keywords: [a]}}, action: flag, {T}}}"
            )),
            Error,
            "3:22",
            "unknown section `nope` (define it under spec.sections)",
        ),
        case(
            &rule(&format!(
                "{{id: r, stages: [], match: {{keywords: [a]}}, action: flag, {T}}}"
            )),
            Error,
            "3:5",
            "`stages` is empty: the rule would never run",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [a]}}, action: flag, replacement: x, {T}}}"
            )),
            Warning,
            "3:5",
            "`replacement` only applies to `redact` rules",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [a]}}, action: flag, overrides: [r], {T}}}"
            )),
            Error,
            "3:5",
            "`overrides` only applies to `allow` rules",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{not: {{keywords: [a]}}}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "the match has no positive part",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{all: [{{keywords: [a]}}, {{keywords: [b]}}]}}, action: allow, {T}}}"
            )),
            Error,
            "3:20",
            "allow rules must be bounded",
        ),
        case(
            &rule("{id: r, match: {keywords: [a]}, action: flag}"),
            Warning,
            "3:5",
            "rule has no tests",
        ),
        // === match trees ===
        case(
            &rule(&format!("{{id: r, match: {{}}, action: flag, {T}}}")),
            Error,
            "3:20",
            "empty match: give one of keywords, regex, all, any, not, near",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [a], regex: b}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "a match takes exactly one of keywords, regex, all, any, not, near",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: ab, word: true}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "`word` only applies to keywords",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [a], validate: luhn}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "`validate/max_len` only applies to regex",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [a], within: 3}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "`within` only applies to near",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [a, \"\\u200B\"]}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "keyword \"\\u{200b}\" is empty after normalization",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: []}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "`keywords` is empty",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [bomb, pipe bomb]}}, action: flag, {T}}}"
            )),
            Warning,
            "3:20",
            "keyword \"pipe bomb\" is shadowed by \"bomb\", which matches wherever it does",
        ),
        case(
            &rule(&format!("{{id: r, match: {{all: []}}, action: flag, {T}}}")),
            Error,
            "3:20",
            "`all` is empty",
        ),
        case(
            &rule(&format!("{{id: r, match: {{any: []}}, action: flag, {T}}}")),
            Error,
            "3:20",
            "`any` is empty",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{near: [{{keywords: [a]}}], within: 3}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "`near` takes exactly two matches",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{near: [{{keywords: [a]}}, {{keywords: [b]}}]}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "`near` needs `within: N`",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{near: [{{not: {{keywords: [a]}}}}, {{keywords: [b]}}], within: 3}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "both parts of `near` must be positive matches (no `not`)",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{near: [{{keywords: [a]}}, {{keywords: [b]}}], within: {}}}, action: flag, {T}}}",
                MAX_WITHIN + 1
            )),
            Error,
            "3:20",
            "`within: 10001` is more than 10000 characters",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{keywords: [a], min_count: 0}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "`min_count` must be at least 1",
        ),
        // === regex limits ===
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: '{}'}}, action: flag, {T}}}",
                "a".repeat(MAX_PATTERN_CHARS + 1)
            )),
            Error,
            "3:20",
            "regex is longer than 4096 characters",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: '('}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "invalid regex: unclosed group",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: 'a*'}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "regex can match the empty string",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: abcd, max_len: 2}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "max_len 2 is shorter than the shortest match (4 bytes)",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: 'a+'}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "regex has no bounded match length, so it cannot be enforced on a stream",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: 'a+', max_len: 70000}}, action: flag, {T}}}"
            )),
            Warning,
            "3:20",
            "regex matches can be 70000 bytes long",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: '\\bab\\b'}}, action: flag, {T}}}"
            )),
            Warning,
            "3:20",
            "Unicode `\\b` makes the regex engine leave its fast DFA",
        ),
        case(
            &rule(&format!(
                "{{id: r, match: {{regex: '\\w{{600}}'}}, action: flag, {T}}}"
            )),
            Error,
            "3:20",
            "regex does not compile within limits",
        ),
        // === lints across rules ===
        case(
            &format!(
                "policy: t\nrules:\n  - {{id: r1, match: {{keywords: [a]}}, action: flag, {T}}}\n  - {{id: r2, match: {{keywords: [a]}}, action: flag, {T}}}\n"
            ),
            Warning,
            "4:5",
            "a keyword of this rule is also a keyword of `r1` with the same action",
        ),
        // === YAML hardening ===
        case(
            "policy: t\nrulez: []\n",
            Error,
            "2:1",
            "unknown field `rulez`",
        ),
        case("policy: t\npolicy: u\n", Error, "2:1", "duplicate"),
        case(
            &format!(
                "policy: t\ndescription: '{}'\n",
                "x".repeat(MAX_POLICY_BYTES)
            ),
            Error,
            "0:0",
            "file is larger than 1048576 bytes",
        ),
    ];
    // More aliases than the budget allows (64), in a field that takes them.
    v.push(case(
        &rule(&format!(
            "{{id: r, match: {{keywords: [&k a{}]}}, action: flag, {T}}}",
            ", *k".repeat(65)
        )),
        Error,
        "",
        "refusing to expand this document",
    ));
    // Regexes that each compile within the limit but not all together in one set.
    let mut set = String::from("policy: t\nrules:\n");
    // (32 of them: the set compiles forward only, ~0.6 MB of NFA each.)
    for i in 0..32 {
        set.push_str(&format!(
            "  - {{id: r{i}, match: {{regex: '{}{}\\w{{36}}'}}, action: flag, {T}}}\n",
            char::from(b'a' + i % 26),
            i / 26
        ));
    }
    v.push(Case {
        src: set,
        level: Error,
        at: "0:0",
        says: "regexes of this policy do not compile together within limits".to_owned(),
    });
    v
}

/// Everything loading reported: errors, or the warnings of a policy that loaded.
fn diagnostics(result: Result<crate::engine::CompiledPolicy, LoadError>) -> Vec<Diagnostic> {
    match result {
        Ok(p) => p.warnings,
        Err(e) => e.diagnostics,
    }
}

/// Whether `diags` has a diagnostic of `level` about `file`, saying `says`, at `at` (`""`:
/// anywhere). `Err` says what differs.
fn check(
    diags: &[Diagnostic],
    level: Level,
    file: &str,
    at: &str,
    says: &str,
) -> Result<(), String> {
    let Some(d) = diags
        .iter()
        .find(|d| d.level == level && d.message.contains(says))
    else {
        return Err(format!("no {level:?} containing {says:?} among {diags:#?}"));
    };
    let got = format!("{}:{}", d.line, d.column);
    if !at.is_empty() && got != at {
        return Err(format!("at {got}, expected {at}: {d}"));
    }
    if d.file.file_name().and_then(|f| f.to_str()) != Some(file) {
        return Err(format!("about {}, expected {file}: {d}", d.file.display()));
    }
    Ok(())
}

#[test]
fn every_diagnostic_has_its_message_and_location() {
    let mut failures = Vec::new();
    for c in cases() {
        let result = load_str(&c.src, Path::new("t.yaml"));
        // An error refuses the policy; a warning alone lets it load.
        let outcome = if result.is_err() != (c.level == Error) {
            Err(format!("loaded: {}", result.is_ok()))
        } else {
            check(&diagnostics(result), c.level, "t.yaml", c.at, &c.says)
        };
        if let Err(e) = outcome {
            failures.push(format!("{}: {e}", c.says));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Diagnostics about files: reading them and following includes. Each names the file it is
/// about (the including file for include errors).
#[test]
fn file_and_include_diagnostics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, src: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, src).expect("write");
        p
    };
    for i in 0..10 {
        write(
            &format!("d{i}.yaml"),
            &format!("policy: d{i}\ninclude: [d{}.yaml]\n", i + 1),
        );
    }
    write("b.yaml", "policy: b\ninclude: [a.yaml]\n");
    let cases = [
        (
            "missing.yaml",
            None,
            "missing.yaml",
            "0:0",
            "cannot read policy",
        ),
        (
            "big.yaml",
            Some("#".repeat(MAX_POLICY_BYTES + 1)),
            "big.yaml",
            "0:0",
            "policy file is 1048577 bytes; the limit is 1048576",
        ),
        (
            "inc.yaml",
            Some("policy: t\ninclude: [nope.yaml]\n".to_owned()),
            "inc.yaml",
            "2:11",
            "include `nope.yaml`: cannot read policy",
        ),
        (
            "a.yaml",
            Some("policy: a\ninclude: [b.yaml]\n".to_owned()),
            "b.yaml",
            "2:11",
            "include cycle: `a.yaml` is already being loaded",
        ),
        (
            "d0.yaml",
            None,
            "d8.yaml",
            "2:11",
            "includes nested deeper than 8",
        ),
    ];
    let mut failures = Vec::new();
    for (main, src, file, at, says) in cases {
        let path = match src {
            Some(src) => write(main, &src),
            None => dir.path().join(main),
        };
        let outcome = match load(&path) {
            Ok(_) => Err("loaded".to_owned()),
            Err(e) => check(&e.diagnostics, Error, file, at, says),
        };
        if let Err(e) = outcome {
            failures.push(format!("{says}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
