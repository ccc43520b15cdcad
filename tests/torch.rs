//! PyTorch state_dicts in and out (`g2d::torch`), against fixtures in PyTorch's naming and
//! layout written by tests/fixtures/torch/make.py. Exported weights are checked by a forward
//! pass written here from PyTorch's definitions, not by the crate's classifier.

mod common;

use std::path::Path;
use std::process::Command;

use g2d::backend::cpu_device;
use g2d::bundle::Bundle;
use g2d::classifier::{Arch, ClassifierConfig};
use g2d::data::Images;
use g2d::torch::{import, read_safetensors, state_dict, TorchTensor};

use common::scratch;
use common::torch::{export, fixture, g2d, sorted, TINY_RUN};

fn renamed(tensors: &[TorchTensor], from: &str, to: &str) -> Vec<TorchTensor> {
    let rename = |t: &TorchTensor| TorchTensor {
        name: t.name.replacen(from, to, 1),
        ..t.clone()
    };
    tensors.iter().map(rename).collect()
}

/// The error's code and message.
fn import_err(tensors: &[TorchTensor], arch: Arch) -> (&'static str, String) {
    let err = import(
        Path::new("model.safetensors"),
        tensors,
        &ClassifierConfig::new(arch),
        &cpu_device(),
    )
    .unwrap_err();
    (err.code(), err.to_string())
}

#[test]
fn import_then_export_returns_the_state_dict_exactly() {
    for (file, arch) in [
        ("mlp.safetensors", Arch::Mlp),
        ("cnn.safetensors", Arch::Cnn),
    ] {
        let path = fixture(file);
        let tensors = read_safetensors(&path).unwrap();
        let (model, names) =
            import(&path, &tensors, &ClassifierConfig::new(arch), &cpu_device()).unwrap();
        let exported = state_dict(&model, Some(&names));
        assert_eq!(sorted(exported), sorted(tensors.clone()), "{file}");
        // Without the names, the classifier's own paths, in the same layout.
        let own: Vec<String> = state_dict(&model, None)
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            own[0],
            if arch == Arch::Mlp {
                "fc1.weight"
            } else {
                "conv1.weight"
            }
        );
    }
    let cnn = read_safetensors(&fixture("cnn.safetensors")).unwrap();
    let cnn_shape = ClassifierConfig::new(Arch::Cnn);
    let (_, names) = import(Path::new("cnn"), &cnn, &cnn_shape, &cpu_device()).unwrap();
    assert_eq!(names["conv2.weight"], "features.3.weight");
    assert_eq!(
        names["fc1.bias"], "classifier.bias",
        "linear layers after convolutions"
    );
}

#[test]
fn an_mlp_of_other_widths_imports_with_its_hidden_widths() {
    let path = fixture("mlp-128-64-f16.safetensors");
    let tensors = read_safetensors(&path).unwrap();
    let (code, err) = import_err(&tensors, Arch::Mlp);
    assert_eq!(code, "MODEL_IMPORT");
    let expected = "it is an MLP 784-128-64-10; the run's is 784-64-32-10 (pass --hidden 128,64)";
    assert!(err.contains(expected), "{err}");
    let shape = ClassifierConfig {
        arch: Arch::Mlp,
        hidden: vec![128, 64],
        ..ClassifierConfig::new(Arch::Mlp)
    };
    let (model, names) = import(&path, &tensors, &shape, &cpu_device()).unwrap();
    assert_eq!(model.layer_names(), ["fc1", "fc2", "fc3"]);
    // f16 values widen to f32 exactly, so the export gives them back as they were.
    assert_eq!(
        sorted(state_dict(&model, Some(&names))),
        sorted(tensors.clone())
    );
    // A first layer that does not read 784 pixels is named.
    let mut narrow = tensors.clone();
    let i = narrow.iter().position(|t| t.name == "fc1.weight").unwrap();
    narrow[i] = TorchTensor {
        name: "fc1.weight".into(),
        shape: vec![128, 100],
        values: vec![0.0; 12_800],
    };
    let err = import(&path, &narrow, &shape, &cpu_device())
        .unwrap_err()
        .to_string();
    let expected =
        "`fc1.weight` is [128, 100] ([out, in]), but the data's 28×28 images have 784 pixels";
    assert!(err.contains(expected), "{err}");
}

