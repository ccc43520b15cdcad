//! Stage 1, the protected classifier (the "target"): an MLP of any widths, or a CNN of any
//! list of convolutions, poolings and linear layers ([`cnn`]), for grey or colour images of any
//! size and any number of classes.

pub mod cnn;

use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::{Deserialize, Serialize};

pub use cnn::{Cnn, LayerSpec};

/// Which classifier G2D protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 784 → hidden widths (64 → 32 by default) → 10, ReLU between layers.
    Mlp,
    /// Convolutions, poolings and linear layers: G2D's own (conv 5×5 (8) → pool → conv 5×5
    /// (16) → pool → linear) unless `layers` lists others.
    Cnn,
}

pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
pub const CLASSES: usize = 10;

/// The MLP's hidden widths unless a run or a bundle says otherwise.
pub const MLP_HIDDEN: [usize; 2] = [64, 32];

/// [`MLP_HIDDEN`] as serde's default for files written before widths were recorded.
pub fn default_hidden() -> Vec<usize> {
    MLP_HIDDEN.to_vec()
}

/// MNIST's 28×28, serde's default for files written before image sizes were recorded.
pub fn default_image() -> [usize; 2] {
    [IMAGE_SIDE, IMAGE_SIDE]
}

/// MNIST's 10, serde's default for files written before class counts were recorded.
pub fn default_classes() -> usize {
    CLASSES
}

/// One channel (grey), serde's default for files written before colour images.
pub fn default_channels() -> usize {
    1
}

fn is_grey(channels: &usize) -> bool {
    *channels == 1
}

/// Bound on a classifier's weights, checked before one is built from a file (about 16 MB of
/// f32).
pub const MAX_CLASSIFIER_PARAMS: usize = 1 << 22;

/// The classifier's shape: the architecture, the images it reads and the classes it tells
/// apart (both from the data), for the MLP its hidden widths, for the CNN its layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    pub arch: Arch,
    /// Absent in files written before widths were a setting: [`MLP_HIDDEN`].
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Image height and width; absent: 28×28.
    #[serde(default = "default_image")]
    pub image: [usize; 2],
    /// Channels per image: 1 (grey, written as absent) or 3 (RGB).
    #[serde(default = "default_channels", skip_serializing_if = "is_grey")]
    pub channels: usize,
    /// Absent: 10.
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// The CNN's layers, input to logits; absent: G2D's own ([`cnn::default_layers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerSpec>>,
}

impl ClassifierConfig {
    /// `arch` with the default widths, for MNIST's 28×28 images and 10 classes.
    pub fn new(arch: Arch) -> Self {
        Self {
            arch,
            hidden: default_hidden(),
            image: default_image(),
            channels: default_channels(),
            classes: default_classes(),
            layers: None,
        }
    }

    /// The same network for images of `image` size and `classes` classes.
    pub fn with_data(self, image: [usize; 2], classes: usize) -> Self {
        Self {
            image,
            classes,
            ..self
        }
    }

    /// The same network for images of `channels` channels.
    pub fn with_channels(self, channels: usize) -> Self {
        Self { channels, ..self }
    }

    /// Values per image (channels × height × width): the MLP's inputs.
    pub fn inputs(&self) -> usize {
        self.channels * self.image[0] * self.image[1]
    }

    /// `[channels, height, width]`, PyTorch's layout of one image.
    pub fn input_shape(&self) -> [usize; 3] {
        [self.channels, self.image[0], self.image[1]]
    }

    pub fn init(&self, device: &Device) -> Classifier {
        match self.arch {
            Arch::Mlp => {
                let widths = self.mlp_widths();
                let fc = widths
                    .windows(2)
                    .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                    .collect();
                Classifier::Mlp(Mlp {
                    fc,
                    activation: Relu::new(),
                })
            }
            Arch::Cnn => Classifier::Cnn(Cnn::new(&self.cnn_layers(), self.input_shape(), device)),
        }
    }

    /// The CNN's layers: `layers`, or G2D's own for this many classes.
    pub fn cnn_layers(&self) -> Vec<LayerSpec> {
        self.layers
            .clone()
            .unwrap_or_else(|| cnn::default_layers(self.classes))
    }

    /// The pixels, the hidden widths, the classes: `784-64-32-10`.
    pub fn mlp_widths(&self) -> Vec<usize> {
        let mut widths = vec![self.inputs()];
        widths.extend(&self.hidden);
        widths.push(self.classes);
        widths
    }

    /// What can be checked before the data is read, for settings of MNIST's shape
    /// ([`Self::new`]): all of [`Self::validate`], except that a CNN's own layer list is checked
    /// for its ranges and order only, since whether its windows fit and its last layer gives
    /// one output per class depend on the data (checked with it, before training).
    pub fn validate_settings(&self, field: &str) -> crate::error::Result<()> {
        let Some(layers) = self.layers.as_ref().filter(|_| self.arch == Arch::Cnn) else {
            return self.validate(field);
        };
        let classes = cnn::output_width(layers).unwrap_or(self.classes);
        cnn::flows(layers, [self.channels, 1024, 1024], classes).map(|_| ())
    }

