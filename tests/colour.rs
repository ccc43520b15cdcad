//! Colour images: an `.npz` of RGB images (channels last for training, as NumPy and Keras hold
//! them; channels first for test, as PyTorch does) trains an MLP and a CNN of the user's layers,
//! and what they export is a PyTorch state_dict for 3-channel inputs.

mod common;

use g2d::bundle::Bundle;
use g2d::torch::read_safetensors;

use common::scratch;
use common::torch::{export, g2d, TINY_RUN};

/// Where `G2D_UPDATE_FIXTURES=1` keeps the RGB CNN's bundle.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/colours-cnn.g2d"
);

/// 8×8 RGB images of 3 classes, the class being the brightest channel: training images as
/// `[N, H, W, C]` floats, test images as `[N, C, H, W]` bytes.
fn colours_npz(path: &std::path::Path) {
    let set = |n: usize, seed: usize, channels_last: bool| {
        let mut values = vec![0.0f32; n * 192];
        let labels: Vec<f32> = (0..n).map(|i| ((i * 7 + seed) % 3) as f32).collect();
        for (i, &label) in labels.iter().enumerate() {
            for p in 0..64 {
                for c in 0..3 {
                    let noise = ((i * 31 + p * 17 + c * 5) % 13) as f32 / 40.0;
                    let v = noise + if c == label as usize { 0.6 } else { 0.0 };
                    let at = if channels_last { p * 3 + c } else { c * 64 + p };
                    values[i * 192 + at] = v;
                }
            }
        }
        (values, labels)
    };
    let ((x_train, y_train), (x_test, y_test)) = (set(400, 0, true), set(100, 1, false));
    let bytes: Vec<u8> = x_test
        .iter()
        .map(|v| (v.min(1.0) * 255.0).round() as u8)
        .collect();
    let npz = g2d::npy::write_zip(&[
        (
            "x_train.npy".into(),
            g2d::npy::npy_f32(&[400, 8, 8, 3], &x_train),
        ),
        ("y_train.npy".into(), g2d::npy::npy_f32(&[400], &y_train)),
        (
            "x_test.npy".into(),
            g2d::npy::npy_bytes("|u1", &[100, 3, 8, 8], &bytes),
        ),
        ("y_test.npy".into(), g2d::npy::npy_f32(&[100], &y_test)),
    ]);
    std::fs::write(path, npz).unwrap();
}

#[test]
fn rgb_images_train_an_mlp_and_a_cnn_that_export_for_three_channels() {
    let dir = scratch("colour");
    let (data, config, arch) = (
        dir.join("colours.npz"),
        dir.join("config.json"),
        dir.join("cnn.json"),
    );
    colours_npz(&data);
    std::fs::write(&config, TINY_RUN).unwrap();
    let layers = r#"{"layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2},
        {"type": "linear", "out_features": 3}]}"#;
    std::fs::write(&arch, layers).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let models: [(&str, &[&str], &str, &[usize]); 2] = [
        ("mlp", &["--hidden", "16"], "fc1.weight", &[16, 192]),
        (
            "cnn",
            &["--arch", &path(&arch)],
            "conv1.weight",
            &[4, 3, 3, 3],
        ),
    ];
    for (name, flags, first, shape) in models {
        let run = path(&dir.join(name));
        let data_flags = [
            "--config",
            &path(&config),
            "--data",
            "npz",
            "--data-dir",
            &path(&data),
        ];
        let args = [
            &["--run", &run][..],
            &data_flags[..],
            flags,
            &["--json", "pipeline"],
        ]
        .concat();
        let report: serde_json::Value = serde_json::from_str(&g2d(&args)).unwrap();
        let accuracy = report["original_test_accuracy"].as_f64().unwrap();
        assert!(
            accuracy > 0.9,
            "{name}: the brightest channel is easy: {accuracy}"
        );
        let bundle = std::fs::read(dir.join(name).join("g2d-lambda-0.5.g2d")).unwrap();
        if name == "cnn" && std::env::var_os("G2D_UPDATE_FIXTURES").is_some() {
            // The demo page's test of a bundle that is not MNIST-shaped (tests/e2e/shapes.test.mjs).
            std::fs::write(FIXTURE, &bundle).unwrap();
        }
        let meta = Bundle::from_bytes(&bundle).unwrap().meta;
        assert_eq!(
            (meta.classifier.channels, meta.classifier.image),
            (3, [8, 8])
        );
        let sets = export(&run, &dir.join(name));
        let original = read_safetensors(&sets.join("original.safetensors")).unwrap();
        let weight = original.iter().find(|t| t.name == first).unwrap();
        assert_eq!(weight.shape, shape, "{name}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
