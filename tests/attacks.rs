//! The white-box attacks: the hand-written input gradient equals autodiff's for both
//! architectures, FGSM moves every pixel by exactly ε (within [0, 1]), PGD stays in the ε-ball
//! and raises the loss.

mod common;

use g2d::attacks::{craft, input_gradient, LinfAttack};
use g2d::backend::cpu_device;
use g2d::classifier::{
    cross_entropy, images_tensor, labels_tensor, Arch, Classifier, ClassifierConfig,
};
use g2d::rng::G2dRng;

fn batch() -> (Vec<f32>, Vec<u8>) {
    batch_of(784, 10)
}

/// Eight random images of `pixels` pixels, labelled 0, 1, … modulo `classes`.
fn batch_of(pixels: usize, classes: usize) -> (Vec<f32>, Vec<u8>) {
    let mut rng = G2dRng::seeded(1);
    let images = (0..8 * pixels).map(|_| rng.uniform()).collect();
    (images, (0..8).map(|i| (i % classes) as u8).collect())
}

/// ∇ₓ of the mean cross-entropy by burn's autodiff: the reference the hand-written backward
/// pass (the only one the browser build has) must match.
fn autodiff_input_gradient(model: &Classifier, pixels: &[f32], labels: &[u8]) -> Vec<f32> {
    let device = cpu_device();
    let x = images_tensor(pixels, pixels.len() / labels.len(), &device)
        .autodiff()
        .require_grad();
    let loss = cross_entropy(model.forward(x.clone()), labels_tensor(labels, &device));
    let grads = loss.backward();
    x.grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// [`input_gradient`] (the hand-written backward pass) on host data.
fn host_input_gradient(model: &Classifier, pixels: &[f32], labels: &[u8]) -> Vec<f32> {
    let device = cpu_device();
    let images = images_tensor(pixels, pixels.len() / labels.len(), &device);
    let grad = input_gradient(model, images, labels_tensor(labels, &device));
    grad.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn the_hand_written_input_gradient_matches_autodiff_for_the_mlp_and_the_cnn() {
    let device = cpu_device();
    let configs = [
        ClassifierConfig::new(Arch::Mlp),
        ClassifierConfig::new(Arch::Cnn),
        common::strided_cnn(),
        common::odd_cnn(),
    ];
    for (i, config) in configs.into_iter().enumerate() {
        config.validate("hidden").unwrap();
        let arch = format!("configs[{i}] ({})", config.arch);
        let model = common::seeded_network(&config, 3, &device);
        let (pixels, labels) = batch_of(config.inputs(), config.classes);
        let want = autodiff_input_gradient(&model, &pixels, &labels);
        let got = host_input_gradient(&model, &pixels, &labels);
        let scale = want.iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(scale > 0.0, "{arch}: the reference gradient is zero");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * scale,
                "{arch} pixel {i}: {g} against autodiff's {w}"
            );
        }
    }
}

#[test]
fn fgsm_moves_every_pixel_by_epsilon_within_the_pixel_range() {
    let device = cpu_device();
    let model = common::seeded_network(&ClassifierConfig::new(Arch::Mlp), 3, &device);
    let (pixels, labels) = batch();
    let eps = 0.1;
    let adv = craft(
        &model,
        images_tensor(&pixels, 784, &device),
        labels_tensor(&labels, &device),
        &LinfAttack::fgsm(eps),
        &mut G2dRng::seeded(0),
    )
    .into_data()
    .try_to_vec::<f32>()
    .unwrap();
    // Exactly clip(x + ε·sign(∇ₓℓ), 0, 1), pixel by pixel.
    let grad = host_input_gradient(&model, &pixels, &labels);
    let mut moved = 0;
    for ((a, x), g) in adv.iter().zip(&pixels).zip(&grad) {
        let step = if *g > 0.0 {
            eps
        } else if *g < 0.0 {
            -eps
        } else {
            0.0
        };
        let want = (x + step).clamp(0.0, 1.0);
        assert!(
            (a - want).abs() < 1e-5,
            "pixel {x} moved to {a}, not {want}"
        );
        moved += (((a - x).abs() - eps).abs() < 1e-5) as usize;
    }
    assert!(
        moved > adv.len() * 8 / 10,
        "most pixels move by exactly ε ({moved})"
    );
}

#[test]
fn pgd_stays_in_the_ball_and_increases_the_loss() {
    let device = cpu_device();
    let model = common::seeded_network(&ClassifierConfig::new(Arch::Mlp), 3, &device);
    let (pixels, labels) = batch();
    let eps = 0.1;
    let images = images_tensor(&pixels, 784, &device);
    let targets = labels_tensor(&labels, &device);
    let adv = craft(
        &model,
        images.clone(),
        targets.clone(),
        &LinfAttack::pgd(eps, 10),
        &mut G2dRng::seeded(0),
    );
    let before = cross_entropy(model.forward(images), targets.clone()).into_scalar::<f32>();
    let after = cross_entropy(model.forward(adv.clone()), targets).into_scalar::<f32>();
    assert!(after > before, "loss {before} → {after}");
    let adv = adv.into_data().try_to_vec::<f32>().unwrap();
    for (a, x) in adv.iter().zip(&pixels) {
        assert!((a - x).abs() <= eps + 1e-5 && (0.0..=1.0).contains(a));
    }
}

#[test]
fn simba_fools_a_static_model_within_its_budget() {
    use g2d::data::Images;
    use g2d::defense::query_attack::{query_attack, Attacker, Policy};
    use g2d::generate::predict;
    let device = cpu_device();
    let model = common::seeded_network(&ClassifierConfig::new(Arch::Mlp), 3, &device);
    let (pixels, _) = batch();
    // Label each image with the model's own answer, so every attack starts from a right one.
    let mut images = Images {
        pixels,
        labels: vec![0; 8],
        channels: 1,
        rows: 28,
        cols: 28,
    };
    images.labels = predict(&model, &images, &device);
    let rows = query_attack(
        &[model],
        &images,
        &[
            (Policy::Static, Attacker::Simba),
            (Policy::Static, Attacker::SimbaPaired),
        ],
        0.3,
        3000,
        1,
        &device,
    );
    assert_eq!(rows[0].attacked, 8);
    assert!(
        rows[0].success_rate >= 0.75,
        "success {}",
        rows[0].success_rate
    );
    assert!(rows[0].queries_to_success.unwrap().best <= 3000.0);
    // Against fixed weights the paired (rotation-aware) attacker walks the same path, paying
    // one extra query per candidate: 1 + 2c queries where SimBA needs 1 + c.
    for (simba, paired) in rows[0].outcomes.iter().zip(&rows[1].outcomes) {
        let expected = simba.map(|q| 2 * q - 1).filter(|&q| q <= 3000);
        assert_eq!(*paired, expected);
    }
}
