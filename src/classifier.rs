//! Stage 1, the protected classifier (the "target"): a small MLP or CNN for 28×28 grey images.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::module::{
    conv_transpose2d, max_pool2d_with_indices, max_pool2d_with_indices_backward,
};
use burn::tensor::ops::{ConvTransposeOptions, MaxPoolOptions};
use serde::{Deserialize, Serialize};

/// Which classifier G2D protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 784 → 64 → 32 → 10, ReLU.
    Mlp,
    /// conv 5×5 (8) → pool → conv 5×5 (16) → pool → 256 → 10.
    Cnn,
}

pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
pub const CLASSES: usize = 10;

#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    activation: Relu,
}

impl Mlp {
    /// # Shapes
    ///   - images [batch, 784] → logits [batch, 10]
    pub fn forward(&self, images: Tensor<2>) -> Tensor<2> {
        let x = self.activation.forward(self.fc1.forward(images)); // [batch, 64]
        let x = self.activation.forward(self.fc2.forward(x)); // [batch, 32]
        self.fc3.forward(x)
    }

    /// The forward pass again, keeping what the backward pass needs, then the chain rule from
    /// `grad(logits)` back to the images.
    fn input_gradient(&self, images: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<2> {
        let z1 = self.fc1.forward(images);
        let z2 = self.fc2.forward(self.activation.forward(z1.clone()));
        let logits = self.fc3.forward(self.activation.forward(z2.clone()));
        let g = linear_backward(&self.fc3, logits_gradient(logits, labels));
        let g = linear_backward(&self.fc2, relu_backward(g, z2));
        linear_backward(&self.fc1, relu_backward(g, z1))
    }
}

/// ∂(mean cross-entropy)/∂logits = (softmax − one-hot) / batch.
fn logits_gradient(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<2> {
    let [batch, classes] = logits.dims();
    // By comparison with 0..classes: `Tensor::one_hot` checks its labels by reading them
    // back synchronously, which the browser cannot do.
    let class_ids = Tensor::<1, Int>::arange(0..classes as i64, &logits.device())
        .reshape([1, classes])
        .expand([batch, classes]);
    let one_hot = labels
        .reshape([batch, 1])
        .expand([batch, classes])
        .equal(class_ids)
        .float();
    (softmax(logits, 1) - one_hot) / batch as f32
}

/// Through `y = x·W + b`: ∂x = ∂y·Wᵀ.
fn linear_backward(layer: &Linear, grad: Tensor<2>) -> Tensor<2> {
    grad.matmul(layer.weight.val().transpose())
}

/// Through a ReLU whose input was `pre`: the gradient passes where `pre > 0` (burn's rule).
fn relu_backward<const D: usize>(grad: Tensor<D>, pre: Tensor<D>) -> Tensor<D> {
    grad.mask_fill(pre.lower_equal_elem(0.0), 0.0)
}

#[derive(Module, Debug)]
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    activation: Relu,
}

impl Cnn {
    /// # Shapes
    ///   - images [batch, 784] → logits [batch, 10]
    pub fn forward(&self, images: Tensor<2>) -> Tensor<2> {
        let [batch, _] = images.dims();
        let x = images.reshape([batch, 1, IMAGE_SIDE, IMAGE_SIDE]);
        let x = self
            .pool
            .forward(self.activation.forward(self.conv1.forward(x))); // [batch, 8, 12, 12]
        let x = self
            .pool
            .forward(self.activation.forward(self.conv2.forward(x))); // [batch, 16, 4, 4]
        self.fc1.forward(x.reshape([batch, 16 * 4 * 4]))
    }

