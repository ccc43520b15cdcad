//! CNNs of the user's own, described by architecture files (LeNet-5 with padding and two
//! nn.Sequential blocks; a CNN of non-square kernels, strides and paddings with padded
//! pooling): they import, their forward pass is PyTorch's (checked against a transcription of
//! PyTorch's definitions written here, not the crate's classifier), and a run started from one
//! exports under its names.

mod common;

use g2d::backend::cpu_device;
use g2d::classifier::{images_tensor, Arch, ClassifierConfig, LayerSpec};
use g2d::torch::{import, read_safetensors, state_dict, TorchTensor};

use common::scratch;
use common::torch::{export, fixture, g2d, sorted, TINY_RUN};

/// The run's classifier for an architecture file (lenet.json, odd.json) on MNIST's 28×28
/// images and 10 classes.
fn from_arch_file(name: &str) -> ClassifierConfig {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let layers: Vec<LayerSpec> = serde_json::from_value(file["layers"].clone()).unwrap();
    ClassifierConfig {
        layers: Some(layers),
        ..ClassifierConfig::new(Arch::Cnn)
    }
}

fn tensor<'a>(tensors: &'a [TorchTensor], name: &str) -> &'a TorchTensor {
    tensors.iter().find(|t| t.name == name).unwrap()
}

/// nn.Conv2d: cross-correlation with zero padding; `x` is [channels, rows, cols], the kernel's
/// size comes from the weight, stride and padding are per axis.
fn conv2d(
    x: &[f32],
    [c, h, w]: [usize; 3],
    t: &[TorchTensor],
    name: &str,
    stride: [usize; 2],
    pad: [usize; 2],
) -> (Vec<f32>, [usize; 3]) {
    let (weight, bias) = (
        tensor(t, &format!("{name}.weight")),
        tensor(t, &format!("{name}.bias")),
    );
    let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3]);
    let oh = (h + 2 * pad[0] - kh) / stride[0] + 1;
    let ow = (w + 2 * pad[1] - kw) / stride[1] + 1;
    let mut y = vec![0.0; o * oh * ow];
    for oc in 0..o {
        for r in 0..oh {
            for q in 0..ow {
                let mut sum = bias.values[oc];
                for ic in 0..c {
                    for i in 0..kh {
                        for j in 0..kw {
                            let row = (r * stride[0] + i).wrapping_sub(pad[0]);
                            let col = (q * stride[1] + j).wrapping_sub(pad[1]);
                            if row < h && col < w {
                                let wi = ((oc * c + ic) * kh + i) * kw + j;
                                sum += weight.values[wi] * x[(ic * h + row) * w + col];
                            }
                        }
                    }
                }
                y[(oc * oh + r) * ow + q] = sum;
            }
        }
    }
    (y, [o, oh, ow])
}

/// nn.MaxPool2d(kernel, stride, padding): PyTorch pads with −∞, so padding never wins.
fn max_pool(
    x: &[f32],
    [c, h, w]: [usize; 3],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
) -> (Vec<f32>, [usize; 3]) {
    let oh = (h + 2 * pad[0] - kernel[0]) / stride[0] + 1;
    let ow = (w + 2 * pad[1] - kernel[1]) / stride[1] + 1;
    let mut y = vec![f32::NEG_INFINITY; c * oh * ow];
    for ch in 0..c {
        for r in 0..oh {
            for q in 0..ow {
                for i in 0..kernel[0] {
                    for j in 0..kernel[1] {
                        let row = (r * stride[0] + i).wrapping_sub(pad[0]);
                        let col = (q * stride[1] + j).wrapping_sub(pad[1]);
                        if row < h && col < w {
                            let at = (ch * oh + r) * ow + q;
                            y[at] = y[at].max(x[(ch * h + row) * w + col]);
                        }
                    }
                }
            }
        }
    }
    (y, [c, oh, ow])
}

/// nn.Linear: x Wᵀ + b, with W [out, in].
fn linear(x: &[f32], t: &[TorchTensor], name: &str) -> Vec<f32> {
    let (weight, bias) = (
        tensor(t, &format!("{name}.weight")),
        tensor(t, &format!("{name}.bias")),
    );
    let inputs = weight.shape[1];
    (0..weight.shape[0])
        .map(|o| {
            let row = &weight.values[o * inputs..(o + 1) * inputs];
            bias.values[o] + row.iter().zip(x).map(|(a, b)| a * b).sum::<f32>()
        })
        .collect()
}

fn relu(mut x: Vec<f32>) -> Vec<f32> {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
    x
}

