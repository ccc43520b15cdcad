//! Files of a run directory: named f32 tensors in safetensors, with the stage's own JSON
//! metadata under the key `g2d`, so each artifact says what made it.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{f32_from_le_bytes, f32_to_le_bytes, sha256_hex};
use crate::error::{G2dError, Result};

/// A named tensor on its way to disk.
pub struct Named<'a> {
    pub name: &'a str,
    pub shape: Vec<usize>,
    pub values: &'a [f32],
}

impl<'a> Named<'a> {
    pub fn vector(name: &'a str, values: &'a [f32]) -> Self {
        Self {
            name,
            shape: vec![values.len()],
            values,
        }
    }
}

/// Writes `bytes` to `path` all at once: into a temporary file in the same directory, flushed,
/// then renamed over `path`. An interrupted or failed write leaves the old file as it was.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&temp).and_then(|mut f| {
        f.write_all(bytes.as_ref())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(G2dError::io(path, e));
    }
    Ok(())
}

/// Writes `tensors` and `meta` to `path`, recording `derived_from`: the hash of what the
/// artifact was made from (see [`Loaded::check_derived_from`]).
pub fn save(
    path: &Path,
    meta: &impl Serialize,
    derived_from: &str,
    tensors: &[Named],
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| f32_to_le_bytes(t.values)).collect();
    let views = tensors.iter().zip(&bytes).map(|(t, b)| {
        (
            t.name.to_string(),
            TensorView::new(Dtype::F32, t.shape.clone(), b).expect("shape matches data"),
        )
    });
    let meta = serde_json::to_string(meta).expect("metadata serialises");
    let header = HashMap::from([
        ("g2d".to_string(), meta),
        (DERIVED_FROM.to_string(), derived_from.to_string()),
    ]);
    let data = safetensors::serialize(views, Some(header))
        .map_err(|e| G2dError::config(path.display().to_string(), e.to_string()))?;
    write_atomic(path, data)
}

/// The header key under which an artifact records what it was derived from.
const DERIVED_FROM: &str = "g2d_derived_from";

/// A loaded artifact.
pub struct Loaded {
    path: String,
    /// The command that writes this artifact, named when it does not read back.
    made_by: String,
    meta: String,
    /// Hex SHA-256 of the whole file: what the next stage records as its origin.
    pub sha256: String,
    derived_from: Option<String>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Loaded {
    /// Refuses an artifact that was made from something other than `origin` (the hash of its
    /// input as it is now): an earlier stage was rerun after it, so it must be remade with
    /// `g2d {rerun}`. Artifacts written before hashes were recorded pass.
    pub fn check_derived_from(&self, origin: &str, input: &str, rerun: &str) -> Result<()> {
        match &self.derived_from {
            Some(d) if d != origin => Err(G2dError::Stale {
                what: self.path.clone(),
                reason: format!("it was made from another {input} than the one in the run"),
                rerun: rerun.to_string(),
            }),
            _ => Ok(()),
        }
    }

    fn corrupt(&self, reason: String) -> G2dError {
        corrupt(&self.path, &self.made_by, reason)
    }

    pub fn meta<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.meta)
            .map_err(|e| self.corrupt(format!("its g2d metadata does not parse: {e}")))
    }

    pub fn tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| self.corrupt(format!("has no tensor named {name:?}")))
    }

    pub fn vector(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.tensor(name)?.1)
    }

    /// A `[rows, len]` tensor as rows, or none where the file has no such tensor (one written
    /// before the tensor existed).
    pub fn rows_if_any(&self, name: &str) -> Result<Vec<Vec<f32>>> {
        match self.tensors.contains_key(name) {
            true => self.rows(name),
            false => Ok(Vec::new()),
        }
    }

    /// A `[rows, len]` tensor as rows.
    pub fn rows(&self, name: &str) -> Result<Vec<Vec<f32>>> {
        let (shape, values) = self.tensor(name)?;
        let len = *shape.last().unwrap_or(&0);
        Ok(values.chunks(len.max(1)).map(<[f32]>::to_vec).collect())
    }
}

fn corrupt(path: &str, made_by: &str, reason: String) -> G2dError {
    G2dError::Artifact {
        path: path.into(),
        reason,
        rerun: made_by.into(),
    }
}

/// Reads an artifact written by [`save`]; a missing file says which stage makes it.
pub fn load(path: &Path, made_by: &str) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| {
        G2dError::io(
            path,
            std::io::Error::new(e.kind(), format!("{e} (run `g2d {made_by}` first)")),
        )
    })?;
    let what = path.display().to_string();
    let invalid = |e: safetensors::SafeTensorError| {
        corrupt(&what, made_by, format!("not a safetensors file: {e}"))
    };
    let st = SafeTensors::deserialize(&bytes).map_err(invalid)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(invalid)?;
    let entry = |key: &str| header.metadata().as_ref().and_then(|m| m.get(key).cloned());
    let meta = entry("g2d").ok_or_else(|| corrupt(&what, made_by, "has no g2d metadata".into()))?;
    let derived_from = entry(DERIVED_FROM);
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(&what, made_by, format!("tensor {name} is not f32")));
        }
        let values = f32_from_le_bytes(view.data());
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    Ok(Loaded {
        path: what,
        made_by: made_by.into(),
        meta,
        sha256: sha256_hex(&bytes),
        derived_from,
        tensors,
    })
}
