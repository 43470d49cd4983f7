//! JailbreakBench artifacts: attack prompts (input stage, all unsafe) and the model's responses
//! (output stage, unsafe when jailbroken), as two data sets.

use std::path::Path;

use serde::Deserialize;

use super::lines::{array_open, element_lines};
use super::{Case, Content, Dataset, DatasetError, Label, ReadOptions, dataset, json_err};
use crate::policy::Stage;

#[derive(Deserialize)]
struct JbbArtifact {
    #[serde(default)]
    parameters: Option<JbbParameters>,
    jailbreaks: Vec<JbbItem>,
}

#[derive(Deserialize)]
struct JbbParameters {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct JbbItem {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    category: Option<String>,
    prompt: Option<String>,
    response: Option<String>,
    jailbroken: bool,
}

pub(super) fn read_jailbreakbench(
    path: &Path,
    src: &str,
    _opts: &ReadOptions,
) -> Result<Vec<Dataset>, DatasetError> {
    let art: JbbArtifact = serde_json::from_str(src).map_err(|e| json_err(path, &e))?;
    let lines = array_open(src, "jailbreaks")
        .map(|o| element_lines(src, o))
        .unwrap_or_default();
    let mut input = Vec::new();
    let mut output = Vec::new();
    let mut no_prompt = 0;
    let mut no_response = 0;
    for (i, it) in art.jailbreaks.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(0);
        let source = format!("{}:{line}", path.display());
        let id = it.index.map_or_else(|| i.to_string(), |x| x.to_string());
        let category = it.category.clone().unwrap_or_else(|| "-".into());
        match &it.prompt {
            Some(p) => input.push(Case {
                source: source.clone(),
                id: id.clone(),
                text: p.clone(),
                stage: Stage::Input,
                role: Some("user".to_owned()),
                label: Label::Unsafe,
                category: category.clone(),
            }),
            None => no_prompt += 1,
        }
        match &it.response {
            Some(r) => output.push(Case {
                source,
                id,
                text: r.clone(),
                stage: Stage::Output,
                role: Some("user".to_owned()),
                label: if it.jailbroken {
                    Label::Unsafe
                } else {
                    Label::Safe
                },
                category,
            }),
            None => no_response += 1,
        }
    }
    let what = art
        .parameters
        .map(|p| {
            format!(
                "{} on {}",
                p.method.unwrap_or_default(),
                p.model.unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut a = dataset(path, "jailbreakbench", Content::Cases(input));
    a.name = format!("{} [attack prompts, input; {what}]", path.display());
    if no_prompt > 0 {
        a.skipped = Some((no_prompt, "behaviours with no attack prompt".into()));
    }
    out.push(a);
    let mut b = dataset(path, "jailbreakbench", Content::Cases(output));
    b.name = format!("{} [responses, output; {what}]", path.display());
    if no_response > 0 {
        b.skipped = Some((no_response, "behaviours with no response".into()));
    }
    out.push(b);
    Ok(out)
}
