//! Replay: a `deliberate serve` audit log written with `audit.record_texts: true`, read as
//! labeled cases (`deliberate eval --replay audit.jsonl`).
//!
//! Every recorded text is one case at the stage and as the role it was scanned at; its label is what the live
//! policy did to it: `unsafe` when a `block` finding of that record sits at the same stage and
//! location, `safe` otherwise. The report of a candidate over these cases is then its agreement
//! with the live decisions, and `--compare live.yaml` lists, per rule and with examples, every
//! text the candidate would newly block or newly let through. The category is the record's
//! policy set (or `default`). Records without texts are counted as skipped.

use std::path::Path;

use serde::Deserialize;

use super::{Case, Content, Dataset, DatasetError, Label, err};
use crate::layer::shadow::ScannedText;
use crate::policy::Stage;

#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    policy_set: Option<String>,
    #[serde(default)]
    findings: Vec<Finding>,
    #[serde(default)]
    texts: Vec<ScannedText>,
}

#[derive(Deserialize)]
struct Finding {
    stage: Stage,
    action: String,
    location: String,
}

/// Reads the audit log at `path`.
pub fn read_audit(path: &Path) -> Result<Dataset, DatasetError> {
    let src =
        std::fs::read_to_string(path).map_err(|e| err(path, None, format!("cannot read: {e}")))?;
    let mut cases = Vec::new();
    let mut without = 0usize;
    for (i, line) in src.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i as u64 + 1;
        let r: Record = serde_json::from_str(line)
            .map_err(|e| err(path, Some(n), format!("not an audit record: {e}")))?;
        if r.texts.is_empty() {
            without += 1;
            continue;
        }
        for (j, t) in r.texts.into_iter().enumerate() {
            let blocked = r
                .findings
                .iter()
                .any(|f| f.action == "block" && f.stage == t.stage && f.location == t.location);
            cases.push(Case {
                source: format!("{}:{n}", path.display()),
                id: format!("{}#{j} {}", r.id, t.location),
                text: t.text,
                stage: t.stage,
                role: t.role,
                label: if blocked { Label::Unsafe } else { Label::Safe },
                category: r.policy_set.clone().unwrap_or_else(|| "default".to_owned()),
            });
        }
    }
    if cases.is_empty() {
        return Err(err(
            path,
            None,
            "no recorded texts: replay needs an audit log written with `audit: {record_texts: true}`",
        ));
    }
    Ok(Dataset {
        name: path.display().to_string(),
        path: path.to_path_buf(),
        format: "audit-replay",
        skipped: (without > 0).then(|| (without, "audit records without texts".to_owned())),
        content: Content::Cases(cases),
    })
}
