//! End to end on the embedded slice, small enough for the test suite, through `g2d report`:
//! every stage runs for the base configuration (last two layers) and a scope variant (last
//! layer); the generated models stay close to the original in accuracy, they are not copies of
//! θ_orig, and the G2D regulariser (λ > 0) moves them further from θ_orig than p-diff (λ = 0)
//! does from the same seed. The attack evaluations run on the same artifacts, and the report's
//! files are written and read back; the threat study measures every kind of population on the
//! same run and writes a summary.json of the documented shape, and robust retraining trains
//! independent models.

use g2d::attacks::LinfAttack;
use g2d::backend::cpu_device;
use g2d::classifier::Classifier;
use g2d::defense::populations::{self, MethodKind, PopulationSizes};
use g2d::defense::query_attack::{Policy, QueryAttackPlan};
use g2d::defense::study::{self, ThreatPlan};
use g2d::params::{Manifest, Scope};
use g2d::pipeline::config::RunConfig;
use g2d::pipeline::run::Run;
use g2d::report::{self, Report, ReportPlan, TransferPlan};

#[test]
fn regularised_generation_keeps_accuracy_and_moves_further_than_p_diff() {
    let mut config = RunConfig::base();
    config.collect.pretrain_steps = 300;
    config.collect.checkpoints = 60;
    config.collect.save_every = 5;
    config.autoencoder.steps = 400;
    config.diffusion.steps = 500;
    config.generate.count = 20;
    config.diffusion.lambda_l1 = 2.0;
    let plan = ReportPlan {
        lambdas: vec![0.0, 2.0],
        scopes: vec![Scope::Last, Scope::LastTwo],
        checkpoint_counts: vec![],
        noise_factors: vec![],
        transfer: TransferPlan {
            attack: LinfAttack::pgd(0.1, 20),
            inputs: 100,
            models: 5,
            retrained: 2,
        },
        query: QueryAttackPlan {
            epsilon: 0.2,
            budget: 1000,
            every: vec![10],
            per_session: true,
            adaptive: true,
            inputs: 10,
            pool: 3,
        },
    };
    let dir = std::env::temp_dir().join(format!("g2d-pipeline-test-{}", std::process::id()));
    let device = cpu_device();
    let built = report::build(&dir, &config, &plan, &device, "test".into()).unwrap();
    assert_eq!(built.variants.len(), 2, "base and scope-last");

    let base = built.base();
    let (p_diff, g2d) = (base.evaluation(0.0).unwrap(), base.evaluation(2.0).unwrap());
    let original = p_diff.original_test_accuracy;
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
    assert_eq!(g2d.models.len(), 20, "one score per generated model");

    // The scope variant regenerates the output layer only: 32·10 + 10 parameters.
    let last = &built.variants[1];
    assert_eq!(last.regenerated, 330);
    assert_eq!(last.evaluations.len(), 2);

    // Attacks: white-box PGD fools θ_orig, every group of models is reported, and SimBA fools
    // the static θ_orig within its budget.
    let transfer = base.transfer.as_ref().unwrap();
    assert!(
        base.white_box_success().unwrap() > 0.8,
        "white-box PGD: {:?}",
        transfer.rows[0]
    );
    assert_eq!(
        transfer.rows.len(),
        5,
        "θ_orig, checkpoints, λ = 0, λ = 2, retrained"
    );
    assert!(last.transfer.is_some() && last.retrained_success().is_none());
    assert_eq!(base.query.len(), 2, "λ = 0 and λ = 2 pools");
    let stat = &base.query[0].rows[0];
    assert_eq!(stat.policy, Policy::Static);
    assert!(
        stat.success_rate >= 0.8,
        "SimBA on the static model: {stat:?}"
    );
    assert_eq!(stat.success_within(plan.query.budget), stat.success_rate);

    // The files: JSON that reads back, a Markdown row per (variant, λ), every plot.
    let out = dir.join("out");
    let written = report::write(&built, &out).unwrap();
    assert_eq!(written.len(), 3 + 5);
    let read: Report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(read.variants.len(), 2);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert_eq!(md.matches("| base | 2410 (last-two) | ").count(), 2);
    assert_eq!(md.matches("| scope-last | 330 (last) |").count(), 2);
    let scatter = std::fs::read_to_string(out.join("accuracy-vs-l1.svg")).unwrap();
    assert!(scatter.starts_with("<svg"));
    assert!(
        scatter.matches("<circle").count() >= 40,
        "a point per model"
    );

    // A variant that changes only the autoencoder takes over the base's collection; one that
    // changes what is collected does not.
    let base_run = Run::new(&dir, config.clone(), device.clone()).unwrap();
    let mut noisier = config.clone();
    noisier.autoencoder.network.latent_noise_factor = 0.5;
    let adopter = Run::new(&dir.join("adopter"), noisier, device.clone()).unwrap();
    let adopted = adopter.adopt_collection(&base_run).unwrap().unwrap();
    assert_eq!(adopted.regenerated.len(), 2410);
    assert!(adopter.path("target.safetensors").is_file());
    assert!(base_run.adopt_collection(&base_run).unwrap().is_none());
    let other_scope = Run::new(&last.dir, last.config.clone(), device.clone()).unwrap();
    assert!(other_scope.adopt_collection(&base_run).unwrap().is_none());

    // A second build reuses every finished variant (same recorded timings) instead of
    // training again. The timings come back from JSON, which serde_json's default float
    // parser may read one unit in the last place off; training again would differ by far more.
    let again = report::build(&dir, &config, &plan, &device, "test".into()).unwrap();
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    for (v, first) in again.variants.iter().zip([&base, &last]) {
        let (a, b) = (v.seconds(), first.seconds());
        assert!(same(a, b), "{}: {a} s on reuse against {b} s", v.name);
    }

    threat_study_covers_every_baseline_kind(&base_run, &out);
    std::fs::remove_dir_all(&dir).ok();
}

