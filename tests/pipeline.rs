//! End to end on the embedded slice, small enough for the test suite: every stage runs, the
//! generated models stay close to the original in accuracy, they are not copies of θ_orig,
//! and the G2D regulariser (λ > 0) moves them further from θ_orig than p-diff (λ = 0) does
//! from the same seed. The attack evaluations then run on the same artifacts.

use g2d::attacks::LinfAttack;
use g2d::backend::cpu_device;
use g2d::generate::{predict, G2dModel};
use g2d::native::config::RunConfig;
use g2d::native::query_attack::{query_attack, Policy};
use g2d::native::stages::{load_bundle, Run};
use g2d::native::transfer::transfer;

#[test]
fn regularised_generation_keeps_accuracy_and_moves_further_than_p_diff() {
    let mut config = RunConfig::default();
    config.collect.pretrain_steps = 300;
    config.collect.checkpoints = 60;
    config.collect.save_every = 5;
    config.autoencoder.steps = 400;
    config.diffusion.steps = 500;
    config.generate.count = 20;
    config.diffusion.lambda_l1 = 2.0;
    let dir = std::env::temp_dir().join(format!("g2d-pipeline-test-{}", std::process::id()));
    let run = Run::new(&dir, config, cpu_device()).unwrap();
    let splits = run.splits().unwrap();
    let collected = run.collect().unwrap();
    run.train_ae().unwrap();

    let mut results = Vec::new();
    for lambda in [0.0, 2.0] {
        run.train_diffusion(lambda).unwrap();
        let bundle = run.export(lambda, &splits).unwrap();
        results.push(run.evaluate(&bundle, &splits).unwrap());
    }
    let (p_diff, g2d) = (&results[0], &results[1]);
    let original = collected.original_test_accuracy;
    eprintln!(
        "original {original:.4}; p-diff median {:.4} L1 {:.5}; G2D median {:.4} L1 {:.5}",
        p_diff.generated_test_accuracy.median,
        p_diff.l1_to_original.mean,
        g2d.generated_test_accuracy.median,
        g2d.l1_to_original.mean
    );
    // Stated bounds for this small configuration (K = 60, 500 diffusion steps).
    assert!(p_diff.generated_test_accuracy.median >= original - 0.03);
    assert!(g2d.generated_test_accuracy.median >= original - 0.08);
    assert!(p_diff.l1_to_original.min > 0.0 && g2d.l1_to_original.min > 0.0);
    assert!(
        g2d.l1_to_original.mean > 1.1 * p_diff.l1_to_original.mean,
        "λ = 2 should move further than λ = 0: {} vs {}",
        g2d.l1_to_original.mean,
        p_diff.l1_to_original.mean
    );

    // The attack evaluations end to end on the same artifacts: white-box PGD fools θ_orig,
    // every group of models is reported, and SimBA fools the static θ_orig within its budget.
    let report = transfer(&run, &splits, LinfAttack::pgd(0.1, 20), 100, 5).unwrap();
    assert!(
        report.rows[0].attack_success.mean > 0.8,
        "white-box PGD: {:?}",
        report.rows[0]
    );
    assert_eq!(
        report.rows.len(),
        5,
        "θ_orig, checkpoints, λ = 0, λ = 2, retrained"
    );
    let bundle = load_bundle(&run.bundle_path(2.0)).unwrap();
    let model = G2dModel::from_bundle(&bundle, &run.device).unwrap();
    let predictions = predict(&model.original, &splits.test, &run.device);
    let right: Vec<usize> = (0..splits.test.len())
        .filter(|&i| predictions[i] == splits.test.labels[i])
        .take(10)
        .collect();
    let images = splits.test.select(&right);
    let rows = query_attack(
        std::slice::from_ref(&model.original),
        &images,
        &[Policy::Static],
        0.2,
        1000,
        1,
        &run.device,
    );
    assert!(
        rows[0].success_rate >= 0.8,
        "SimBA on the static model: {:?}",
        rows[0]
    );
    std::fs::remove_dir_all(&dir).ok();
}
