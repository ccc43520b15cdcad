//! Stage 1, the protected classifier (the "target"): a small MLP or CNN for 28×28 grey images.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
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
