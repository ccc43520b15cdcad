//! PyTorch interchange: a classifier to and from a `state_dict` saved as safetensors (what
//! `safetensors.torch.save_file(model.state_dict(), path)` writes and
//! `model.load_state_dict(load_file(path))` reads).
//!
//! - **Layouts.** burn's `Linear` holds its weight as `[in, out]`, PyTorch's `nn.Linear` as
//!   `[out, in]`: 2-D weights are transposed on the way in and out. `Conv2d` weights
//!   (`[out, in, kh, kw]`) and biases are the same in both.
//! - **Names.** An imported model keeps its names ([`TorchNames`]: burn path → state_dict key),
//!   so exported sets load back into the user's module. A model trained here exports under
//!   burn's paths, which are those of a PyTorch module with the same attribute names (the
//!   README gives both classes).
//! - **Order.** A state_dict's keys come in any order (safetensors sorts them), so layers are
//!   matched by kind (convolutions before linear layers) and by name, numbers compared as
//!   numbers (`layers.10` after `layers.2`, `fc2` after `fc1`), then checked shape by shape.

use std::cmp::Ordering;
use std::path::Path;

use burn::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::classifier::{Arch, Classifier, ClassifierConfig};
use crate::codec::{f32_from_le_bytes, f32_to_le_bytes};
use crate::error::{G2dError, Result};
use crate::params::{layer_of, Manifest};

pub use crate::params::TorchNames;

/// One tensor of a state_dict, in PyTorch's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct TorchTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The classifier's tensors as a PyTorch state_dict, named by `names` (burn's paths where
/// `names` is `None`), in the classifier's module order.
pub fn state_dict(model: &Classifier, names: Option<&TorchNames>) -> Vec<TorchTensor> {
    let manifest = Manifest::full(model);
    let flat = manifest.flatten(model);
    manifest
        .tensors
        .iter()
        .map(|entry| {
            let values = &flat[entry.offset..entry.offset + entry.len()];
            let (shape, values) = swap_layout(&entry.shape, values);
            let name = names
                .and_then(|n| n.get(&entry.name))
                .unwrap_or(&entry.name)
                .clone();
            TorchTensor {
                name,
                shape,
                values,
            }
        })
        .collect()
}

/// A 2-D weight transposed (`[a, b]` → `[b, a]`); anything else as it is. Its own inverse.
fn swap_layout(shape: &[usize], values: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let &[rows, cols] = shape else {
        return (shape.to_vec(), values.to_vec());
    };
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    (vec![cols, rows], out)
}

/// The state_dict as safetensors bytes (f32, with PyTorch's `format: pt` metadata).
pub fn to_safetensors(tensors: &[TorchTensor]) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| f32_to_le_bytes(&t.values)).collect();
    let views = tensors.iter().zip(&bytes).map(|(t, b)| {
        let view = TensorView::new(Dtype::F32, t.shape.clone(), b).expect("shape matches data");
        (t.name.clone(), view)
    });
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| G2dError::Import {
        file: "state_dict".into(),
        reason: e.to_string(),
    })
}

/// The state_dict as a NumPy `.npz` (one f32 array per key, PyTorch's layout), for
/// `np.load(path)["fc1.weight"]`.
pub fn to_npz(tensors: &[TorchTensor]) -> Vec<u8> {
    let members: Vec<(String, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            (
                format!("{}.npy", t.name),
                crate::npy::npy_f32(&t.shape, &t.values),
            )
        })
        .collect();
    crate::npy::write_zip(&members)
}

/// Reads every tensor of a safetensors file as f32 (f32, f64, f16 and bf16 are converted).
pub fn read_safetensors(path: &Path) -> Result<Vec<TorchTensor>> {
    let bytes = std::fs::read(path).map_err(|e| G2dError::io(path, e))?;
    let fail = |reason: String| G2dError::Import {
        file: path.display().to_string(),
        reason,
    };
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| fail(format!("not a safetensors file ({e})")))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => f32_from_le_bytes(data),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            Dtype::BF16 => halves(data, |h| f32::from_bits(u32::from(h) << 16)),
            Dtype::F16 => halves(data, crate::codec::f16_to_f32),
            other => {
                return Err(fail(format!(
                    "tensor `{name}` is {other:?}; G2D imports floating-point weights"
                )))
            }
        };
        tensors.push(TorchTensor {
            name,
            shape: view.shape().to_vec(),
            values,
        });
    }
    Ok(tensors)
}