#[test]
fn sequential_indices_order_as_numbers() {
    let mlp = read_safetensors(&fixture("mlp.safetensors")).unwrap();
    let seq = renamed(
        &renamed(&renamed(&mlp, "fc1", "net.2"), "fc2", "net.9"),
        "fc3",
        "net.10",
    );
    let mlp_shape = ClassifierConfig::new(Arch::Mlp);
    let (model, names) = import(Path::new("seq"), &seq, &mlp_shape, &cpu_device()).unwrap();
    assert_eq!(names["fc1.weight"], "net.2.weight");
    assert_eq!(names["fc3.bias"], "net.10.bias");
    assert_eq!(sorted(state_dict(&model, Some(&names))), sorted(seq));
}

#[test]
fn what_does_not_map_is_refused_naming_the_tensor() {
    let mlp = read_safetensors(&fixture("mlp.safetensors")).unwrap();
    let edit = |f: &dyn Fn(&mut Vec<TorchTensor>)| {
        let mut t = mlp.clone();
        f(&mut t);
        t
    };
    let at = |t: &mut Vec<TorchTensor>, name: &str| t.iter().position(|x| x.name == name).unwrap();
    let cases: Vec<(Vec<TorchTensor>, Arch, &str)> = vec![
        (
            edit(&|t| {
                let i = at(t, "fc2.weight");
                t[i].shape = vec![64, 32]; // burn's [in, out], not PyTorch's
            }),
            Arch::Mlp,
            "`fc2.weight` is [64, 32] ([out, in]), but the layer before gives 64 outputs",
        ),
        (
            edit(&|t| {
                let i = at(t, "fc3.bias");
                t.remove(i);
            }),
            Arch::Mlp,
            "`fc3.bias` is missing",
        ),
        (
            edit(&|t| {
                t.push(TorchTensor {
                    name: "bn.running_mean".into(),
                    shape: vec![64],
                    values: vec![0.0; 64],
                })
            }),
            Arch::Mlp,
            "`bn.running_mean` (shape [64]) is not the weight or bias of an nn.Linear",
        ),
        (
            edit(&|t| {
                let i = at(t, "fc3.weight");
                t.remove(i);
            }),
            Arch::Mlp,
            "`fc3.bias` has no weight beside it",
        ),
        (
            edit(&|t| {
                let i = at(t, "fc1.weight");
                t[i].values[7] = f32::NAN;
            }),
            Arch::Mlp,
            "`fc1.weight` contains 1 non-finite",
        ),
        (
            edit(&|t| {
                let layer = |name: &str, shape: Vec<usize>| TorchTensor {
                    name: name.into(),
                    values: vec![0.1; shape.iter().product()],
                    shape,
                };
                t.push(layer("fc4.weight", vec![10, 10]));
                t.push(layer("fc4.bias", vec![10]));
            }),
            Arch::Mlp,
            "it is an MLP 784-64-32-10-10; the run's is 784-64-32-10 (pass --hidden 64,32,10)",
        ),
        (
            read_safetensors(&fixture("cnn.safetensors")).unwrap(),
            Arch::Mlp,
            "pass --arch cnn",
        ),
    ];
    for (tensors, arch, expected) in cases {
        let (code, err) = import_err(&tensors, arch);
        let want = if expected == "`fc1.weight` contains 1 non-finite" {
            "NON_FINITE"
        } else {
            "MODEL_IMPORT"
        };
        assert_eq!(code, want, "{err}");
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
    let err = read_safetensors(&fixture("make.py")).unwrap_err();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
}

/// PyTorch's Mlp from the fixture's docstring, on flat [0, 1] images: the predicted classes.
fn torch_mlp_predict(file: &Path, images: &Images) -> Vec<u8> {
    let tensors = read_safetensors(file).unwrap();
    let get = |name: &str| tensors.iter().find(|t| t.name == name).unwrap();
    let linear = |x: &[f32], layer: &str, relu: bool| -> Vec<f32> {
        let (w, b) = (
            get(&format!("{layer}.weight")),
            get(&format!("{layer}.bias")),
        );
        let (out, inp) = (w.shape[0], w.shape[1]);
        assert_eq!(x.len(), inp);
        (0..out)
            .map(|o| {
                let row = &w.values[o * inp..(o + 1) * inp];
                let z = b.values[o] + row.iter().zip(x).map(|(a, b)| a * b).sum::<f32>();
                if relu {
                    z.max(0.0)
                } else {
                    z
                }
            })
            .collect()
    };
    let pixels = images.rows * images.cols;
    (0..images.len())
        .map(|i| {
            let x = &images.pixels[i * pixels..(i + 1) * pixels];
            let logits = linear(&linear(&linear(x, "fc1", true), "fc2", true), "fc3", false);
            let best = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b]));
            best.unwrap() as u8
        })
        .collect()
}

