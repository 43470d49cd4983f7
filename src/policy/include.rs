//! Includes: a policy file and the files it builds on, collected into [`Unit`]s in load
//! order (included files first, the main file last).

use std::path::{Path, PathBuf};

use super::raw::RawPolicy;
use super::yaml::{parse_yaml, read_file};
use super::{Diagnostic, Level, Loc, Sink};

/// Deepest include chain.
const MAX_INCLUDE_DEPTH: usize = 8;

/// One parsed file of a policy: the main file or one it includes.
#[derive(Debug)]
pub struct Unit {
    /// The file.
    pub path: PathBuf,
    /// What it says.
    pub raw: RawPolicy,
    /// Its source text (hashed into the policy's version hash).
    pub src: String,
}

/// Reads the policy file at `path` and every file it includes. `None` when a file cannot be
/// read or parsed; the reasons are in `diags`.
pub fn read_units(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<Vec<Unit>> {
    match read_file(path) {
        Ok(src) => parse_units(&src, path, diags),
        Err(message) => {
            diags.push(Diagnostic {
                level: Level::Error,
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                rule: None,
                message,
            });
            None
        }
    }
}

/// Parses policy source `src`, named `path` in diagnostics, and reads every file it
/// includes (relative to `path`'s directory). `None` when a file cannot be read or parsed;
/// the reasons are in `diags`.
pub fn parse_units(src: &str, path: &Path, diags: &mut Vec<Diagnostic>) -> Option<Vec<Unit>> {
    let mut units = Vec::new();
    collect_units(src, path, 0, &mut Vec::new(), &mut units, diags).then_some(units)
}

fn collect_units(
    src: &str,
    path: &Path,
    depth: usize,
    seen: &mut Vec<PathBuf>,
    units: &mut Vec<Unit>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let mut sink = Sink {
        file: path,
        out: diags,
    };
    let raw: RawPolicy = match parse_yaml(src) {
        Ok(r) => r,
        Err((loc, msg)) => {
            sink.error(loc, None, msg);
            return false;
        }
    };
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    seen.push(canon);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut ok = true;
    for inc in &raw.include {
        let loc = Loc::from(inc.referenced);
        let inc_path = dir.join(&inc.value);
        let canon = inc_path.canonicalize().unwrap_or_else(|_| inc_path.clone());
        if seen.contains(&canon) {
            Sink {
                file: path,
                out: diags,
            }
            .error(
                loc,
                None,
                format!("include cycle: `{}` is already being loaded", inc.value),
            );
            ok = false;
            continue;
        }
        if depth >= MAX_INCLUDE_DEPTH {
            Sink {
                file: path,
                out: diags,
            }
            .error(
                loc,
                None,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            );
            ok = false;
            continue;
        }
        match read_file(&inc_path) {
            Ok(s) => ok &= collect_units(&s, &inc_path, depth + 1, seen, units, diags),
            Err(msg) => {
                Sink {
                    file: path,
                    out: diags,
                }
                .error(loc, None, format!("include `{}`: {msg}", inc.value));
                ok = false;
            }
        }
    }
    seen.pop();
    units.push(Unit {
        path: path.to_path_buf(),
        raw,
        src: src.to_owned(),
    });
    ok
}
