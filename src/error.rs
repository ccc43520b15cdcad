//! One error type for the whole crate: every failure names what was wrong and where.

use thiserror::Error;

/// Everything that can go wrong in G2D, from a bad data file to a missing WebGPU adapter.
#[derive(Debug, Error)]
pub enum G2dError {
    /// An IDX data file did not parse.
    #[error("{file}: {reason}")]
    Idx { file: String, reason: String },

    /// A bundle file failed validation; nothing was loaded from it.
    #[error("bundle: {0}")]
    Bundle(String),

    /// A parameter vector or tensor had the wrong length or shape.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },

    /// Parameters contained NaN or infinite values.
    #[error("{what} contains {count} non-finite values (NaN or infinity)")]
    NonFinite { what: String, count: usize },

    /// A configuration or argument was out of range.
    #[error("invalid {field}: {reason}")]
    Config { field: String, reason: String },

    /// The requested backend cannot run here.
    #[error("backend {backend} unavailable: {reason}")]
    Backend { backend: String, reason: String },

    /// Sampling was cancelled between diffusion steps.
    #[error("plot {plot}: {reason}")]
    Plot { plot: String, reason: String },

    #[error("regeneration cancelled")]
    Cancelled,

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A JSON document (config, metadata) did not parse.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = G2dError> = std::result::Result<T, E>;

impl G2dError {
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Self::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Fails with [`G2dError::NonFinite`] when any value is NaN or infinite.
pub fn ensure_finite(what: &str, values: &[f32]) -> Result<()> {
    let count = values.iter().filter(|v| !v.is_finite()).count();
    if count == 0 {
        Ok(())
    } else {
        Err(G2dError::NonFinite {
            what: what.to_string(),
            count,
        })
    }
}
