//! Files of a run directory: named f32 tensors in safetensors, with the stage's own JSON
//! metadata under the key `g2d`, so each artifact says what made it.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{f32_from_le_bytes, f32_to_le_bytes};
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

/// Writes `tensors` and `meta` to `path`.
pub fn save(path: &Path, meta: &impl Serialize, tensors: &[Named]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| f32_to_le_bytes(t.values)).collect();
    let views = tensors.iter().zip(&bytes).map(|(t, b)| {
        (
            t.name.to_string(),
            TensorView::new(Dtype::F32, t.shape.clone(), b).expect("shape matches data"),
        )
    });
    let meta = serde_json::to_string(meta).expect("metadata serialises");
    let data = safetensors::serialize(views, Some(HashMap::from([("g2d".to_string(), meta)])))
        .map_err(|e| G2dError::config(path.display().to_string(), e.to_string()))?;
    std::fs::write(path, data).map_err(|e| G2dError::io(path, e))
}

/// A loaded artifact.
pub struct Loaded {
    path: String,
    meta: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Loaded {
    pub fn meta<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.meta).map_err(|source| G2dError::Json {
            what: format!("{} metadata", self.path),
            source,
        })
    }

    pub fn tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| G2dError::config(&self.path, format!("has no tensor named {name:?}")))
    }

    pub fn vector(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.tensor(name)?.1)
    }

    /// A `[rows, len]` tensor as rows.
    pub fn rows(&self, name: &str) -> Result<Vec<Vec<f32>>> {
        let (shape, values) = self.tensor(name)?;
        let len = *shape.last().unwrap_or(&0);
        Ok(values.chunks(len.max(1)).map(<[f32]>::to_vec).collect())
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
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| G2dError::config(&what, format!("not a valid artifact: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| G2dError::config(&what, format!("not a valid artifact: {e}")))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("g2d").cloned())
        .ok_or_else(|| G2dError::config(&what, "has no g2d metadata"))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(G2dError::config(&what, format!("tensor {name} is not f32")));
        }
        let values = f32_from_le_bytes(view.data());
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    Ok(Loaded {
        path: what,
        meta,
        tensors,
    })
}