fn halves(data: &[u8], convert: impl Fn(u16) -> f32) -> Vec<f32> {
    data.chunks_exact(2)
        .map(|b| convert(u16::from_le_bytes([b[0], b[1]])))
        .collect()
}

/// A layer of the state_dict: its key prefix and its weight's shape (rank 2: linear, 4: conv).
struct Layer {
    prefix: String,
    shape: Vec<usize>,
}

impl Layer {
    fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// Loads a state_dict into the classifier `config` builds, returning the model and the name of
/// each tensor. Nothing partial: any tensor that does not map is an error naming it.
pub fn import(
    file: &Path,
    tensors: &[TorchTensor],
    config: &ClassifierConfig,
    device: &Device,
) -> Result<(Classifier, TorchNames)> {
    let fail = |reason: String| G2dError::Import {
        file: file.display().to_string(),
        reason,
    };
    let arch = config.arch;
    let layers = layers(tensors).map_err(&fail)?;
    same_shape(&layers, config).map_err(&fail)?;
    let model = config.init(device);
    let targets = model.layer_names();
    if layers.len() != targets.len() {
        let list: Vec<&str> = layers.iter().map(|l| l.prefix.as_str()).collect();
        return Err(fail(format!(
            "it has {} layers ({}); the run's {arch} has {} ({}){}",
            layers.len(),
            list.join(", "),
            targets.len(),
            targets.join(", "),
            arch_hint(arch)
        )));
    }
    let manifest = Manifest::full(&model);
    let mut names = TorchNames::new();
    let mut theta = Vec::with_capacity(manifest.len());
    for entry in &manifest.tensors {
        let layer = layer_of(&entry.name);
        let kind = &entry.name[layer.len() + 1..];
        let at = targets.iter().position(|t| *t == layer).expect("a layer");
        let name = format!("{}.{kind}", layers[at].prefix);
        let tensor = tensors.iter().find(|t| t.name == name).ok_or_else(|| {
            fail(format!(
                "`{name}` is missing (layer {layer} needs a {kind})"
            ))
        })?;
        let (shape, values) = swap_layout(&tensor.shape, &tensor.values);
        if shape != entry.shape {
            let mut want = entry.shape.clone();
            if want.len() == 2 {
                want.reverse(); // PyTorch's [out, in]
            }
            return Err(fail(format!(
                "`{name}` has shape {:?}; layer {layer} of the run's {arch} takes {want:?}{}",
                tensor.shape,
                arch_hint(arch)
            )));
        }
        crate::error::ensure_finite(&format!("{}: `{name}`", file.display()), &values)?;
        names.insert(entry.name.clone(), name);
        theta.extend(values);
    }
    Ok((manifest.unflatten(model, &theta)?, names))
}

/// For a CNN that is not the run's: how to describe it.
fn arch_hint(arch: Arch) -> &'static str {
    match arch {
        Arch::Cnn => {
            " (describe the network's layers in an architecture file and pass --arch FILE; \
             README: Bring your own PyTorch model)"
        }
        Arch::Mlp => "",
    }
}

/// The state_dict's layers against the run's classifier: the same architecture and, for the
/// MLP, the same widths, or an error that names the flag to pass.
fn same_shape(layers: &[Layer], config: &ClassifierConfig) -> std::result::Result<(), String> {
    let arch = config.arch;
    let found = layers.iter().any(|l| l.rank() == 4);
    if found != (arch == Arch::Cnn) {
        let held = if found { "cnn" } else { "mlp" };
        let article = if found { "a" } else { "an" };
        return Err(format!(
            "it holds {article} {held} but the run's architecture is {arch} (pass --arch {held})"
        ));
    }
    if arch == Arch::Mlp {
        let hidden = mlp_hidden(layers, config)?;
        if hidden != config.hidden {
            let flag: Vec<String> = hidden.iter().map(usize::to_string).collect();
            let fix = if flag.is_empty() {
                "set collect.hidden to [] in the config file".to_string()
            } else {
                format!("pass --hidden {}", flag.join(","))
            };
            let file = ClassifierConfig {
                hidden,
                ..config.clone()
            };
            return Err(format!(
                "it is an MLP {}; the run's is {} ({fix})",
                widths(&file),
                widths(config)
            ));
        }
    }
    Ok(())
}