    /// As [`Mlp::input_gradient`]: convolutions go back by the transposed convolution with
    /// the same weights, pooling by the indices of each window's maximum.
    fn input_gradient(&self, images: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<2> {
        let [batch, _] = images.dims();
        let x = images.reshape([batch, 1, IMAGE_SIDE, IMAGE_SIDE]);
        let c1 = self.conv1.forward(x);
        let r1 = self.activation.forward(c1.clone());
        let (p1, i1) = max_pool2d_with_indices(r1.clone(), self.pool_options());
        let c2 = self.conv2.forward(p1);
        let r2 = self.activation.forward(c2.clone());
        let (p2, i2) = max_pool2d_with_indices(r2.clone(), self.pool_options());
        let logits = self.fc1.forward(p2.reshape([batch, 16 * 4 * 4]));
        let g = linear_backward(&self.fc1, logits_gradient(logits, labels));
        let g = self.pool_backward(r2, g.reshape([batch, 16, 4, 4]), i2);
        let g = conv_backward(&self.conv2, relu_backward(g, c2));
        let g = self.pool_backward(r1, g, i1);
        conv_backward(&self.conv1, relu_backward(g, c1)).reshape([batch, IMAGE_PIXELS])
    }

    fn pool_options(&self) -> MaxPoolOptions<2> {
        MaxPoolOptions::new(self.pool.kernel_size)
            .with_stride(self.pool.stride)
            .with_dilation(self.pool.dilation)
            .with_ceil_mode(self.pool.ceil_mode)
    }

    fn pool_backward(
        &self,
        input: Tensor<4>,
        grad: Tensor<4>,
        indices: Tensor<4, Int>,
    ) -> Tensor<4> {
        let p = &self.pool;
        max_pool2d_with_indices_backward(
            input,
            p.kernel_size,
            p.stride,
            [0, 0],
            p.dilation,
            p.ceil_mode,
            grad,
            indices,
        )
    }
}

/// Through a stride-1, unpadded convolution: ∂x is the transposed convolution of ∂y with the
/// same weights.
fn conv_backward(layer: &Conv2d, grad: Tensor<4>) -> Tensor<4> {
    let options = ConvTransposeOptions::new([1, 1], [0, 0], [0, 0], layer.dilation, layer.groups);
    conv_transpose2d(grad, layer.weight.val(), None, options)
}

/// The protected classifier.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // built once per model; boxing would fight the Module derive
pub enum Classifier {
    Mlp(Mlp),
    Cnn(Cnn),
}

impl Classifier {
    pub fn new(arch: Arch, device: &Device) -> Self {
        match arch {
            Arch::Mlp => Classifier::Mlp(Mlp {
                fc1: LinearConfig::new(IMAGE_PIXELS, 64).init(device),
                fc2: LinearConfig::new(64, 32).init(device),
                fc3: LinearConfig::new(32, CLASSES).init(device),
                activation: Relu::new(),
            }),
            Arch::Cnn => Classifier::Cnn(Cnn {
                conv1: Conv2dConfig::new([1, 8], [5, 5]).init(device),
                conv2: Conv2dConfig::new([8, 16], [5, 5]).init(device),
                pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                fc1: LinearConfig::new(16 * 4 * 4, CLASSES).init(device),
                activation: Relu::new(),
            }),
        }
    }

    /// # Shapes
    ///   - images [batch, 784], pixels in [0, 1] → logits [batch, 10]
    pub fn forward(&self, images: Tensor<2>) -> Tensor<2> {
        match self {
            Classifier::Mlp(m) => m.forward(images),
            Classifier::Cnn(m) => m.forward(images),
        }
    }

    /// The gradient of [`cross_entropy`] (the batch mean) with respect to the images, by a
    /// hand-written backward pass: attacks need no autodiff, which the browser build leaves
    /// out. Matches burn's autodiff (tests/ pin it for both architectures).
    ///
    /// # Shapes
    ///   - images [batch, 784], labels [batch] → gradient [batch, 784]
    pub fn input_gradient(&self, images: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<2> {
        match self {
            Classifier::Mlp(m) => m.input_gradient(images, labels),
            Classifier::Cnn(m) => m.input_gradient(images, labels),
        }
    }

    /// Names of the layers from input to output, as they appear in parameter names.
    pub fn layer_names(arch: Arch) -> &'static [&'static str] {
        match arch {
            Arch::Mlp => &["fc1", "fc2", "fc3"],
            Arch::Cnn => &["conv1", "conv2", "fc1"],
        }
    }
}

/// Builds the image batch tensor `[n, 784]` from host pixels.
pub fn images_tensor(pixels: &[f32], device: &Device) -> Tensor<2> {
    let n = pixels.len() / IMAGE_PIXELS;
    Tensor::<1>::from_floats(pixels, device).reshape([n, IMAGE_PIXELS])
}

/// Builds the label tensor `[n]` from host labels.
pub fn labels_tensor(labels: &[u8], device: &Device) -> Tensor<1, Int> {
    let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::<1, Int>::from_ints(labels.as_slice(), device)
}

/// Mean cross-entropy of `logits` against `labels`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([batch, 1]));
    -picked.mean()
}