/// The threat study on the same run: every kind of population is measured under every
/// attacker, and summary.json has the documented shape.
fn threat_study_covers_every_baseline_kind(run: &Run, out: &std::path::Path) {
    let plan = ThreatPlan {
        epsilons: vec![0.1],
        pgd_steps: 5,
        inputs: 60,
        sizes: PopulationSizes {
            targets: 2,
            eot_models: 2,
            retrained: 2,
            robust_retrained: 0,
        },
        adversarial_training: LinfAttack::pgd(0.1, 2),
        shuffle_rotation: false,
    };
    let study = study::study(std::slice::from_ref(run), &plan, "test".into()).unwrap();
    report::threat::write(&study, out).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["selected_on"], "validation");
    assert_eq!(summary["dataset"], "mnist-slice");
    assert!(summary["theta_orig_test_accuracy"].as_f64().unwrap() > 0.8);
    let methods = summary["methods"].as_array().unwrap();
    let kinds: Vec<&str> = methods
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "g2d",
        "p-diff",
        "noise",
        "checkpoints",
        "retrained",
        "adversarial-training",
        "static",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let recommended = summary["recommended"].as_str().unwrap();
    assert!(methods
        .iter()
        .any(|m| m["name"] == recommended && m["kind"] == "g2d"));
    for m in methods {
        for key in [
            "white_box",
            "transfer_from_original",
            "cross_session",
            "eot_bundle",
        ] {
            let r = &m[key];
            let (success, n) = (r["success"].as_f64().unwrap(), r["n"].as_u64().unwrap());
            let [lo, hi] = [
                r["ci95"][0].as_f64().unwrap(),
                r["ci95"][1].as_f64().unwrap(),
            ];
            assert_eq!(r["eps"], 0.1, "{key} of {}", m["name"]);
            assert!(
                n > 0 && lo <= success && success <= hi,
                "{key} of {}: {r}",
                m["name"]
            );
        }
        assert!(m["median_test_accuracy"].as_f64().unwrap() > 0.5);
    }
    // A static model serves one set of weights: its T2 and T3 are its white box.
    let stat = methods.iter().find(|m| m["kind"] == "static").unwrap();
    assert_eq!(stat["cross_session"], stat["white_box"]);
    let g2d = methods.iter().find(|m| m["kind"] == "g2d").unwrap();
    assert_eq!(g2d["eot_bundle"]["ensemble"], 2, "{g2d}");
    assert!(std::fs::read_to_string(out.join("pareto.svg"))
        .unwrap()
        .starts_with("<svg"));

    // Rotation shuffled: the same served checkpoints, in another order.
    let bundle = run.load_own_bundle(run.config.diffusion.lambda_l1).unwrap();
    let main = g2d::generate::G2dModel::from_bundle(&bundle, &cpu_device()).unwrap();
    let all = run.load_target().unwrap().rows("checkpoints").unwrap();
    let sizes = PopulationSizes {
        targets: 8,
        eot_models: 2,
        retrained: 1,
        robust_retrained: 0,
    };
    let along = populations::checkpoints(&all, &main, &sizes, None).unwrap();
    let shuffled = populations::checkpoints(&all, &main, &sizes, Some(5)).unwrap();
    assert_eq!(shuffled.name, "checkpoint rotation (shuffled)");
    assert_ne!(shuffled.thetas, along.thetas, "another order");
    let sorted = |mut v: Vec<Vec<f32>>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    assert_eq!(
        sorted(shuffled.thetas),
        sorted(along.thetas),
        "the same sets"
    );

    // Retrained adversarially: independent models of the run's architecture, each trained with
    // the attack from its own seed.
    let attack = LinfAttack::pgd(0.1, 2);
    let robust = populations::retrained(run, &run.splits().unwrap(), 2, Some(attack)).unwrap();
    assert_eq!(robust.kind, MethodKind::Retrained);
    assert_eq!(
        robust.name,
        "retrained adversarially (all layers, PGD-2, ε = 0.1)"
    );
    assert_eq!(robust.targets.len(), 2);
    let flat = |m: &Classifier| Manifest::full(m).flatten(m);
    assert_ne!(flat(&robust.targets[0]), flat(&robust.targets[1]));
}