/// The state_dict's layers in forward order: convolutions, then linear layers, each by name.
fn layers(tensors: &[TorchTensor]) -> std::result::Result<Vec<Layer>, String> {
    let mut layers = Vec::new();
    for t in tensors {
        let Some((prefix, kind)) = t.name.rsplit_once('.') else {
            return Err(format!("`{}` is not a layer's weight or bias", t.name));
        };
        match (kind, t.shape.len()) {
            ("weight", 2 | 4) => layers.push(Layer {
                prefix: prefix.to_string(),
                shape: t.shape.clone(),
            }),
            ("bias", 1) => {}
            _ => {
                return Err(format!(
                    "`{}` (shape {:?}) is not the weight or bias of an nn.Linear or nn.Conv2d",
                    t.name, t.shape
                ))
            }
        }
    }
    for t in tensors {
        if !layers.iter().any(|l| l.prefix == layer_of(&t.name)) {
            return Err(format!("`{}` has no weight beside it", t.name));
        }
    }
    if layers.is_empty() {
        return Err("it holds no nn.Linear or nn.Conv2d weight".into());
    }
    layers.sort_by(|a, b| b.rank().cmp(&a.rank()).then(natural(&a.prefix, &b.prefix)));
    Ok(layers)
}

/// The hidden widths of an MLP's linear layers (in order), which must chain from the data's
/// pixels to its classes (`config`'s).
fn mlp_hidden(
    layers: &[Layer],
    config: &ClassifierConfig,
) -> std::result::Result<Vec<usize>, String> {
    let pixels = config.inputs();
    let mut inputs = pixels;
    for layer in layers {
        let &[out, inp] = layer.shape.as_slice() else {
            unreachable!("an MLP's layers are linear")
        };
        if inp != inputs {
            let before = if inputs == pixels {
                let [rows, cols] = config.image;
                match config.channels {
                    1 => format!("the data's {rows}×{cols} images have {pixels} pixels"),
                    c => format!("the data's {c}×{rows}×{cols} images have {pixels} values"),
                }
            } else {
                format!("the layer before gives {inputs} outputs")
            };
            return Err(format!(
                "`{}.weight` is [{out}, {inp}] ([out, in]), but {before}",
                layer.prefix
            ));
        }
        inputs = out;
    }
    if inputs != config.classes {
        return Err(format!(
            "the last layer gives {inputs} outputs; the data has {} classes",
            config.classes
        ));
    }
    Ok(layers[..layers.len() - 1]
        .iter()
        .map(|l| l.shape[0])
        .collect())
}

/// `784-64-32-10`.
fn widths(config: &ClassifierConfig) -> String {
    let all = config.mlp_widths().into_iter();
    all.map(|w| w.to_string()).collect::<Vec<_>>().join("-")
}

/// Compares names with runs of digits taken as numbers: `fc2` < `fc10`, `0` < `2` < `10`.
fn natural(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, c) in s.char_indices().skip(1) {
            let prev = s[..i].chars().next_back().expect("i > 0");
            if c.is_ascii_digit() != prev.is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out.push(&s[start..]);
        out.into_iter()
            .map(|c| (c.starts_with(|d: char| d.is_ascii_digit()), c))
            .collect()
    }
    for (x, y) in chunks(a).into_iter().zip(chunks(b)) {
        let order = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then(x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_order_with_numbers_as_numbers() {
        let mut names = vec!["layers.10", "layers.2", "fc2", "fc10", "fc1", "0", "4", "2"];
        names.sort_by(|a, b| natural(a, b));
        assert_eq!(
            names,
            ["0", "2", "4", "fc1", "fc2", "fc10", "layers.2", "layers.10"]
        );
    }

    #[test]
    fn a_weight_transposes_and_back() {
        let (shape, values) = swap_layout(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        assert_eq!(shape, [3, 2]);
        assert_eq!(values, [1., 4., 2., 5., 3., 6.]);
        assert_eq!(swap_layout(&shape, &values).1, [1., 2., 3., 4., 5., 6.]);
        assert_eq!(swap_layout(&[4], &[1., 2., 3., 4.]).1, [1., 2., 3., 4.]);
    }
}
