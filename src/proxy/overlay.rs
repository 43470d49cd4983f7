//! The overlay check behind `deliberate check --config FILE`: no policy set of the config
//! removes or weakens a `block` or `redact` rule of the base (the `default` set).
//!
//! A base rule is kept by a set when one policy of the set has a rule with the same id that
//!
//! - acts at least as hard (`redact` may become `block`, never the other way, never `flag`),
//! - applies to every stage and reads every role the base rule does,
//! - matches the same way (the same match expression and normalization, compared as written
//!   with locations ignored),
//! - and is exempted by no `allow` rule the base policy does not have (an allow rule whose
//!   `overrides` names it, or names nothing, with the same match as in the base).
//!
//! A set that builds on the base (`base: true`, the default) holds the base policies
//! themselves, first in order, so it keeps every rule by construction; the check matters for
//! `base: false` sets and for overlays that `include` a modified copy. Every problem is a
//! [`Diagnostic`] at `file:line:col` of the rule that weakens, of the allow rule that exempts,
//! or of the set in the config that drops a rule.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::config::Config;
use super::tenants::SetConfig;
use crate::policy::raw::{RawAction, RawMatch, RawRule};
use crate::policy::{Diagnostic, Level, Loc, read_units};

/// One rule as the check compares it.
#[derive(Debug, Clone)]
struct Sig {
    id: String,
    /// 0 allow, 1 flag, 2 redact, 3 block.
    strength: u8,
    stages: Vec<&'static str>,
    roles: Vec<String>,
    /// The match and normalization, as written.
    fingerprint: String,
    /// For allow rules: the rule ids exempted (`None`: all).
    overrides: Option<Vec<String>>,
    file: PathBuf,
    loc: Loc,
}

/// One policy file with its includes, flattened.
#[derive(Debug)]
struct PolicyRules {
    rules: Vec<Sig>,
}

fn strength(a: RawAction) -> u8 {
    match a {
        RawAction::Allow => 0,
        RawAction::Flag => 1,
        RawAction::Redact => 2,
        // A judge may clear what an escalating rule matched: weaker than a block.
        RawAction::Escalate => 3,
        RawAction::Block => 4,
    }
}

fn action_name(s: u8) -> &'static str {
    ["allow", "flag", "redact", "escalate", "block"][usize::from(s.min(4))]
}

fn fingerprint(m: &RawMatch, out: &mut String) {
    use std::fmt::Write as _;
    let list = |name: &str, v: &Option<Vec<Spanned<RawMatch>>>, out: &mut String| {
        if let Some(v) = v {
            let _ = write!(out, "{name}[");
            for x in v {
                fingerprint(&x.value, out);
                out.push(',');
            }
            out.push(']');
        }
    };
    let _ = write!(
        out,
        "{{kw={:?} re={:?} within={:?} min={:?} word={:?} val={:?} max={:?} ",
        m.keywords, m.regex, m.within, m.min_count, m.word, m.validate, m.max_len
    );
    list("all", &m.all, out);
    list("any", &m.any, out);
    list("near", &m.near, out);
    if let Some(n) = &m.not {
        out.push_str("not(");
        fingerprint(&n.value, out);
        out.push(')');
    }
    out.push('}');
}

fn sig(r: &Spanned<RawRule>, default_norm: String, file: &Path) -> Sig {
    let v = &r.value;
    let mut fp = String::new();
    fingerprint(&v.matcher.value, &mut fp);
    let norm = v.normalize.as_ref().map_or(default_norm, |n| {
        format!("{:?}", n.iter().map(|s| s.value).collect::<Vec<_>>())
    });
    fp.push_str(&norm);
    let stages = match &v.stages {
        Some(s) => s.iter().map(|s| s.as_str()).collect(),
        None => vec!["input", "output"],
    };
    Sig {
        id: v.id.value.clone(),
        strength: strength(v.action),
        stages,
        roles: v
            .roles
            .clone()
            .unwrap_or_else(|| vec!["user".to_owned(), "tool".to_owned()]),
        fingerprint: fp,
        overrides: v
            .overrides
            .as_ref()
            .map(|o| o.iter().map(|s| s.value.clone()).collect()),
        file: file.to_path_buf(),
        loc: Loc::from(v.id.referenced),
    }
}

