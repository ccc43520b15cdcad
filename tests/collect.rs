//! Stage 1: collection trains only the regenerated tensors (the fixed ones stay exactly as the
//! pretrained target left them), saves K checkpoints, can spread them over several seeds, and
//! can train them away from what fools θ_orig.

use g2d::attacks::{craft, LinfAttack};
use g2d::backend::cpu_device;
use g2d::classifier::{images_tensor, labels_tensor, Classifier};
use g2d::generate::predict;
use g2d::metrics::l1_distance;
use g2d::params::Scope;
use g2d::pipeline::collect::{collect, train_target};
use g2d::pipeline::config::{CollectVulnerability, RunConfig};
use g2d::pipeline::sources::{load_splits, DataSource};
use g2d::rng::G2dRng;

fn small_config(seeds: usize) -> RunConfig {
    let mut config = RunConfig::base();
    config.collect.pretrain_steps = 100;
    config.collect.checkpoints = 20;
    config.collect.save_every = 2;
    config.collect.seeds = seeds;
    config
}

// burn seeds initialisation per device, process-wide: the two checks share one test so that no
// other thread draws from that generator between the seeding and the initialisation.
#[test]
fn collection_trains_only_the_regenerated_tensors_over_seeds_and_away_from_theta_orig() {
    collection_leaves_the_fixed_tensors_untouched();
    checkpoints_can_come_from_several_seeds();
    checkpoints_can_move_away_from_what_fools_theta_orig();
    several_runs_can_train_away_side_by_side();
}

fn collection_leaves_the_fixed_tensors_untouched() {
    let device = cpu_device();
    let splits = load_splits(DataSource::Embedded, None, None, 0).unwrap();
    let config = small_config(1);
    let collected = collect(&config, &splits, &device).unwrap();
    assert_eq!(collected.checkpoints.len(), 20);
    assert_eq!(collected.checkpoints.last().unwrap(), &collected.theta_orig);
    let pretrained = train_target(&config, &splits, config.seed, &device).unwrap();
    let fixed = &collected.info.fixed;
    let moved = l1_distance(
        &fixed.flatten(&collected.target),
        &fixed.flatten(&pretrained),
    );
    assert!(
        moved == 0.0,
        "fixed tensors moved by {moved} during collection"
    );
    let regenerated = &collected.info.regenerated;
    assert_ne!(
        regenerated.flatten(&collected.target),
        regenerated.flatten(&pretrained)
    );
}

fn checkpoints_can_come_from_several_seeds() {
    let device = cpu_device();
    let splits = load_splits(DataSource::Embedded, None, None, 0).unwrap();
    let collected = collect(&small_config(2), &splits, &device).unwrap();
    let k = collected.checkpoints.len();
    assert_eq!(k, 20);
    // The other seed's run comes first; its checkpoints sit much further from θ_orig than the
    // main run's own trajectory does.
    let other = l1_distance(&collected.checkpoints[0], &collected.theta_orig);
    let own = l1_distance(&collected.checkpoints[k - 2], &collected.theta_orig);
    assert!(other > 5.0 * own, "other seed {other} vs own run {own}");
    assert!(collected.info.original_test_accuracy > 0.8);
}

fn checkpoints_can_move_away_from_what_fools_theta_orig() {
    let device = cpu_device();
    let splits = load_splits(DataSource::Embedded, None, None, 0).unwrap();
    let mut config = small_config(1);
    config.collect.scope = Scope::All;
    config.collect.vulnerability = Some(CollectVulnerability {
        attack: LinfAttack::pgd(0.1, 5),
        warmup_steps: 100,
        ..CollectVulnerability::new(1.0)
    });
    let collected = collect(&config, &splits, &device).unwrap();
    assert_eq!(collected.checkpoints.len(), 20);
    // θ_orig is the trained target itself, not a point of the trajectory.
    let pretrained = train_target(&config, &splits, config.seed, &device).unwrap();
    let regenerated = &collected.info.regenerated;
    assert_eq!(collected.theta_orig, regenerated.flatten(&pretrained));
    assert!(!collected.checkpoints.contains(&collected.theta_orig));
    // Examples crafted on θ_orig fool it far more often than the last checkpoint.
    let images = splits.validation.take(200);
    let crafted = craft(
        &collected.target,
        images_tensor(&images.pixels, images.pixels_per_image(), &device),
        labels_tensor(&images.labels, &device),
        &LinfAttack::pgd(0.1, 10),
        &mut G2dRng::seeded(7),
    );
    let adversarial = g2d::data::Images {
        pixels: crafted.into_data().try_to_vec::<f32>().unwrap(),
        ..images.clone()
    };
    let fooled = |model: &Classifier| {
        let predicted = predict(model, &adversarial, &device);
        let wrong = predicted.iter().zip(&images.labels);
        wrong.filter(|(p, l)| p != l).count()
    };
    let last = regenerated
        .unflatten(pretrained, collected.checkpoints.last().unwrap())
        .unwrap();
    let (on_original, on_last) = (fooled(&collected.target), fooled(&last));
    assert!(
        2 * on_last < on_original,
        "θ_orig fooled on {on_original}, the last checkpoint on {on_last} of 200"
    );
}

fn several_runs_can_train_away_side_by_side() {
    let device = cpu_device();
    let splits = load_splits(DataSource::Embedded, None, None, 0).unwrap();
    let mut config = small_config(2);
    config.collect.vulnerability = Some(CollectVulnerability {
        attack: LinfAttack::pgd(0.1, 3),
        warmup_steps: 10,
        ..CollectVulnerability::new(1.0)
    });
    let collected = collect(&config, &splits, &device).unwrap();
    let k = collected.checkpoints.len();
    assert_eq!(k, 20);
    assert!(!collected.checkpoints.contains(&collected.theta_orig));
    // Run 1 (from a fresh initialisation) comes first, run 0 (from θ_orig) after it.
    let other = l1_distance(&collected.checkpoints[0], &collected.theta_orig);
    let own = l1_distance(&collected.checkpoints[k - 1], &collected.theta_orig);
    assert!(other > 5.0 * own, "other run {other} vs run 0 {own}");
    assert!(own > 0.0);
    // From the trained target, run 1 stays as near θ_orig as run 0, but not on it.
    config.collect.vulnerability.as_mut().unwrap().from_target = true;
    let collected = collect(&config, &splits, &device).unwrap();
    let other = l1_distance(&collected.checkpoints[9], &collected.theta_orig);
    let own = l1_distance(&collected.checkpoints[19], &collected.theta_orig);
    assert!(
        other < 2.0 * own && own < 2.0 * other,
        "run 1 {other}, run 0 {own}"
    );
    assert_ne!(collected.checkpoints[9], collected.checkpoints[19]);
}
