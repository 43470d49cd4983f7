//! presidio-style PII span data: a JSON array of `{full_text, spans}` with character offsets.

use std::path::Path;

use serde::Deserialize;

use super::lines::element_lines;
use super::{Content, Dataset, DatasetError, GoldSpan, SpanCase, dataset, err, json_err};

#[derive(Deserialize)]
struct PresidioItem {
    full_text: String,
    spans: Vec<PresidioSpan>,
}

#[derive(Deserialize)]
struct PresidioSpan {
    entity_type: String,
    start_position: usize,
    end_position: usize,
}

pub(super) fn read_presidio(path: &Path, src: &str) -> Result<Dataset, DatasetError> {
    let items: Vec<PresidioItem> = serde_json::from_str(src).map_err(|e| json_err(path, &e))?;
    let lines = src
        .find('[')
        .map(|o| element_lines(src, o))
        .unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let line = lines.get(i).copied();
        // Offsets are in characters (Python string indices); convert to bytes.
        let mut char_to_byte: Vec<usize> = item.full_text.char_indices().map(|(b, _)| b).collect();
        char_to_byte.push(item.full_text.len());
        let mut spans = Vec::with_capacity(item.spans.len());
        for s in item.spans {
            let (Some(&start), Some(&end)) = (
                char_to_byte.get(s.start_position),
                char_to_byte.get(s.end_position),
            ) else {
                return Err(err(
                    path,
                    line,
                    format!(
                        "item {i}: span {}..{} ({}) is outside the text ({} characters)",
                        s.start_position,
                        s.end_position,
                        s.entity_type,
                        char_to_byte.len() - 1
                    ),
                ));
            };
            if start > end {
                return Err(err(
                    path,
                    line,
                    format!("item {i}: span start after its end"),
                ));
            }
            spans.push(GoldSpan {
                entity: s.entity_type,
                start,
                end,
            });
        }
        out.push(SpanCase {
            source: format!("{}:{}", path.display(), line.unwrap_or(0)),
            text: item.full_text,
            spans,
        });
    }
    Ok(dataset(path, "presidio", Content::Spans(out)))
}