/// Runs centred on their means (`autoencoder.centre_runs`), through every stage with the
/// function-space terms on: the bundle carries one mean per run, and the generated sets,
/// each plus one of them, are finite and as many as asked.
#[test]
fn centred_runs_train_end_to_end_and_the_bundle_carries_their_means() {
    let mut config = RunConfig::base();
    config.collect.pretrain_steps = 100;
    config.collect.checkpoints = 12;
    config.collect.save_every = 2;
    config.collect.seeds = 3;
    config.autoencoder.centre_runs = true;
    config.autoencoder.steps = 20;
    config.diffusion.steps = 20;
    config.diffusion.baseline = false;
    config.diffusion.task_weight = 1.0;
    config.diffusion.cross_weight = 1.0;
    config.generate.count = 6;
    let dir = std::env::temp_dir().join(format!("g2d-centred-test-{}", std::process::id()));
    let run = Run::new(&dir, config.clone(), cpu_device()).unwrap();
    run.collect().unwrap();
    run.train_ae().unwrap();
    let lambda = config.diffusion.lambda_l1;
    let info = run.train_diffusion(lambda).unwrap();
    assert!(info.final_distance.is_some() && info.final_task.is_some());
    let splits = run.splits().unwrap();
    let bundle = g2d::pipeline::run::load_bundle(&run.export(lambda, &splits).unwrap()).unwrap();
    let n = bundle.theta_orig.len();
    assert_eq!(
        bundle.param_centres.len(),
        3 * n,
        "K = 12 over 3 runs: 3 means"
    );
    // Each is the mean of its run's 4 checkpoints, in the order collection saved them.
    let checkpoints = run.load_target().unwrap().rows("checkpoints").unwrap();
    let means = g2d::normalize::run_centres(&checkpoints, 4).concat();
    let apart = (bundle.param_centres.iter().zip(&means))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        apart < 1e-6,
        "the bundle's centres are the runs' means: {apart}"
    );
    let evaluation = run.evaluate(&run.bundle_path(lambda), &splits).unwrap();
    assert_eq!(evaluation.models.len(), 6);
    assert!(evaluation.l1_to_original.min > 0.0);
    std::fs::remove_dir_all(&dir).ok();
}
