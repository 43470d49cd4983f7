//! BIG-bench `task.json`: each example's `input`, labeled by its correct answer.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::labels::{Mapped, label_of, map_label};
use super::lines::{array_open, element_lines};
use super::{Case, Content, Dataset, DatasetError, ReadOptions, dataset, err, json_err};
use crate::policy::Stage;

#[derive(Deserialize)]
struct BigBenchTask {
    #[serde(default)]
    name: Option<String>,
    examples: Vec<BigBenchExample>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct BigBenchExample {
    input: String,
    #[serde(default)]
    target: Option<StringOrList>,
    #[serde(default)]
    target_scores: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    category: Option<String>,
}

pub(super) fn read_bigbench(
    path: &Path,
    src: &str,
    opts: &ReadOptions,
) -> Result<Dataset, DatasetError> {
    let task: BigBenchTask = serde_json::from_str(src).map_err(|e| json_err(path, &e))?;
    let task_name = task.name.clone().unwrap_or_else(|| {
        path.parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into())
    });
    let lines = array_open(src, "examples")
        .map(|o| element_lines(src, o))
        .unwrap_or_default();
    let mut cases = Vec::new();
    for (i, ex) in task.examples.iter().enumerate() {
        let line = lines.get(i).copied();
        let fail = |m: String| err(path, line, format!("examples[{i}]: {m}"));
        let answer: String = match (&ex.target_scores, &ex.target) {
            (Some(scores), _) if !scores.is_empty() => {
                let best = scores.values().copied().fold(f64::NEG_INFINITY, f64::max);
                let tops: Vec<&String> = scores
                    .iter()
                    .filter(|(_, s)| **s == best)
                    .map(|(k, _)| k)
                    .collect();
                let labels: Vec<Mapped> = tops
                    .iter()
                    .map(|t| map_label(t, &opts.unsafe_labels))
                    .collect();
                if labels
                    .windows(2)
                    .any(|w| label_of(&w[0]) != label_of(&w[1]))
                {
                    return Err(fail(format!(
                        "targets {tops:?} tie for the highest score but map to different labels"
                    )));
                }
                tops[0].clone()
            }
            (_, Some(StringOrList::One(t))) => t.clone(),
            (_, Some(StringOrList::Many(ts))) if !ts.is_empty() => ts[0].clone(),
            _ => {
                return Err(fail(
                    "needs `target_scores` (multiple choice) or `target` (generative)".into(),
                ));
            }
        };
        let (label, answer_category) = match map_label(&answer, &opts.unsafe_labels) {
            Mapped::Known(l) => (l, None),
            Mapped::Category(l, c) => (l, Some(c)),
            Mapped::Unknown => {
                return Err(fail(format!(
                    "cannot tell whether the answer {answer:?} means safe or unsafe; pass \
                     --unsafe-label with the answers that mean unsafe"
                )));
            }
        };
        let category = ex
            .category
            .clone()
            .or(answer_category)
            .unwrap_or_else(|| task_name.clone());
        cases.push(Case {
            source: format!("{}:{}", path.display(), line.unwrap_or(0)),
            id: format!("examples[{i}]"),
            text: ex.input.clone(),
            stage: opts.stage.unwrap_or(Stage::Input),
            role: Some("user".to_owned()),
            label,
            category,
        });
    }
    if cases.is_empty() {
        return Err(err(path, None, "no examples"));
    }
    Ok(dataset(path, "bigbench", Content::Cases(cases)))
}
