//! The answer cache: a JSONL file keyed by a hash of the request, flushed as each answer
//! arrives, so that an interrupted run continues where it stopped.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::OnlineError;
use super::client::Answer;

/// FNV-1a, 64 bit: a stable key across runs and platforms.
pub(super) fn fnv1a(bytes: &[u8]) -> String {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    format!("{:016x}", h.finish())
}

/// Answers by key, and the file new ones are appended to.
pub(super) struct Cache {
    path: PathBuf,
    /// The answers read at start.
    pub(super) answers: HashMap<String, Answer>,
    file: Mutex<std::fs::File>,
}

impl Cache {
    /// Reads the cache at `path` (if any) and opens it for appending.
    pub(super) fn open(path: &PathBuf) -> Result<Cache, OnlineError> {
        let fail = |m: String| OnlineError::Cache {
            path: path.clone(),
            message: m,
        };
        let mut answers = HashMap::new();
        if path.exists() {
            let src = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
            for (i, line) in src.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                // A torn last line (the run was killed mid-write) is the one thing we drop.
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    if i + 1 == src.lines().count() {
                        continue;
                    }
                    return Err(fail(format!("line {}: not JSON", i + 1)));
                };
                if let (Some(k), Some(t)) = (v["key"].as_str(), v["answer"].as_str()) {
                    answers.insert(
                        k.to_owned(),
                        Answer {
                            text: t.to_owned(),
                            prompt_tokens: v["prompt_tokens"].as_u64(),
                            action: v["action"].as_str().map(str::to_owned),
                        },
                    );
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Cache {
            path: path.clone(),
            answers,
            file: Mutex::new(file),
        })
    }

    /// Appends one answer and flushes.
    pub(super) fn put(&self, key: &str, arm: &str, a: &Answer) -> Result<(), OnlineError> {
        let line = json!({
            "key": key, "arm": arm, "answer": a.text, "prompt_tokens": a.prompt_tokens,
            "action": a.action,
        });
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(f, "{line}")
            .and_then(|_| f.flush())
            .map_err(|e| OnlineError::Cache {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_stable() {
        assert_eq!(fnv1a(b""), "cbf29ce484222325");
        assert_eq!(fnv1a(b"a"), "af63dc4c8601ec8c");
    }
}