/// The fixture's LeNet forward on one 28×28 image: classifier(features(x).flatten(1)).
fn torch_lenet_logits(t: &[TorchTensor], image: &[f32]) -> Vec<f32> {
    let (x, s) = conv2d(image, [1, 28, 28], t, "features.0", [1, 1], [2, 2]);
    let (x, s) = max_pool(&relu(x), s, [2, 2], [2, 2], [0, 0]);
    let (x, s) = conv2d(&x, s, t, "features.3", [1, 1], [0, 0]);
    let (x, _) = max_pool(&relu(x), s, [2, 2], [2, 2], [0, 0]);
    let x = relu(linear(&x, t, "classifier.0"));
    let x = relu(linear(&x, t, "classifier.2"));
    linear(&x, t, "classifier.4")
}

/// odd.safetensors' forward (make.py): non-square kernels, strides and paddings, a padded
/// overlapping pool before the ReLU and a non-square one.
fn torch_odd_logits(t: &[TorchTensor], image: &[f32]) -> Vec<f32> {
    let (x, s) = conv2d(image, [1, 28, 28], t, "features.0", [1, 2], [1, 2]);
    let (x, s) = max_pool(&x, s, [3, 3], [2, 2], [1, 1]);
    let (x, s) = conv2d(&relu(x), s, t, "features.3", [1, 1], [0, 0]);
    let (x, s) = max_pool(&relu(x), s, [2, 1], [2, 1], [0, 0]);
    assert_eq!(s, [6, 5, 5]);
    linear(&x, t, "classifier")
}

/// `model` (imported) computes what `torch_logits` computes from the file's tensors.
fn same_logits(
    model: &g2d::classifier::Classifier,
    tensors: &[TorchTensor],
    torch_logits: fn(&[TorchTensor], &[f32]) -> Vec<f32>,
    what: &str,
) {
    let device = cpu_device();
    let images: Vec<f32> = (0..3 * 784)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    let logits = model.forward(images_tensor(&images, 784, &device));
    let got = logits.into_data().try_to_vec::<f32>().unwrap();
    let want: Vec<f32> = images
        .chunks(784)
        .flat_map(|x| torch_logits(tensors, x))
        .collect();
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale.max(1.0),
            "{what} logit {i}: {g} against {w}"
        );
    }
}

#[test]
fn a_cnn_from_an_architecture_file_imports_exactly_and_computes_what_pytorch_computes() {
    let device = cpu_device();
    for (name, torch_logits) in [
        (
            "lenet",
            torch_lenet_logits as fn(&[TorchTensor], &[f32]) -> Vec<f32>,
        ),
        ("odd", torch_odd_logits),
    ] {
        let path = fixture(&format!("{name}.safetensors"));
        let tensors = read_safetensors(&path).unwrap();
        let config = from_arch_file(&format!("{name}.json"));
        config.validate("hidden").unwrap();
        let (model, names) = import(&path, &tensors, &config, &device).unwrap();
        assert_eq!(
            sorted(state_dict(&model, Some(&names))),
            sorted(tensors.clone()),
            "{name}"
        );
        same_logits(&model, &tensors, torch_logits, name);
    }

    let path = fixture("lenet.safetensors");
    let tensors = read_safetensors(&path).unwrap();
    // Without the file the run's CNN is G2D's own, and the error says what to pass.
    let own = ClassifierConfig::new(Arch::Cnn);
    let err = import(&path, &tensors, &own, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--arch FILE"), "{err}");
}

#[test]
fn a_run_started_from_a_cnn_of_its_own_exports_under_its_names() {
    let dir = scratch("torch-cnn-run");
    let config = dir.join("config.json");
    std::fs::write(&config, TINY_RUN).unwrap();
    let run = dir.join("run");
    let (run, config) = (run.to_str().unwrap(), config.to_str().unwrap());
    let (arch, init) = (fixture("lenet.json"), fixture("lenet.safetensors"));
    let flags = [
        "--run",
        run,
        "--config",
        config,
        "--arch",
        arch.to_str().unwrap(),
        "--init",
        init.to_str().unwrap(),
        "--scope",
        "last-two",
    ];
    g2d(&[&flags[..], &["pipeline"]].concat());
    let out = export(run, &dir);
    let imported = sorted(read_safetensors(&init).unwrap());
    for file in ["original.safetensors", "regenerated-000.safetensors"] {
        let set = sorted(read_safetensors(&out.join(file)).unwrap());
        let names: Vec<&str> = set.iter().map(|t| t.name.as_str()).collect();
        let want: Vec<&str> = imported.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, want, "{file}");
        // Scope last-two regenerates classifier.2 and classifier.4; the rest stays as imported.
        for (a, b) in set.iter().zip(&imported) {
            let fixed = !(a.name.starts_with("classifier.2") || a.name.starts_with("classifier.4"));
            assert_eq!(fixed, a == b, "{file}: {}", a.name);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
