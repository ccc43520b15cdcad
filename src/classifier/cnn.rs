//! The CNN: convolutions, max-pooling and ReLU over the image, then linear layers, in the
//! order a layer list gives (PyTorch's nn.Conv2d, nn.MaxPool2d, nn.ReLU, nn.Flatten and
//! nn.Linear). G2D's own small CNN is one such list ([`default_layers`]); an imported model
//! brings its own (`--arch FILE`).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::module::{
    conv_transpose2d, max_pool2d, max_pool2d_with_indices, max_pool2d_with_indices_backward,
};
use burn::tensor::ops::{ConvTransposeOptions, MaxPoolOptions};
use serde::{Deserialize, Serialize};

use super::{linear_backward, logits_gradient, relu_backward};
use crate::error::{ensure_range, G2dError, Result};

/// One layer of a CNN, named and parameterised as PyTorch's module of the same name. Input
/// sizes follow from the image and the layers before; a linear layer after a convolution or a
/// pooling flattens first, as `x.flatten(1)` or nn.Flatten would.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LayerSpec {
    /// nn.Conv2d(in, out_channels, kernel_size, stride, padding), zero padding.
    Conv2d {
        out_channels: usize,
        kernel_size: Pair,
        #[serde(default = "Pair::one")]
        stride: Pair,
        #[serde(default)]
        padding: Pair,
    },
    /// nn.MaxPool2d(kernel_size, stride, padding): the stride defaults to the kernel size, and
    /// the padding, at most half the kernel as PyTorch allows, never wins a window's maximum.
    MaxPool2d {
        kernel_size: Pair,
        #[serde(default)]
        stride: Option<Pair>,
        #[serde(default, skip_serializing_if = "Pair::is_zero")]
        padding: Pair,
    },
    Relu,
    Flatten,
    /// nn.Linear(in, out_features).
    Linear {
        out_features: usize,
    },
}

/// A size per image axis, `[height, width]`, written as PyTorch takes it: one number for
/// both axes, or two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PairRepr", into = "PairRepr")]
pub struct Pair(pub [usize; 2]);

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(untagged)]
enum PairRepr {
    Both(usize),
    Each([usize; 2]),
}

impl From<PairRepr> for Pair {
    fn from(r: PairRepr) -> Pair {
        match r {
            PairRepr::Both(n) => Pair([n, n]),
            PairRepr::Each(hw) => Pair(hw),
        }
    }
}

impl From<Pair> for PairRepr {
    fn from(Pair([h, w]): Pair) -> PairRepr {
        match h == w {
            true => PairRepr::Both(h),
            false => PairRepr::Each([h, w]),
        }
    }
}

impl Pair {
    pub fn square(n: usize) -> Pair {
        Pair([n, n])
    }

    fn one() -> Pair {
        Pair::square(1)
    }

    fn is_zero(&self) -> bool {
        self.0 == [0, 0]
    }
}

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let [h, w] = self.0;
        write!(f, "{h}×{w}")
    }
}

impl LayerSpec {
    fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "maxpool2d",
            LayerSpec::Relu => "relu",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Linear { .. } => "linear",
        }
    }
}

/// G2D's own CNN: conv 5×5 (8) → ReLU → pool 2 → conv 5×5 (16) → ReLU → pool 2 → linear.
pub fn default_layers(classes: usize) -> Vec<LayerSpec> {
    let conv = |out_channels| LayerSpec::Conv2d {
        out_channels,
        kernel_size: Pair::square(5),
        stride: Pair::one(),
        padding: Pair::default(),
    };
    let pool = LayerSpec::MaxPool2d {
        kernel_size: Pair::square(2),
        stride: None,
        padding: Pair::default(),
    };
    vec![
        conv(8),
        LayerSpec::Relu,
        pool.clone(),
        conv(16),
        LayerSpec::Relu,
        pool,
        LayerSpec::Linear {
            out_features: classes,
        },
    ]
}

/// What flows between layers: feature maps `[channels, height, width]` or a flat vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Maps([usize; 3]),
    Flat(usize),
}