fn read(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<PolicyRules> {
    let units = read_units(path, diags)?;
    let mut rules = Vec::new();
    for u in &units {
        let default_norm = u.raw.normalize.as_ref().map_or_else(String::new, |n| {
            format!("{:?}", n.iter().map(|s| s.value).collect::<Vec<_>>())
        });
        for r in &u.raw.rules {
            rules.push(sig(r, default_norm.clone(), &u.path));
        }
    }
    Some(PolicyRules { rules })
}

fn may_exempt(allow: &Sig, id: &str) -> bool {
    allow.strength == 0
        && allow
            .overrides
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == id))
}

/// Why `kept` (in a policy with `rules`) does not keep `base` (in a policy with
/// `base_rules`); `None` when it does.
fn weakened(kept: &Sig, rules: &[Sig], base: &Sig, base_rules: &[Sig]) -> Option<Diagnostic> {
    let at = |s: &Sig, message: String| Diagnostic {
        level: Level::Error,
        file: s.file.clone(),
        line: s.loc.line,
        column: s.loc.column,
        rule: Some(s.id.clone()),
        message,
    };
    let origin = format!(
        "{}:{}:{}",
        base.file.display(),
        base.loc.line,
        base.loc.column
    );
    if kept.strength < base.strength {
        return Some(at(
            kept,
            format!(
                "weakens the base rule ({origin}): action {} where the base has {}",
                action_name(kept.strength),
                action_name(base.strength)
            ),
        ));
    }
    if let Some(s) = base.stages.iter().find(|s| !kept.stages.contains(s)) {
        return Some(at(
            kept,
            format!("weakens the base rule ({origin}): no longer applies to stage {s}"),
        ));
    }
    if let Some(r) = base.roles.iter().find(|r| !kept.roles.contains(r)) {
        return Some(at(
            kept,
            format!("weakens the base rule ({origin}): no longer reads role {r}"),
        ));
    }
    if kept.fingerprint != base.fingerprint {
        return Some(at(
            kept,
            format!(
                "changes the match of the base rule ({origin}); add a new rule instead of editing a base block or redact"
            ),
        ));
    }
    for a in rules.iter().filter(|a| may_exempt(a, &kept.id)) {
        let in_base = base_rules
            .iter()
            .any(|b| b.id == a.id && may_exempt(b, &kept.id) && b.fingerprint == a.fingerprint);
        if !in_base {
            return Some(at(
                a,
                format!(
                    "allow rule exempts base rule `{}` ({origin}), which the base does not",
                    kept.id
                ),
            ));
        }
    }
    None
}

/// Checks every set of `config` against the base; the problems, none when every set keeps
/// every base `block` and `redact` rule. Files that cannot be read are diagnosed too.
pub fn check_sets(config: &Config) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let base: Vec<PolicyRules> = config
        .policies
        .iter()
        .filter_map(|p| read(p, &mut diags))
        .collect();
    if diags.iter().any(|d| d.level == Level::Error) {
        return diags;
    }
    let config_file = config.file.clone().unwrap_or_default();
    for set in &config.selection.sets {
        check_set(set, config, &config_file, &base, &mut diags);
    }
    diags
}

fn check_set(
    set: &SetConfig,
    config: &Config,
    config_file: &Path,
    base: &[PolicyRules],
    diags: &mut Vec<Diagnostic>,
) {
    let before = diags.len();
    let policies: Vec<PolicyRules> = set
        .paths(&config.policies)
        .iter()
        .filter_map(|p| read(p, diags))
        .collect();
    if diags[before..].iter().any(|d| d.level == Level::Error) {
        return;
    }
    for b in base {
        for r in b.rules.iter().filter(|r| r.strength >= 2) {
            let mut first_problem = None;
            let mut kept = false;
            for p in &policies {
                for k in p.rules.iter().filter(|k| k.id == r.id) {
                    match weakened(k, &p.rules, r, &b.rules) {
                        None => kept = true,
                        Some(d) => {
                            first_problem.get_or_insert(d);
                        }
                    }
                }
            }
            if kept {
                continue;
            }
            diags.push(first_problem.unwrap_or_else(|| Diagnostic {
                level: Level::Error,
                file: config_file.to_path_buf(),
                line: set.at.0 as u64,
                column: set.at.1 as u64,
                rule: Some(r.id.clone()),
                message: format!(
                    "set `{}` drops the base {} rule ({}:{}:{}); keep `base: true` or include the base policy",
                    set.name,
                    action_name(r.strength),
                    r.file.display(),
                    r.loc.line,
                    r.loc.column
                ),
            }));
        }
    }
}
