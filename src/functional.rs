//! The MLP classifier as a function of a batch of regenerated parameter vectors: one batched
//! forward evaluates every parameter set of a diffusion batch on the same images (or each set
//! on its own images), so the function-space terms of the G2D loss (task, vulnerability and
//! cross cross-entropy) cost one pass, and their gradient flows back through the decoder into
//! the denoiser. The input gradient of every set, written out like the classifier's own,
//! crafts the cross term's examples (FGSM, or PGD steps on each set's own examples).

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};

use crate::classifier::{logits_gradient, relu_backward, Arch, Classifier};
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
                "diffusion.task_weight / diffusion.vulnerability_weight / diffusion.cross_weight",
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

    /// Each layer's weight and bias for the parameter sets `theta` `[sets, param_len]`.
    fn tensors(&self, theta: &Tensor<2>) -> Vec<(Weight, Tensor<3>)> {
        let [sets, _] = theta.dims();
        let take = |offset: usize, rows: usize, cols: usize| {
            theta
                .clone()
                .slice([0..sets, offset..offset + rows * cols])
                .reshape([sets, rows, cols])
        };
        self.layers
            .iter()
            .map(|layer| {
                let (rows, cols) = (layer.inputs, layer.outputs);
                let weight = match &layer.weight {
                    Source::Fixed(w) => Weight::Shared(*w.clone()),
                    Source::Generated { offset } => Weight::PerSet(take(*offset, rows, cols)),
                };
                let bias = match &layer.bias {
                    Source::Fixed(b) => b.clone().unsqueeze_dim::<3>(0), // [1, 1, cols]
                    Source::Generated { offset } => take(*offset, 1, cols), // [sets, 1, cols]
                };
                (weight, bias)
            })
            .collect()
    }

    /// The forward pass from `images` (`[1, n, 784]`, shared, or `[sets, n, 784]`, one batch
    /// per set), keeping each hidden layer's pre-activation in `pre` when asked.
    fn run(
        &self,
        tensors: &[(Weight, Tensor<3>)],
        images: Tensor<3>,
        mut pre: Option<&mut Vec<Tensor<3>>>,
    ) -> Tensor<3> {
        let mut h = images;
        let last = tensors.len() - 1;
        for (i, (weight, bias)) in tensors.iter().enumerate() {
            h = weight.apply(h) + bias.clone();
            if i < last {
                if let Some(pre) = pre.as_deref_mut() {
                    pre.push(h.clone());
                }
                h = relu(h);
            }
        }
        h
    }

    /// Logits of every parameter set on every image.
    ///
    /// # Shapes
    ///   - theta [sets, param_len] (regenerated vectors), images [n, 784]
    ///   - output [sets, n, 10]
    pub fn forward(&self, theta: Tensor<2>, images: Tensor<2>) -> Tensor<3> {
        self.forward_each(theta, images.unsqueeze_dim::<3>(0))
    }

    /// Logits of each parameter set on its own images.
    ///
    /// # Shapes
    ///   - theta [sets, param_len], images [sets, n, 784] (or [1, n, 784], shared)
    ///   - output [sets, n, 10]
    pub fn forward_each(&self, theta: Tensor<2>, images: Tensor<3>) -> Tensor<3> {
        let [sets, _] = theta.dims();
        let logits = self.run(&self.tensors(&theta), images, None);
        per_set(logits, sets)
    }

    /// ∂(cross-entropy)/∂images for every parameter set on its own images (shared, or one batch
    /// per set: a PGD step on every set's examples at once), by the chain rule written out
    /// (ReLU passes the gradient where its input is > 0, as burn's autodiff does). Each image's
    /// gradient is that of its own loss, scaled by 1/n like [`Classifier::input_gradient`]'s.
    ///
    /// # Shapes
    ///   - theta [sets, param_len], images [sets, n, 784] (or [1, n, 784], shared), labels [n]
    ///   - output [sets, n, 784]
    pub fn input_gradient(
        &self,
        theta: Tensor<2>,
        images: Tensor<3>,
        labels: Tensor<1, Int>,
    ) -> Tensor<3> {
        let [sets, _] = theta.dims();
        let n = images.dims()[1];
        let tensors = self.tensors(&theta);
        let mut pre = Vec::with_capacity(tensors.len() - 1);
        let logits = per_set(self.run(&tensors, images, Some(&mut pre)), sets);
        let classes = logits.dims()[2];
        let labels = labels
            .reshape([1, n])
            .repeat_dim(0, sets)
            .reshape([sets * n]);
        let mut g = (logits_gradient(logits.reshape([sets * n, classes]), labels) * sets as f32)
            .reshape([sets, n, classes]);
        for (i, (weight, _)) in tensors.iter().enumerate().rev() {
            g = weight.backward(g);
            if i > 0 {
                g = relu_backward(g, pre[i - 1].clone());
            }
        }
        per_set(g, sets)
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
        self.cross_entropy_each(theta, images.unsqueeze_dim::<3>(0), labels)
    }

    /// Mean cross-entropy of each parameter set on its own images (the same labels for all).
    ///
    /// # Shapes
    ///   - theta [sets, param_len], images [sets, n, 784] (or [1, n, 784]), labels [n] → [sets]
    pub fn cross_entropy_each(
        &self,
        theta: Tensor<2>,
        images: Tensor<3>,
        labels: Tensor<1, Int>,
    ) -> Tensor<1> {
        let [sets, _] = theta.dims();
        let [n] = labels.dims();
        let logits = self.forward_each(theta, images); // [sets, n, 10]
        let picked = log_softmax(logits, 2).gather(
            2,
            labels.reshape([1, n, 1]).repeat_dim(0, sets), // [sets, n, 1]
        );
        -picked.mean_dim(1).reshape([sets])
    }
}

