//! One error type for the whole crate: every failure names what was wrong and where.

use thiserror::Error;

/// Everything that can go wrong in G2D, from a bad data file to a missing WebGPU adapter.
#[derive(Debug, Error)]
pub enum G2dError {
    /// An IDX data file did not parse.
    #[error("{file}: {reason}")]
    Idx { file: String, reason: String },

    /// A bundle file failed validation; nothing was loaded from it.
    #[error("bundle: {reason}")]
    Bundle { fault: BundleFault, reason: String },

    /// Artifacts of a run that were not made from each other (a stage was rerun and a later
    /// one was not).
    #[error("{what} is stale: {reason}; rerun `g2d {rerun}`")]
    Stale {
        what: String,
        reason: String,
        rerun: String,
    },

    /// A run's artifact that does not read back (damaged, or not written by G2D).
    #[error("{path}: {reason}; rerun `g2d {rerun}`")]
    Artifact {
        path: String,
        reason: String,
        rerun: String,
    },

    /// A training loss became NaN or infinite; the stage stopped and wrote nothing.
    #[error("{stage} diverged at step {step}: the loss is {loss}; nothing was written (lower the learning rate or check the schedule)")]
    Diverged {
        stage: String,
        step: usize,
        loss: f32,
    },

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

    /// A plot could not be drawn.
    #[error("plot {plot}: {reason}")]
    Plot { plot: String, reason: String },

    /// Sampling was cancelled between diffusion steps.
    #[error("regeneration cancelled")]
    Cancelled,

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A PyTorch state_dict that does not map onto the classifier (nothing was imported).
    #[error("{file}: {reason}")]
    Import { file: String, reason: String },

    /// A JSON document (config, metadata) did not parse.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = G2dError> = std::result::Result<T, E>;

/// Which check a bundle failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleFault {
    /// Shorter than its header says, or bytes after the checksum.
    Truncated,
    /// Not a G2D bundle, or a format version this build cannot read.
    Format,
    /// The SHA-256 over the content differs from the stored one.
    Checksum,
    /// The JSON metadata did not parse, or a field is out of range.
    Metadata,
    /// A section is missing, has the wrong dtype or the wrong length.
    Section,
    /// A value is out of range (non-finite weights, a bad label, θ_orig's hash).
    Value,
}

impl BundleFault {
    pub fn code(self) -> &'static str {
        match self {
            BundleFault::Truncated => "BUNDLE_TRUNCATED",
            BundleFault::Format => "BUNDLE_FORMAT",
            BundleFault::Checksum => "BUNDLE_CHECKSUM",
            BundleFault::Metadata => "BUNDLE_METADATA",
            BundleFault::Section => "BUNDLE_SECTION",
            BundleFault::Value => "BUNDLE_VALUE",
        }
    }
}

impl G2dError {
    /// A stable code for programs (the CLI prints it, the JS API sets `error.code`): the
    /// message may be reworded, the code is not.
    pub fn code(&self) -> &'static str {
        match self {
            G2dError::Idx { .. } => "DATA_FORMAT",
            G2dError::Bundle { fault, .. } => fault.code(),
            G2dError::Stale { .. } => "STALE_ARTIFACT",
            G2dError::Artifact { .. } => "ARTIFACT_CORRUPT",
            G2dError::Diverged { .. } => "TRAINING_DIVERGED",
            G2dError::Shape { .. } => "SHAPE_MISMATCH",
            G2dError::NonFinite { .. } => "NON_FINITE",
            G2dError::Config { .. } => "INVALID_ARGUMENT",
            G2dError::Backend { .. } => "BACKEND_UNAVAILABLE",
            G2dError::Plot { .. } => "PLOT",
            G2dError::Cancelled => "ABORTED",
            G2dError::Io { .. } => "IO",
            G2dError::Json { .. } => "JSON",
            G2dError::Import { .. } => "MODEL_IMPORT",
        }
    }

    pub fn bundle(fault: BundleFault, reason: impl Into<String>) -> Self {
        Self::Bundle {
            fault,
            reason: reason.into(),
        }
    }

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

/// Fails with [`G2dError::Config`] naming `field` unless `lo ≤ value ≤ hi`.
pub fn ensure_range<T>(field: &str, value: T, lo: T, hi: T) -> Result<()>
where
    T: PartialOrd + std::fmt::Display,
{
    if lo <= value && value <= hi {
        Ok(())
    } else {
        Err(G2dError::config(
            field,
            format!("must lie in [{lo}, {hi}], got {value}"),
        ))
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