    /// Checked before anything is allocated: 2 to 256 classes, images of up to 1,024 × 1,024
    /// and at most [`MAX_CLASSIFIER_PARAMS`] weights; for the MLP 0 to 8 hidden layers of 1 to 4,096
    /// units, for the CNN layers that fit the images ([`cnn::flows`]). Errors name `field`
    /// (the hidden widths' setting).
    pub fn validate(&self, field: &str) -> crate::error::Result<()> {
        crate::error::ensure_range("classes", self.classes, 2, 256)?;
        for side in self.image {
            crate::error::ensure_range("image size", side, 1, 1024)?;
        }
        crate::error::ensure_range("image channels", self.channels, 1, 4)?;
        if self.arch == Arch::Cnn {
            let layers = self.cnn_layers();
            let flows = cnn::flows(&layers, self.input_shape(), self.classes)?;
            let weights = cnn::parameter_count(&layers, &flows);
            return crate::error::ensure_range(
                "layers (weights)",
                weights,
                1,
                MAX_CLASSIFIER_PARAMS,
            );
        }
        if self.layers.is_some() {
            return Err(crate::error::G2dError::config(
                "layers",
                "lists a CNN's layers, but the architecture is mlp (its widths are `hidden`)",
            ));
        }
        crate::error::ensure_range(&format!("{field} (layers)"), self.hidden.len(), 0, 8)?;
        for &width in &self.hidden {
            crate::error::ensure_range(field, width, 1, 4096)?;
        }
        let weights: usize = self
            .mlp_widths()
            .windows(2)
            .map(|w| w[0] * w[1] + w[1])
            .sum();
        crate::error::ensure_range(
            &format!("{field} (weights)"),
            weights,
            1,
            MAX_CLASSIFIER_PARAMS,
        )
    }
}

/// Linear layers `fc1 … fcN` (named by [`crate::params`]'s path rule), ReLU between them.
#[derive(Module, Debug)]
pub struct Mlp {
    fc: Vec<Linear>,
    activation: Relu,
}

impl Mlp {
    /// # Shapes
    ///   - images [batch, 784] → logits [batch, 10]
    pub fn forward(&self, images: Tensor<2>) -> Tensor<2> {
        let last = self.fc.len() - 1;
        let mut x = images;
        for (i, layer) in self.fc.iter().enumerate() {
            x = layer.forward(x); // [batch, this layer's width]
            if i < last {
                x = self.activation.forward(x);
            }
        }
        x
    }

    /// The forward pass again, keeping each hidden layer's pre-activation, then the chain rule
    /// from `grad(logits)` back to the images.
    fn input_gradient(&self, images: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<2> {
        let last = self.fc.len() - 1;
        let mut pre = Vec::with_capacity(last);
        let mut x = images;
        for layer in &self.fc[..last] {
            let z = layer.forward(x);
            x = self.activation.forward(z.clone());
            pre.push(z);
        }
        let logits = self.fc[last].forward(x);
        let mut g = linear_backward(&self.fc[last], logits_gradient(logits, labels));
        for (layer, z) in self.fc[..last].iter().zip(pre).rev() {
            g = linear_backward(layer, relu_backward(g, z));
        }
        g
    }
}

/// ∂(mean cross-entropy)/∂logits = (softmax − one-hot) / batch.
pub(crate) fn logits_gradient(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<2> {
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
pub(crate) fn linear_backward(layer: &Linear, grad: Tensor<2>) -> Tensor<2> {
    grad.matmul(layer.weight.val().transpose())
}

/// Through a ReLU whose input was `pre`: the gradient passes where `pre > 0` (burn's rule).
pub(crate) fn relu_backward<const D: usize>(grad: Tensor<D>, pre: Tensor<D>) -> Tensor<D> {
    grad.mask_fill(pre.lower_equal_elem(0.0), 0.0)
}

/// The protected classifier.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // built once per model; boxing would fight the Module derive
pub enum Classifier {
    Mlp(Mlp),
    Cnn(Cnn),
}

impl Classifier {
    /// `arch` with the default widths ([`ClassifierConfig::new`]).
    pub fn new(arch: Arch, device: &Device) -> Self {
        ClassifierConfig::new(arch).init(device)
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

    /// Names of the layers from input to output, as they prefix parameter names (`fc2` of
    /// `fc2.weight`).
    pub fn layer_names(&self) -> Vec<String> {
        let mut layers: Vec<String> = Vec::new();
        for name in crate::params::Manifest::full(self).names() {
            let layer = crate::params::layer_of(&name);
            if layers.last().map(String::as_str) != Some(layer) {
                layers.push(layer.to_string());
            }
        }
        layers
    }
}

/// Builds the image batch tensor `[n, per_image]` from host pixels.
pub fn images_tensor(pixels: &[f32], per_image: usize, device: &Device) -> Tensor<2> {
    let n = pixels.len() / per_image;
    Tensor::<1>::from_floats(pixels, device).reshape([n, per_image])
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
