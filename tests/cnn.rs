//! The CNN path end to end on the embedded slice: every stage (collect, autoencoder, diffusion,
//! export, evaluate) runs for the CNN with its last two layers regenerated, the bundle names the
//! CNN's tensors, and the generated models classify far above chance.

use g2d::backend::cpu_device;
use g2d::bundle::Bundle;
use g2d::classifier::Arch;
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
