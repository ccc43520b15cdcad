//! Generation and guard on a small bundle: seeded runs repeat exactly, other seeds differ, a
//! non-finite vector is refused before it becomes a model, and the guard's rule is the
//! documented one. (That a refused or rejected candidate leaves the served weights in place is
//! the browser's concern: tests/web.rs.)

mod common;

use common::small_bundle;
use g2d::backend::cpu_device;
use g2d::bundle::Bundle;
use g2d::diffusion::sampler::SamplerConfig;
use g2d::generate::{generate_host, Candidates, G2dModel, Guard};
use g2d::rng::G2dRng;

fn regenerate(model: &G2dModel, sampler: &SamplerConfig, rng: G2dRng) -> Vec<f32> {
    let z0 = model.sample(2, sampler, rng).run();
    model
        .decode(z0, &[])
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn seeded_regeneration_repeats_and_seeds_differ() {
    let model = G2dModel::from_bundle(&small_bundle(), &cpu_device()).unwrap();
    for sampler in [
        SamplerConfig::Ddpm,
        SamplerConfig::Ddim { steps: 5, eta: 0.5 },
        SamplerConfig::DpmSolver { steps: 5 },
    ] {
        let a = regenerate(&model, &sampler, G2dRng::seeded(7));
        let b = regenerate(&model, &sampler, G2dRng::seeded(7));
        let c = regenerate(&model, &sampler, G2dRng::seeded(8));
        assert_eq!(a.len(), 2 * model.theta_orig.len());
        assert!(a.iter().all(|v| v.is_finite()));
        assert_eq!(a, b, "{sampler:?}: same seed, same parameters");
        assert_ne!(a, c, "{sampler:?}: another seed, other parameters");
        let n = model.theta_orig.len();
        assert_ne!(a[..n], a[n..], "two samples of one batch differ");
    }
}

#[test]
fn each_set_adds_the_run_centre_drawn_for_it_and_the_centres_survive_the_file() {
    let plain = small_bundle();
    let n = plain.theta_orig.len();
    let mut centred = plain.clone();
    // Three runs' means far apart: 0, +5 and −5 everywhere.
    centred.param_centres = [0.0f32, 5.0, -5.0]
        .iter()
        .flat_map(|&c| vec![c; n])
        .collect();
    let read = Bundle::from_bytes(&centred.to_bytes()).unwrap();
    assert_eq!(read.param_centres, centred.param_centres);
    assert_eq!(
        Bundle::from_bytes(&plain.to_bytes()).unwrap().param_centres,
        Vec::<f32>::new(),
        "a bundle without centres has no such section"
    );
    let device = cpu_device();
    let (plain, centred) = (
        G2dModel::from_bundle(&plain, &device).unwrap(),
        G2dModel::from_bundle(&read, &device).unwrap(),
    );
    let sampler = SamplerConfig::Ddim { steps: 5, eta: 0.0 };
    let mut rng = G2dRng::seeded(11);
    let picked = centred.draw_centres(64, &mut rng);
    assert!(picked.iter().all(|&r| r < 3));
    assert!((0..3).all(|r| picked.contains(&r)), "every run is drawn");
    assert!(plain.draw_centres(64, &mut rng).is_empty());
    let z0 = plain.sample(64, &sampler, G2dRng::seeded(12)).run();
    let decode = |m: &G2dModel, centres: &[usize]| {
        m.decode(z0.clone(), centres)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let (without, with) = (decode(&plain, &[]), decode(&centred, &picked));
    for (i, &r) in picked.iter().enumerate() {
        let shift = [0.0, 5.0, -5.0][r];
        for (a, b) in with[i * n..(i + 1) * n].iter().zip(&without[i * n..]) {
            assert!((a - b - shift).abs() < 1e-4, "set {i}: centre {r} added");
        }
    }
    // Sampling in batches adds them too: each set lies around one of the three centres.
    let sets = generate_host(&centred, 12, &sampler, G2dRng::seeded(13)).unwrap();
    let mut seen = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        let shift = [0.0f32, 5.0, -5.0]
            .into_iter()
            .find(|c| set.iter().all(|v| (v - c).abs() < 1.0))
            .unwrap_or_else(|| panic!("set {i} lies around no single centre"));
        seen.push(shift);
    }
    assert!(
        seen.iter().any(|&c| c != seen[0]),
        "more than one run is drawn: {seen:?}"
    );
    // A centre section that is not whole vectors of θ is refused, naming the section.
    let mut bad = read.clone();
    bad.param_centres = vec![0.0; n + 1];
    let err = Bundle::from_bytes(&bad.to_bytes()).unwrap_err().to_string();
    assert!(err.contains("param_centres"), "{err}");
}

#[test]
fn dpm_solver_uses_the_previous_prediction_and_is_ddim_where_it_cannot() {
    let model = G2dModel::from_bundle(&small_bundle(), &cpu_device()).unwrap();
    let ddim = |steps| SamplerConfig::Ddim { steps, eta: 0.0 };
    let dpm = |steps| SamplerConfig::DpmSolver { steps };
    // Two steps have no middle step, so both are first order: DDIM with η = 0 exactly.
    for steps in [1, 2] {
        let a = regenerate(&model, &dpm(steps), G2dRng::seeded(3));
        assert_eq!(a, regenerate(&model, &ddim(steps), G2dRng::seeded(3)));
    }
    // With a middle step the second-order term changes the sample.
    let a = regenerate(&model, &dpm(5), G2dRng::seeded(3));
    assert_ne!(a, regenerate(&model, &ddim(5), G2dRng::seeded(3)));
}

#[test]
fn a_nan_candidate_is_refused_and_theta_orig_round_trips() {
    let model = G2dModel::from_bundle(&small_bundle(), &cpu_device()).unwrap();
    let mut theta = model.theta_orig.clone();
    theta[0] = f32::NAN;
    let err = model.with_theta(&theta).err().unwrap().to_string();
    assert!(err.contains("non-finite"), "{err}");
    let again = model.with_theta(&model.theta_orig).unwrap();
    let flat = model.bundle_meta.regenerated.flatten(&again);
    assert_eq!(flat, model.theta_orig);
}

#[test]
fn the_guard_accepts_exactly_within_delta() {
    let bundle = small_bundle();
    let guard = Guard::new(&bundle.validation, 0.01, &cpu_device());
    assert!(guard.accepts(0.90, 0.905));
    assert!(guard.accepts(0.895, 0.905));
    assert!(!guard.accepts(0.894, 0.905));
    assert!(!guard.accepts(f32::NAN, 0.5));
    let model = G2dModel::from_bundle(&bundle, &cpu_device()).unwrap();
    let acc = guard.accuracy(&model.original).into_scalar::<f32>();
    assert!((0.0..=1.0).contains(&acc));
}

#[test]
fn a_bundle_asks_for_the_fewest_candidates_that_miss_at_most_one_call_in_a_hundred() {
    // B is the least with (1 − p_low)^B ≤ 1%, p_low the check's 95% Wilson lower bound.
    let b = |accepted| Candidates::from_check(accepted, 100).count;
    assert_eq!(b(100), 2); // p_low 0.963: one candidate would miss 3.7% of calls
    assert_eq!(b(59), 7); // p_low 0.492: 0.508^7 = 0.9%, 0.508^6 = 1.7%
    assert_eq!(b(0), Candidates::MAX);
    assert!(
        (1..=100).all(|k| b(k) >= b(k.min(99) + 1)),
        "more accepted, never more B"
    );

    // The export's check: the bundle's own sampler and guard; with δ = 1 every finite
    // candidate passes.
    let mut bundle = small_bundle();
    bundle.meta.guard_delta = 1.0;
    let c = Candidates::measure(&bundle, &cpu_device(), G2dRng::seeded(3)).unwrap();
    assert_eq!((c.count, c.sampled, c.accepted), (2, 100, 100));
}

#[test]
fn sampling_in_batches_bounds_memory_and_one_batch_is_the_unbatched_draw() {
    use g2d::generate::{generate_batches, generate_host, BATCH_FLOATS};
    let model = G2dModel::from_bundle(&small_bundle(), &cpu_device()).unwrap();
    let sampler = SamplerConfig::Ddim { steps: 5, eta: 0.0 };
    let n = model.theta_orig.len();
    let collect = |max_floats: usize, seed: u64| {
        let mut sets = Vec::new();
        generate_batches(
            &model,
            5,
            &sampler,
            G2dRng::seeded(seed),
            max_floats,
            |theta| {
                sets.push(theta);
                Ok(())
            },
        )
        .unwrap();
        sets
    };
    // Within the budget: exactly what one call samples from the same generator.
    let whole = collect(BATCH_FLOATS, 3);
    assert_eq!(
        whole,
        generate_host(&model, 5, &sampler, G2dRng::seeded(3)).unwrap()
    );
    assert_eq!(whole.concat(), {
        let z0 = model.sample(5, &sampler, G2dRng::seeded(3)).run();
        model
            .decode(z0, &[])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    });
    // Two sets a batch (and a budget below one set still samples one at a time): every set
    // finite, of the right length, all distinct, and the same again from the same seed.
    for max_floats in [2 * n, n / 2] {
        let sets = collect(max_floats, 3);
        assert_eq!(sets.len(), 5);
        assert!(sets
            .iter()
            .all(|s| s.len() == n && s.iter().all(|v| v.is_finite())));
        for (i, a) in sets.iter().enumerate() {
            assert!(sets[i + 1..].iter().all(|b| a != b), "set {i} repeats");
        }
        assert_eq!(sets, collect(max_floats, 3));
    }
}