impl Flow {
    pub fn len(self) -> usize {
        match self {
            Flow::Maps(m) => m.iter().product(),
            Flow::Flat(n) => n,
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Checks `layers` on images of `input` (`[channels, height, width]`) and `classes` classes:
/// what enters each layer, then the logits. Errors name the layer (`layers[3] (conv2d)`) and
/// what does not fit.
pub fn flows(layers: &[LayerSpec], input: [usize; 3], classes: usize) -> Result<Vec<Flow>> {
    ensure_range("layers (count)", layers.len(), 1, 64)?;
    let mut flow = Flow::Maps(input);
    let mut out = vec![flow];
    for (i, layer) in layers.iter().enumerate() {
        let field = format!("layers[{i}] ({})", layer.kind());
        let bad = |reason: String| G2dError::config(&field, reason);
        flow = match (layer, flow) {
            (LayerSpec::Relu, f) => f,
            (LayerSpec::Linear { out_features }, _) => {
                ensure_range(&format!("{field} out_features"), *out_features, 1, 4096)?;
                Flow::Flat(*out_features)
            }
            (LayerSpec::Flatten, Flow::Maps(m)) => Flow::Flat(m.iter().product()),
            (LayerSpec::Flatten, Flow::Flat(_)) => {
                return Err(bad("the input is flat already".into()))
            }
            (_, Flow::Flat(_)) => {
                return Err(bad(
                    "comes after the input was flattened: convolutions and pooling come before \
                     the linear layers"
                        .into(),
                ))
            }
            (
                LayerSpec::Conv2d {
                    out_channels,
                    kernel_size,
                    stride,
                    padding,
                },
                Flow::Maps([_, h, w]),
            ) => {
                ensure_range(&format!("{field} out_channels"), *out_channels, 1, 1024)?;
                let window = (*kernel_size, *stride, *padding);
                let [oh, ow] = window_out(&field, [h, w], window, false)?;
                Flow::Maps([*out_channels, oh, ow])
            }
            (
                LayerSpec::MaxPool2d {
                    kernel_size,
                    stride,
                    padding,
                },
                Flow::Maps([c, h, w]),
            ) => {
                let stride = stride.unwrap_or(*kernel_size);
                let [oh, ow] = window_out(&field, [h, w], (*kernel_size, stride, *padding), true)?;
                Flow::Maps([c, oh, ow])
            }
        };
        out.push(flow);
    }
    match layers.last() {
        Some(LayerSpec::Linear { out_features }) if *out_features == classes => Ok(out),
        Some(LayerSpec::Linear { out_features }) => Err(G2dError::config(
            "layers",
            format!("the last layer gives {out_features} outputs; the data has {classes} classes"),
        )),
        _ => Err(G2dError::config(
            "layers",
            "must end with a linear layer (the logits)",
        )),
    }
}

/// Positions of a window (kernel, stride, padding) sliding over `input` (`[height, width]`)
/// padded on both sides of each axis, once its sizes are in range: kernel and stride 1–64 per
/// axis, padding up to 64, or for a pool (`pool`) up to half the kernel, as PyTorch allows.
fn window_out(
    field: &str,
    input: [usize; 2],
    (kernel, stride, padding): (Pair, Pair, Pair),
    pool: bool,
) -> Result<[usize; 2]> {
    for axis in 0..2 {
        let k = kernel.0[axis];
        ensure_range(&format!("{field} kernel_size"), k, 1, 64)?;
        ensure_range(&format!("{field} stride"), stride.0[axis], 1, 64)?;
        let (most, why) = match pool {
            true => (k / 2, " (at most half the kernel)"),
            false => (64, ""),
        };
        ensure_range(&format!("{field} padding{why}"), padding.0[axis], 0, most)?;
    }
    let padded = [0, 1].map(|a| input[a] + 2 * padding.0[a]);
    if padded[0] < kernel.0[0] || padded[1] < kernel.0[1] {
        let [h, w] = padded;
        return Err(G2dError::config(
            field,
            format!("its {kernel} window is larger than its {h}×{w} input (padding included)"),
        ));
    }
    Ok([0, 1].map(|a| (padded[a] - kernel.0[a]) / stride.0[a] + 1))
}

/// Weights and biases of `layers` (checked by [`flows`]).
pub fn parameter_count(layers: &[LayerSpec], flows: &[Flow]) -> usize {
    layers
        .iter()
        .zip(flows)
        .map(|(layer, input)| match (layer, input) {
            (
                LayerSpec::Conv2d {
                    out_channels,
                    kernel_size: Pair([kh, kw]),
                    ..
                },
                Flow::Maps([c, _, _]),
            ) => out_channels * (c * kh * kw + 1),
            (LayerSpec::Linear { out_features }, f) => out_features * (f.len() + 1),
            _ => 0,
        })
        .sum()
}

/// Convolutions `conv1 …` and linear layers `fc1 …` (named by [`crate::params`]'s path
/// rule), applied in the order of `layers`.
#[derive(Module, Debug)]
pub struct Cnn {
    conv: Vec<Conv2d>,
    fc: Vec<Linear>,
    activation: Relu,
    #[module(skip)]
    layers: Vec<LayerSpec>,
    /// `[channels, height, width]` of one image.
    #[module(skip)]
    input: [usize; 3],
}

/// A layer's input or output: feature maps or vectors (a batch of either).
enum Act {
    Maps(Tensor<4>),
    Flat(Tensor<2>),
}

impl Act {
    fn maps(self) -> Tensor<4> {
        match self {
            Act::Maps(x) => x,
            Act::Flat(_) => unreachable!("checked: feature maps never follow vectors"),
        }
    }

    fn flat(self) -> Tensor<2> {
        match self {
            Act::Maps(x) => x.flatten(1, 3),
            Act::Flat(x) => x,
        }
    }

    fn maps_dims(&self) -> Option<[usize; 4]> {
        match self {
            Act::Maps(x) => Some(x.dims()),
            Act::Flat(_) => None,
        }
    }
}

/// What the input gradient needs of each layer's forward pass.
#[allow(clippy::large_enum_variant)] // one per layer, for one gradient; boxing buys nothing
enum Saved {
    Conv {
        index: usize,
        input: [usize; 4],
    },
    Pool {
        input: Tensor<4>,
        indices: Tensor<4, Int>,
    },
    Relu(Act),
    Flatten(Option<[usize; 4]>),
    Linear {
        index: usize,
        maps: Option<[usize; 4]>,
    },
}

impl Cnn {
    /// The network of `layers` (checked by [`flows`]) for images of `input`
    /// (`[channels, height, width]`).
    pub fn new(layers: &[LayerSpec], input: [usize; 3], device: &Device) -> Cnn {
        let flows = flows_unchecked(layers, input);
        let (mut conv, mut fc) = (Vec::new(), Vec::new());
        for (layer, input) in layers.iter().zip(&flows) {
            match (layer, *input) {
                (
                    LayerSpec::Conv2d {
                        out_channels,
                        kernel_size,
                        stride,
                        padding,
                    },
                    Flow::Maps([c, _, _]),
                ) => {
                    let Pair([ph, pw]) = *padding;
                    conv.push(
                        Conv2dConfig::new([c, *out_channels], kernel_size.0)
                            .with_stride(stride.0)
                            .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
                            .init(device),
                    )
                }
                (LayerSpec::Linear { out_features }, f) => {
                    fc.push(LinearConfig::new(f.len(), *out_features).init(device))
                }
                _ => {}
            }
        }
        Cnn {
            conv,
            fc,
            activation: Relu::new(),
            layers: layers.to_vec(),
            input,
        }
    }

    /// One layer forward, with what its backward pass needs.
    fn step(&self, layer: &LayerSpec, x: Act, counts: &mut [usize; 2]) -> (Act, Saved) {
        match layer {
            LayerSpec::Conv2d { .. } => {
                let (x, index) = (x.maps(), counts[0]);
                counts[0] += 1;
                let input = x.dims();
                (
                    Act::Maps(self.conv[index].forward(x)),
                    Saved::Conv { index, input },
                )
            }
            LayerSpec::MaxPool2d { .. } => {
                let input = x.maps();
                let (y, indices) = max_pool2d_with_indices(input.clone(), pool_options(layer));
                (Act::Maps(y), Saved::Pool { input, indices })
            }
            LayerSpec::Relu => {
                let y = match &x {
                    Act::Maps(t) => Act::Maps(self.activation.forward(t.clone())),
                    Act::Flat(t) => Act::Flat(self.activation.forward(t.clone())),
                };
                (y, Saved::Relu(x))
            }
            LayerSpec::Flatten => {
                let dims = x.maps_dims();
                (Act::Flat(x.flat()), Saved::Flatten(dims))
            }
            LayerSpec::Linear { .. } => {
                let maps = x.maps_dims();
                let index = counts[1];
                counts[1] += 1;
                let y = self.fc[index].forward(x.flat());
                (Act::Flat(y), Saved::Linear { index, maps })
            }
        }
    }

    /// # Shapes
    ///   - images [batch, channels·height·width] → logits [batch, classes]
    pub fn forward(&self, images: Tensor<2>) -> Tensor<2> {
        let [batch, _] = images.dims();
        let [c, h, w] = self.input;
        let mut x = Act::Maps(images.reshape([batch, c, h, w]));
        let mut counts = [0, 0];
        for layer in &self.layers {
            x = match layer {
                LayerSpec::MaxPool2d { .. } => Act::Maps(max_pool2d(x.maps(), pool_options(layer))),
                _ => self.step(layer, x, &mut counts).0,
            };
        }
        x.flat()
    }

    /// As [`super::Mlp::input_gradient`]: convolutions go back by the transposed convolution
    /// with the same weights, stride and padding; pooling by the indices of each window's
    /// maximum; flattening by a reshape.
    pub(super) fn input_gradient(&self, images: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<2> {
        let [batch, pixels] = images.dims();
        let [c, h, w] = self.input;
        let mut x = Act::Maps(images.reshape([batch, c, h, w]));
        let mut counts = [0, 0];
        let mut tape = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (y, saved) = self.step(layer, x, &mut counts);
            tape.push(saved);
            x = y;
        }
        let mut g = Act::Flat(logits_gradient(x.flat(), labels));
        for (layer, saved) in self.layers.iter().zip(tape).rev() {
            g = self.back(layer, saved, g);
        }
        g.maps().reshape([batch, pixels])
    }

    /// One layer backward: ∂input from ∂output.
    fn back(&self, layer: &LayerSpec, saved: Saved, g: Act) -> Act {
        match saved {
            Saved::Conv { index, input } => {
                Act::Maps(conv_backward(&self.conv[index], layer, input, g.maps()))
            }
            Saved::Pool { input, indices } => {
                let o = pool_options(layer);
                Act::Maps(max_pool2d_with_indices_backward(
                    input,
                    o.kernel_size,
                    o.stride,
                    o.padding.map(|(begin, _)| begin), // symmetric
                    o.dilation,
                    o.ceil_mode,
                    g.maps(),
                    indices,
                ))
            }
            Saved::Relu(Act::Maps(pre)) => Act::Maps(relu_backward(g.maps(), pre)),
            Saved::Relu(Act::Flat(pre)) => Act::Flat(relu_backward(g.flat(), pre)),
            Saved::Flatten(dims) => unflatten(g.flat(), dims),
            Saved::Linear { index, maps } => {
                unflatten(linear_backward(&self.fc[index], g.flat()), maps)
            }
        }
    }
}

/// A flat gradient back to the feature maps it was flattened from, if it was.
fn unflatten(g: Tensor<2>, maps: Option<[usize; 4]>) -> Act {
    match maps {
        Some(dims) => Act::Maps(g.reshape(dims)),
        None => Act::Flat(g),
    }
}

/// The width of the last layer when it is a linear one: the classes such a list gives.
pub fn output_width(layers: &[LayerSpec]) -> Option<usize> {
    match layers.last() {
        Some(LayerSpec::Linear { out_features }) => Some(*out_features),
        _ => None,
    }
}

/// [`flows`] on layers known to be valid (a model is built only from checked settings).
fn flows_unchecked(layers: &[LayerSpec], input: [usize; 3]) -> Vec<Flow> {
    let classes = output_width(layers).unwrap_or(0);
    flows(layers, input, classes).expect("CNN layers are checked before a model is built")
}

fn pool_options(layer: &LayerSpec) -> MaxPoolOptions<2> {
    let LayerSpec::MaxPool2d {
        kernel_size,
        stride,
        padding,
    } = layer
    else {
        unreachable!("a pooling layer")
    };
    MaxPoolOptions::new(kernel_size.0)
        .with_stride(stride.unwrap_or(*kernel_size).0)
        .with_padding(padding.0)
}

/// Through a convolution: ∂x is the transposed convolution of ∂y with the same weights,
/// stride and padding, its output padded to the input's size where the stride dropped rows.
fn conv_backward(
    conv: &Conv2d,
    layer: &LayerSpec,
    input: [usize; 4],
    grad: Tensor<4>,
) -> Tensor<4> {
    let LayerSpec::Conv2d {
        kernel_size,
        stride,
        padding,
        ..
    } = layer
    else {
        unreachable!("a convolution")
    };
    let [_, _, out_h, out_w] = grad.dims();
    let reach =
        |a: usize, out: usize| (out - 1) * stride.0[a] + kernel_size.0[a] - 2 * padding.0[a];
    let extra = [input[2] - reach(0, out_h), input[3] - reach(1, out_w)];
    let options = ConvTransposeOptions::new(stride.0, padding.0, extra, [1, 1], 1);
    conv_transpose2d(grad, conv.weight.val(), None, options)
}