fn accuracy(predicted: &[u8], labels: &[u8]) -> f64 {
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    right as f64 / labels.len() as f64
}

#[test]
fn exported_sets_score_in_an_independent_forward_pass_what_the_guard_measured() {
    let bundle_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.g2d");
    let bundle = Bundle::from_bytes(&std::fs::read(&bundle_path).unwrap()).unwrap();
    let dir = scratch("torch-export");
    let out = dir.join("sets");
    let (run, bundle_arg, out_arg) = (dir.join("run"), bundle_path.to_str(), out.to_str());
    let stdout = g2d(&[
        "--run",
        run.to_str().unwrap(),
        "--count",
        "8",
        "--json",
        "generate",
        "--bundle",
        bundle_arg.unwrap(),
        "--out-safetensors",
        out_arg.unwrap(),
        "--out-npz",
        out_arg.unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let val = &bundle.validation;
    // Accuracy is counted over a few hundred images: one image is 1/len.
    let close = |a: f64, b: f64| (a - b).abs() < 1.5 / val.len() as f64;
    let original = accuracy(
        &torch_mlp_predict(&out.join("original.safetensors"), val),
        &val.labels,
    );
    let measured = report["original_val_accuracy"].as_f64().unwrap();
    assert!(
        close(original, measured),
        "θ_orig: {original} here, {measured} by g2d"
    );
    let candidates = report["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 8);
    assert!(candidates.iter().any(|c| c["accepted"] == true), "{stdout}");
    for (i, c) in candidates.iter().enumerate() {
        let file = out.join(format!("regenerated-{i:03}.safetensors"));
        assert_eq!(file.exists(), c["accepted"] == true, "{}", file.display());
        if file.exists() {
            let here = accuracy(&torch_mlp_predict(&file, val), &val.labels);
            let there = c["val_accuracy"].as_f64().unwrap();
            assert!(close(here, there), "set {i}: {here} here, {there} by g2d");
            assert_ne!(
                std::fs::read(&file).unwrap(),
                std::fs::read(out.join("original.safetensors")).unwrap()
            );
            // The .npz beside it holds the same arrays.
            let npz = std::fs::read(file.with_extension("npz")).unwrap();
            let arrays = g2d::npy::read_npz(&npz, "set.npz").unwrap();
            for t in read_safetensors(&file).unwrap() {
                let (_, a) = arrays.iter().find(|(k, _)| *k == t.name).unwrap();
                assert_eq!((&a.shape, a.dtype.as_str()), (&t.shape, "f4"));
                let values: Vec<f32> = a.values.iter().map(|&v| v as f32).collect();
                assert_eq!(values, t.values, "{}", t.name);
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// 10×10 images of 4 classes (a bright quadrant), as NumPy arrays in an `.npz`.
fn quadrants_npz(path: &Path) {
    let set = |n: usize, seed: usize| {
        let mut pixels = Vec::with_capacity(n * 100);
        let labels: Vec<f32> = (0..n).map(|i| ((i * 7 + seed) % 4) as f32).collect();
        for (i, &label) in labels.iter().enumerate() {
            let (r0, c0) = (5 * (label as usize / 2), 5 * (label as usize % 2));
            for p in 0..100 {
                let inside = (r0..r0 + 5).contains(&(p / 10)) && (c0..c0 + 5).contains(&(p % 10));
                let noise = ((i * 31 + p * 17) % 13) as f32 / 50.0;
                pixels.push(if inside { 0.75 + noise } else { noise });
            }
        }
        (pixels, labels)
    };
    let ((x_train, y_train), (x_test, y_test)) = (set(400, 0), set(100, 1));
    let npy = g2d::npy::npy_f32;
    let zip = g2d::npy::write_zip(&[
        ("x_train.npy".into(), npy(&[400, 10, 10], &x_train)),
        ("y_train.npy".into(), npy(&[400], &y_train)),
        ("x_test.npy".into(), npy(&[100, 10, 10], &x_test)),
        ("y_test.npy".into(), npy(&[100], &y_test)),
    ]);
    std::fs::write(path, zip).unwrap();
}

#[test]
fn images_and_classes_follow_the_data_from_npz_to_pytorch() {
    let dir = scratch("torch-quadrants");
    let (data, config) = (dir.join("quadrants.npz"), dir.join("config.json"));
    quadrants_npz(&data);
    std::fs::write(&config, TINY_RUN).unwrap();
    let run = dir.join("run");
    let (run, data, config) = (
        run.to_str().unwrap(),
        data.to_str().unwrap(),
        config.to_str().unwrap(),
    );
    let data_flags = ["--config", config, "--data", "npz", "--data-dir", data];
    let flags = [&["--run", run][..], &data_flags[..]].concat();
    let stdout = g2d(&[&flags[..], &["--hidden", "16", "--json", "pipeline"]].concat());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let accuracy = report["original_test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "the quadrants are easy: {accuracy}");
    let out = export(run, &dir);
    let original = read_safetensors(&out.join("original.safetensors")).unwrap();
    let shape = |name: &str| {
        original
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .shape
            .clone()
    };
    assert_eq!(shape("fc1.weight"), [16, 100]);
    assert_eq!(shape("fc2.weight"), [4, 16]);
    // The exported model imports again into a run on the same data, and not on MNIST.
    let init = out.join("original.safetensors");
    let run_again = format!("{run}-again");
    let again = [&data_flags[..], &["--run", &run_again, "--hidden", "16"]].concat();
    g2d(&[&again[..], &["--init", init.to_str().unwrap(), "collect"]].concat());
    let mnist = Command::new(env!("CARGO_BIN_EXE_g2d"))
        .args(["--run", &format!("{run}-mnist"), "--hidden", "16", "--init"])
        .args([init.to_str().unwrap(), "collect"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&mnist.stderr);
    assert!(
        stderr.contains("error[MODEL_IMPORT]") && stderr.contains("28×28 images have 784 pixels"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_run_started_from_a_state_dict_exports_under_its_names() {
    let dir = scratch("torch-run");
    let mlp = read_safetensors(&fixture("mlp-128-64-f16.safetensors")).unwrap();
    let seq = renamed(&renamed(&renamed(&mlp, "fc1", "0"), "fc2", "2"), "fc3", "4");
    let init = dir.join("seq.safetensors");
    std::fs::write(&init, g2d::torch::to_safetensors(&seq).unwrap()).unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, TINY_RUN).unwrap();
    let run = dir.join("run");
    let (run, config, init) = (
        run.to_str().unwrap(),
        config.to_str().unwrap(),
        init.to_str().unwrap(),
    );
    let flags = [
        "--run", run, "--config", config, "--init", init, "--hidden", "128,64", "--scope",
        "last-two",
    ];
    g2d(&[&flags[..], &["pipeline"]].concat());
    let out = export(run, &dir);
    let original = sorted(read_safetensors(&out.join("original.safetensors")).unwrap());
    let names: Vec<&str> = original.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
    );
    assert_eq!(original[1].shape, [128, 784]);
    let seq = sorted(seq);
    // Scope last-two: layer 0 stays exactly as imported, layers 2 and 4 were trained on.
    assert_eq!(original[..2], seq[..2]);
    assert_ne!(original[2..], seq[2..]);
    let set = read_safetensors(&out.join("regenerated-000.safetensors")).unwrap();
    assert_eq!(sorted(set)[..2], seq[..2]);
    std::fs::remove_dir_all(&dir).ok();
}