/// One layer's weight: fixed and shared by every set, or one per set.
enum Weight {
    /// `[rows, cols]`.
    Shared(Tensor<2>),
    /// `[sets, rows, cols]`.
    PerSet(Tensor<3>),
}

impl Weight {
    /// `h · W` for activations `h` `[1 or sets, n, rows]` → `[1 or sets, n, cols]`.
    fn apply(&self, h: Tensor<3>) -> Tensor<3> {
        let [shared, n, rows] = h.dims();
        match self {
            Weight::Shared(w) => {
                let cols = w.dims()[1];
                h.reshape([shared * n, rows])
                    .matmul(w.clone())
                    .reshape([shared, n, cols])
            }
            Weight::PerSet(w) => per_set(h, w.dims()[0]).matmul(w.clone()),
        }
    }

    /// `g · Wᵀ`, the gradient of [`Weight::apply`] with respect to its input.
    fn backward(&self, g: Tensor<3>) -> Tensor<3> {
        let [shared, n, cols] = g.dims();
        match self {
            Weight::Shared(w) => {
                let rows = w.dims()[0];
                g.reshape([shared * n, cols])
                    .matmul(w.clone().transpose())
                    .reshape([shared, n, rows])
            }
            Weight::PerSet(w) => per_set(g, w.dims()[0]).matmul(w.clone().swap_dims(1, 2)),
        }
    }
}

/// `x` `[1 or sets, …]` with its first dimension repeated to `sets`.
fn per_set(x: Tensor<3>, sets: usize) -> Tensor<3> {
    match x.dims()[0] {
        1 if sets != 1 => x.repeat_dim(0, sets),
        _ => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::params::Scope;

    /// For each scope and three random parameter sets, `batched` on all of them equals `single`
    /// with each set installed in the classifier, within 1e-4 of the largest |value|.
    fn equals_each_set_installed(
        what: &str,
        batched: impl Fn(&FunctionalMlp, Tensor<2>) -> Tensor<3>,
        single: impl Fn(&Classifier) -> Tensor<2>,
    ) {
        let device = cpu_device();
        let base = Classifier::new(Arch::Mlp, &device);
        for scope in [Scope::Last, Scope::LastTwo, Scope::All] {
            let m = Manifest::regenerated(&base, scope);
            let sets: Vec<Vec<f32>> = (0..3)
                .map(|_| m.flatten(&Classifier::new(Arch::Mlp, &device)))
                .collect();
            let theta =
                Tensor::<1>::from_floats(sets.concat().as_slice(), &device).reshape([3, m.len()]);
            let f = FunctionalMlp::new(Arch::Mlp, &base, &m).unwrap();
            let all = batched(&f, theta);
            for (s, set) in sets.iter().enumerate() {
                let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
                let want = values(single(&m.unflatten(base.clone(), set).unwrap()));
                let got = values(all.clone().narrow(0, s, 1).squeeze_dim(0));
                assert_eq!(got.len(), want.len(), "{what}");
                let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs()));
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    scale > 0.0 && worst <= 1e-4 * scale,
                    "{what}, {scope:?} set {s}: {worst} (largest {scale})"
                );
            }
        }
    }

    fn images_and_labels() -> (Tensor<2>, Tensor<1, Int>) {
        let device = cpu_device();
        (
            Tensor::<2>::random([6, 784], burn::tensor::Distribution::Default, &device),
            Tensor::<1, Int>::from_ints([0, 3, 9, 1, 1, 7], &device),
        )
    }

    #[test]
    fn batched_forward_equals_the_classifier_with_each_set_installed() {
        let (images, _) = images_and_labels();
        equals_each_set_installed(
            "forward",
            |f, theta| f.forward(theta, images.clone()),
            |c| c.forward(images.clone()),
        );
        // Each set on its own copy of the images is the same.
        equals_each_set_installed(
            "forward_each",
            |f, theta| f.forward_each(theta, images.clone().unsqueeze_dim(0).repeat_dim(0, 3)),
            |c| c.forward(images.clone()),
        );
    }

    #[test]
    fn batched_input_gradient_equals_the_classifiers_with_each_set_installed() {
        let (images, labels) = images_and_labels();
        equals_each_set_installed(
            "input_gradient",
            |f, theta| f.input_gradient(theta, images.clone().unsqueeze_dim(0), labels.clone()),
            |c| c.input_gradient(images.clone(), labels.clone()),
        );
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
