//! The CNN: G2D's own keeps the tensors its runs and bundles were written with, layer lists
//! that do not fit are refused naming the layer, output sizes follow PyTorch's; and the CNN
//! path end to end on the embedded slice: every stage (collect, autoencoder, diffusion, export,
//! evaluate) runs for the CNN with its last two layers regenerated, the bundle names the CNN's
//! tensors, and the generated models classify far above chance.

use g2d::backend::cpu_device;
use g2d::bundle::Bundle;
use g2d::classifier::cnn::{flows, parameter_count, Flow};
use g2d::classifier::{Arch, Classifier, ClassifierConfig, LayerSpec};
use g2d::params::Manifest;
use g2d::pipeline::config::RunConfig;
use g2d::pipeline::run::Run;

#[test]
fn the_cnn_runs_through_every_stage_and_its_generated_models_classify() {
    let mut config = RunConfig::base();
    config.collect.arch = Arch::Cnn;
    config.collect.pretrain_steps = 150;
    config.collect.checkpoints = 20;
    config.collect.save_every = 2;
    config.autoencoder.steps = 150;
    config.diffusion.steps = 150;
    config.generate.count = 6;
    let dir = std::env::temp_dir().join(format!("g2d-cnn-test-{}", std::process::id()));
    let run = Run::new(&dir, config, cpu_device()).unwrap();
    let splits = run.splits().unwrap();

    let collected = run.collect().unwrap();
    assert_eq!(
        collected.regenerated.names(),
        ["conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias"]
    );
    assert!(collected.original_test_accuracy > 0.8, "{collected:?}");
    run.train_ae().unwrap();
    let lambda = run.config.diffusion.lambda_l1;
    run.train_diffusion(lambda).unwrap();
    let bundle_path = run.export(lambda, &splits).unwrap();
    let bundle = Bundle::from_bytes(&std::fs::read(&bundle_path).unwrap()).unwrap();
    assert_eq!(bundle.meta.classifier.arch, Arch::Cnn);
    assert_eq!(bundle.theta_orig.len(), collected.regenerated.len());

    let e = run.evaluate(&bundle_path, &splits).unwrap();
    assert_eq!(e.n_generated, 6);
    assert!(e.l1_to_original.min > 0.0, "generated sets are not θ_orig");
    assert!(
        e.generated_test_accuracy.median > 0.5,
        "far above the 10% of chance: {:?}",
        e.generated_test_accuracy
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn g2d_s_own_cnn_keeps_its_tensors() {
    // The names and shapes every CNN run and bundle was written with (burn's [in, out]).
    let model = Classifier::new(Arch::Cnn, &cpu_device());
    let m = Manifest::full(&model);
    let got: Vec<(String, Vec<usize>)> = m
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let want = [
        ("conv1.weight", vec![8, 1, 5, 5]),
        ("conv1.bias", vec![8]),
        ("conv2.weight", vec![16, 8, 5, 5]),
        ("conv2.bias", vec![16]),
        ("fc1.weight", vec![256, 10]),
        ("fc1.bias", vec![10]),
    ];
    let want: Vec<(String, Vec<usize>)> =
        want.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    assert_eq!(got, want);
}

fn refused(layers: serde_json::Value, image: [usize; 2], expected: &str) {
    let layers: Vec<LayerSpec> = serde_json::from_value(layers).unwrap();
    let config = ClassifierConfig {
        layers: Some(layers),
        ..ClassifierConfig::new(Arch::Cnn).with_data(image, 4)
    };
    let err = config.validate("hidden").unwrap_err().to_string();
    assert!(err.contains(expected), "expected {expected:?} in {err}");
}

#[test]
fn layer_lists_that_do_not_fit_are_refused_naming_the_layer() {
    use serde_json::json;
    let conv = |k: usize| json!({"type": "conv2d", "out_channels": 4, "kernel_size": k});
    let fc = |n: usize| json!({"type": "linear", "out_features": n});
    refused(
        json!([conv(7), fc(4)]),
        [6, 6],
        "layers[0] (conv2d): its 7×7 window is larger than its 6×6 input",
    );
    refused(
        json!([fc(8), conv(3), fc(4)]),
        [10, 10],
        "layers[1] (conv2d): comes after the input was flattened",
    );
    refused(
        json!([conv(3), fc(5)]),
        [10, 10],
        "the last layer gives 5 outputs; the data has 4 classes",
    );
    refused(json!([conv(3)]), [10, 10], "must end with a linear layer");
    // PyTorch allows a pool's padding up to half its kernel (per axis).
    refused(
        json!([{"type": "maxpool2d", "kernel_size": [4, 2], "padding": [2, 2]}, fc(4)]),
        [10, 10],
        "layers[0] (maxpool2d) padding",
    );
    refused(
        json!([{"type": "conv2d", "out_channels": 4, "kernel_size": [3, 11]}, fc(4)]),
        [10, 10],
        "layers[0] (conv2d): its 3×11 window is larger than its 10×10 input",
    );
    refused(
        json!([{"type": "flatten"}, {"type": "flatten"}, fc(4)]),
        [10, 10],
        "layers[1] (flatten): the input is flat already",
    );
    refused(
        json!([conv(3), fc(100_000)]),
        [10, 10],
        "layers[1] (linear) out_features",
    );
    let typo = json!([{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "strides": 2}]);
    let err = serde_json::from_value::<Vec<LayerSpec>>(typo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `strides`"), "{err}");
}

#[test]
fn strides_and_padding_follow_pytorch_s_output_sizes() {
    // (14 + 2·1 − 3) / 2 + 1 = 7 rows, (11 + 2 − 3) / 2 + 1 = 6 columns; then a 2×2 pool
    // with stride 1: 6 × 5.
    let layers: Vec<LayerSpec> = serde_json::from_value(serde_json::json!([
        {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "maxpool2d", "kernel_size": 2, "stride": 1},
        {"type": "linear", "out_features": 4}
    ]))
    .unwrap();
    let f = flows(&layers, [1, 14, 11], 4).unwrap();
    assert_eq!(f[1], Flow::Maps([3, 7, 6]));
    assert_eq!(f[2], Flow::Maps([3, 6, 5]));
    assert_eq!(parameter_count(&layers, &f), 3 * (9 + 1) + 4 * (90 + 1));
}

#[test]
fn non_square_windows_and_padded_pooling_follow_pytorch_s_output_sizes() {
    // conv (3, 5), stride (1, 2), padding (1, 2) on 28×28: (28 + 2 − 3) / 1 + 1 = 28 rows,
    // (28 + 4 − 5) / 2 + 1 = 14 columns; pool 3, stride 2, padding 1: 14 × 7; conv (5, 3):
    // 10 × 5; pool (2, 1) (its stride): 5 × 5.
    let text = r#"[
        {"type": "conv2d", "out_channels": 4, "kernel_size": [3, 5], "stride": [1, 2], "padding": [1, 2]},
        {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 6, "kernel_size": [5, 3]},
        {"type": "maxpool2d", "kernel_size": [2, 1]},
        {"type": "linear", "out_features": 10}
    ]"#;
    let layers: Vec<LayerSpec> = serde_json::from_str(text).unwrap();
    let f = flows(&layers, [1, 28, 28], 10).unwrap();
    let maps: Vec<Flow> = f[1..6].to_vec();
    assert_eq!(
        maps,
        [[4, 28, 14], [4, 14, 7], [4, 14, 7], [6, 10, 5], [6, 5, 5]].map(Flow::Maps)
    );
    assert_eq!(
        parameter_count(&layers, &f),
        4 * (15 + 1) + 6 * (4 * 15 + 1) + 10 * (150 + 1)
    );

    // A square size is written as one number, as before sizes could differ per axis, so
    // bundles and configs of square layers read and write as they did.
    let written = serde_json::to_value(&layers).unwrap();
    assert_eq!(written[0]["kernel_size"], serde_json::json!([3, 5]));
    assert_eq!(written[1]["kernel_size"], serde_json::json!(3));
    assert_eq!(written[1]["padding"], serde_json::json!(1));
    assert!(written[4].get("padding").is_none(), "{}", written[4]);
    let back: Vec<LayerSpec> = serde_json::from_value(written).unwrap();
    assert_eq!(back, layers);
}
