//! The MLP classifier as a function of a batch of regenerated parameter vectors: one batched
//! forward evaluates every parameter set of a diffusion batch on the same images, so the
//! function-space terms of the G2D loss (task and vulnerability cross-entropy) cost one pass,
//! and their gradient flows back through the decoder into the denoiser.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};

use crate::classifier::{Arch, Classifier};
use crate::error::{G2dError, Result};
use crate::params::Manifest;

/// Where one tensor of a layer comes from.
#[derive(Clone, Debug)]
enum Source {
    /// A fixed tensor, shared by every parameter set.
    Fixed(Box<Tensor<2>>),
    /// A slice `offset..offset + rows·cols` of each regenerated vector.
    Generated { offset: usize },
}

#[derive(Clone, Debug)]
struct Layer {
    inputs: usize,
    outputs: usize,
    weight: Source,
    bias: Source,
}

/// The MLP with its fixed tensors in place and its regenerated ones taken per parameter set.
#[derive(Clone, Debug)]
pub struct FunctionalMlp {
    layers: Vec<Layer>,
}

impl FunctionalMlp {
    /// From the classifier that holds the fixed tensors (its regenerated ones are ignored) and
    /// the manifest of the regenerated vector. Only the MLP has a batched forward.
    pub fn new(arch: Arch, classifier: &Classifier, regenerated: &Manifest) -> Result<Self> {
        if arch != Arch::Mlp {
            return Err(G2dError::config(
                "diffusion.task_weight / diffusion.vulnerability_weight",
                "the function-space terms need the MLP (arch mlp)",
            ));
        }
        let device = classifier.devices()[0].clone();
        let all = Manifest::full(classifier);
        let values = all.flatten(classifier);
        let mut layers = Vec::new();
        for name in classifier.layer_names() {
            let entry = |suffix: &str| {
                let full = format!("{name}.{suffix}");
                all.tensors
                    .iter()
                    .find(|t| t.name == full)
                    .cloned()
                    .expect("every MLP layer has a weight and a bias")
            };
            let (w, b) = (entry("weight"), entry("bias"));
            let source =
                |e: &crate::params::TensorEntry, rows: usize, cols: usize| match regenerated
                    .tensors
                    .iter()
                    .find(|t| t.name == e.name)
                {
                    Some(t) => Source::Generated { offset: t.offset },
                    None => Source::Fixed(Box::new(
                        Tensor::<1>::from_floats(&values[e.offset..e.offset + e.len()], &device)
                            .reshape([rows, cols]),
                    )),
                };
            let (inputs, outputs) = (w.shape[0], w.shape[1]);
            layers.push(Layer {
                inputs,
                outputs,
                weight: source(&w, inputs, outputs),
                bias: source(&b, 1, outputs),
            });
        }
        Ok(FunctionalMlp { layers })
    }

    /// Logits of every parameter set on every image.
    ///
    /// # Shapes
    ///   - theta [sets, param_len] (regenerated vectors), images [n, 784]
    ///   - output [sets, n, 10]
    pub fn forward(&self, theta: Tensor<2>, images: Tensor<2>) -> Tensor<3> {
        let [sets, _] = theta.dims();
        let [n, _] = images.dims();
        let mut h: Tensor<3> = images.unsqueeze_dim::<3>(0); // [1, n, 784]
        for (i, layer) in self.layers.iter().enumerate() {
            let (rows, cols) = (layer.inputs, layer.outputs);
            let [shared, _, _] = h.dims();
            h = match &layer.weight {
                Source::Fixed(w) => h
                    .reshape([shared * n, rows])
                    .matmul(*w.clone())
                    .reshape([shared, n, cols]),
                Source::Generated { offset } => {
                    let w = theta
                        .clone()
                        .slice([0..sets, *offset..offset + rows * cols])
                        .reshape([sets, rows, cols]);
                    let h = if shared == 1 {
                        h.repeat_dim(0, sets)
                    } else {
                        h
                    };
                    h.matmul(w) // [sets, n, cols]
                }
            };
            let bias: Tensor<3> = match &layer.bias {
                Source::Fixed(b) => b.clone().unsqueeze_dim::<3>(0), // [1, 1, cols]
                Source::Generated { offset } => theta
                    .clone()
                    .slice([0..sets, *offset..offset + cols])
                    .reshape([sets, 1, cols]),
            };
            h = h + bias;
            if i + 1 < self.layers.len() {
                h = relu(h);
            }
        }
        let [shared, _, _] = h.dims();
        if shared == 1 {
            h.repeat_dim(0, sets)
        } else {
            h
        }
    }

    /// Mean cross-entropy of each parameter set on `images`.
    ///
    /// # Shapes
    ///   - theta [sets, param_len], images [n, 784], labels [n] → [sets]
    pub fn cross_entropy(
        &self,
        theta: Tensor<2>,
        images: Tensor<2>,
        labels: Tensor<1, Int>,
    ) -> Tensor<1> {
        let [sets, _] = theta.dims();
        let [n] = labels.dims();
        let logits = self.forward(theta, images); // [sets, n, 10]
        let picked = log_softmax(logits, 2).gather(
            2,
            labels.reshape([1, n, 1]).repeat_dim(0, sets), // [sets, n, 1]
        );
        -picked.mean_dim(1).reshape([sets])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::params::Scope;

    #[test]
    fn batched_forward_equals_the_classifier_with_each_set_installed() {
        let device = cpu_device();
        let base = Classifier::new(Arch::Mlp, &device);
        let images = Tensor::<2>::random([5, 784], burn::tensor::Distribution::Default, &device);
        for scope in [Scope::Last, Scope::LastTwo, Scope::All] {
            let m = Manifest::regenerated(&base, scope);
            let sets: Vec<Vec<f32>> = (0..3)
                .map(|_| m.flatten(&Classifier::new(Arch::Mlp, &device)))
                .collect();
            let theta =
                Tensor::<1>::from_floats(sets.concat().as_slice(), &device).reshape([3, m.len()]);
            let f = FunctionalMlp::new(Arch::Mlp, &base, &m).unwrap();
            let batched = f.forward(theta, images.clone());
            for (s, set) in sets.iter().enumerate() {
                let want = m
                    .unflatten(base.clone(), set)
                    .unwrap()
                    .forward(images.clone())
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                let got = batched
                    .clone()
                    .narrow(0, s, 1)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(worst < 1e-4, "{scope:?} set {s}: {worst}");
            }
        }
    }

    #[test]
    fn the_cnn_is_refused_with_a_reason() {
        let device = cpu_device();
        let cnn = Classifier::new(Arch::Cnn, &device);
        let m = Manifest::regenerated(&cnn, Scope::Last);
        let err = FunctionalMlp::new(Arch::Cnn, &cnn, &m)
            .unwrap_err()
            .to_string();
        assert!(err.contains("need the MLP"), "{err}");
    }
}
