//! The error of a configuration file that could not be used, with the place it points at. Its
//! own module because both the config file's reader (`config.rs`) and its tenant sections
//! (`tenants.rs`) make it.

use std::path::PathBuf;

/// A configuration file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0: unknown).
    pub line: usize,
    /// 1-based column (0: unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}
