//! One function per `g2d` command: each runs its stage or study and prints a table, or one
//! JSON object with `--json`.

use std::path::Path;

use serde_json::json;

use super::{AttackArgs, QueryAttackArgs, ReportArgs, ThreatArgs};
use crate::attacks::LinfAttack;
use crate::bundle::Precision;
use crate::defense::populations::PopulationSizes;
use crate::defense::query_attack::{self, QueryAttackPlan};
use crate::defense::study::{self, ThreatPlan};
use crate::defense::transfer;
use crate::error::{G2dError, Result};
use crate::generate::{generate_host, G2dModel, Guard};
use crate::metrics::l1_distance;
use crate::pipeline::artifacts::write_atomic;
use crate::pipeline::config::RunConfig;
use crate::pipeline::evaluate::{table, Evaluation};
use crate::pipeline::run::{load_bundle, Run};
use crate::report;
use crate::rng::G2dRng;

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("json"));
}

fn say(json: bool, text: impl AsRef<str>) {
    if !json {
        eprintln!("{}", text.as_ref());
    }
}

/// Where `generate` writes what it sampled, besides its table.
pub struct GenerateOutputs<'a> {
    /// Every vector, as JSON.
    pub vectors: Option<&'a std::path::Path>,
    /// θ_orig and each accepted set as PyTorch state_dicts.
    pub safetensors: Option<&'a std::path::Path>,
    /// The same as NumPy archives.
    pub npz: Option<&'a std::path::Path>,
}

pub fn generate(
    run: &Run,
    bundle_path: &std::path::Path,
    outputs: GenerateOutputs,
    json: bool,
) -> Result<()> {
    let bundle = load_bundle(bundle_path)?;
    if bundle_path.parent() == Some(run.dir.as_path()) {
        run.target_behind(bundle_path, &bundle)?; // the run's own bundle must not be stale
    }
    let model = G2dModel::from_bundle(&bundle, &run.device)?;
    let guard = Guard::of_bundle(&bundle, &run.device);
    let original = guard.accuracy(&model.original).into_scalar::<f32>();
    let count = run.config.generate.count;
    let thetas = generate_host(
        &model,
        count,
        &run.config.generate.sampler,
        G2dRng::from_entropy(),
    )?;
    let (mut rows, mut accepted) = (Vec::new(), Vec::new());
    for theta in &thetas {
        let acc = guard
            .accuracy(&model.with_theta(theta)?)
            .into_scalar::<f32>();
        let ok = guard.accepts(acc, original);
        let l1 = l1_distance(theta, &model.theta_orig);
        rows.push(json!({"val_accuracy": acc, "accepted": ok, "l1_to_original": l1}));
        let verdict = if ok { "accepted" } else { "rejected" };
        say(
            json,
            format!(
                "val {:.2}% (original {:.2}%), {verdict}, L1 to θ_orig {l1:.5}",
                acc * 100.0,
                original * 100.0,
            ),
        );
        accepted.push(ok);
    }
    let formats = [(outputs.safetensors, "safetensors"), (outputs.npz, "npz")];
    for (dir, format) in formats {
        let Some(dir) = dir else { continue };
        let sets = thetas.iter().zip(&accepted).enumerate();
        let chosen = sets.filter_map(|(i, (theta, &ok))| ok.then_some((i, theta)));
        for path in export_state_dicts(&model, &bundle, chosen, dir, format)? {
            say(json, format!("wrote {}", path.display()));
        }
    }
    if let Some(out) = outputs.vectors {
        let text =
            serde_json::to_string(&json!({"manifest": bundle.meta.regenerated, "params": thetas}))
                .expect("json");
        write_atomic(out, text)?;
    }
    if json {
        print_json(&json!({"original_val_accuracy": original, "candidates": rows}));
    }
    Ok(())
}

/// Writes θ_orig and each `(index, θ)` as a PyTorch state_dict into `dir` (`format`:
/// `safetensors` or `npz`), under the names the bundle's model was imported with (the
/// classifier's own paths otherwise).
fn export_state_dicts<'a>(
    model: &G2dModel,
    bundle: &crate::bundle::Bundle,
    sets: impl Iterator<Item = (usize, &'a Vec<f32>)>,
    dir: &std::path::Path,
    format: &str,
) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| G2dError::io(dir, e))?;
    let names = bundle.meta.torch_names.as_ref();
    let mut written = Vec::new();
    let original = std::iter::once(("original".to_string(), &model.theta_orig));
    let regenerated = sets.map(|(i, theta)| (format!("regenerated-{i:03}"), theta));
    for (stem, theta) in original.chain(regenerated) {
        let tensors = crate::torch::state_dict(&model.with_theta(theta)?, names);
        let path = dir.join(format!("{stem}.{format}"));
        let bytes = match format {
            "npz" => crate::torch::to_npz(&tensors),
            _ => crate::torch::to_safetensors(&tensors)?,
        };
        write_atomic(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

fn print_evaluations(json: bool, rows: &[(&str, &Evaluation)]) {
    if json {
        let (_, main) = rows[0];
        let mut v = serde_json::to_value(main).expect("json");
        let mut sweep = Vec::new();
        for (name, e) in &rows[1..] {
            match *name {
                "sweep" => sweep.push(serde_json::to_value(e).expect("json")),
                other => v[other] = serde_json::to_value(e).expect("json"),
            }
        }
        if !sweep.is_empty() {
            v["sweep"] = serde_json::Value::Array(sweep);
        }
        print_json(&v);
    } else {
        println!("{}", table(rows));
    }
}

pub fn pipeline(run: &Run, json: bool) -> Result<()> {
    let started = std::time::Instant::now();
    let c = &run.config;
    let splits = run.splits()?;
    say(
        json,
        format!(
            "data: {} (train {}, validation {}, test {}); target {} {}; K = {}",
            splits.name,
            splits.train.len(),
            splits.validation.len(),
            splits.test.len(),
            c.collect.arch,
            c.collect.scope,
            c.collect.checkpoints
        ),
    );
    let info = run.collect()?;
    say(
        json,
        format!(
            "θ_orig: {} parameters, val {:.2}%, test {:.2}%",
            info.regenerated.len(),
            info.original_val_accuracy * 100.0,
            info.original_test_accuracy * 100.0
        ),
    );
    if !info.alignment_rounds.is_empty() {
        say(
            json,
            format!(
                "collect: runs aligned to the target's hidden units in {:?} rounds of weight matching",
                info.alignment_rounds
            ),
        );
    }
    let ae = run.train_ae()?;
    say(
        json,
        format!(
            "autoencoder: reconstruction MSE {:.5} (standardised{})",
            ae.reconstruction_mse,
            ae.centring()
        ),
    );
    let mut lambdas = vec![c.diffusion.lambda_l1];
    if c.diffusion.baseline && c.diffusion.lambda_l1 != 0.0 {
        lambdas.push(0.0);
    }
    for &l in &c.diffusion.sweep {
        if !lambdas.contains(&l) {
            lambdas.push(l);
        }
    }
    let mut evaluations = Vec::new();
    for &lambda in &lambdas {
        run.train_diffusion(lambda)?;
        let bundle = run.export(lambda, &splits)?;
        evaluations.push(run.evaluate(&bundle, &splits)?);
    }
    let seconds = started.elapsed().as_secs_f64();
    for e in &mut evaluations {
        e.seconds = seconds;
    }
    let mut rows: Vec<(&str, &Evaluation)> = vec![("G2D", &evaluations[0])];
    for e in &evaluations[1..] {
        rows.push((if e.lambda == 0.0 { "baseline" } else { "sweep" }, e));
    }
    if !json {
        println!("\n{}", table(&rows));
        println!(
            "pipeline: {seconds:.0} s; bundle {}",
            run.bundle_path(c.diffusion.lambda_l1).display()
        );
    }
    let md = run.path("report.md");
    let text = format!(
        "# G2D run\n\nCommand: `g2d pipeline` with `{}` (config.json beside this file).\n\n{}\nTotal time: {seconds:.0} s.\n",
        run.dir.display(),
        table(&rows)
    );
    write_atomic(&md, text)?;
    if json {
        print_evaluations(true, &rows);
    }
    Ok(())
}

/// The command as typed, for the files it writes; the home folder is printed as `~`, so a
/// committed report names no machine's paths.
fn command_line() -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if home.is_empty() {
                a
            } else {
                a.replace(&home, "~")
            }
        })
        .collect();
    format!("g2d {}", args.join(" "))
}

pub fn collect(run: &Run, json: bool) -> Result<()> {
    let info = run.collect()?;
    if json {
        print_json(&serde_json::to_value(&info).expect("json"));
    } else {
        println!(
            "collected {} checkpoints of {} parameters ({}); θ_orig: val {:.2}%, test {:.2}%",
            run.config.collect.checkpoints,
            info.regenerated.len(),
            info.regenerated.names().join(", "),
            info.original_val_accuracy * 100.0,
            info.original_test_accuracy * 100.0
        );
    }
    Ok(())
}

pub fn train_ae(run: &Run, json: bool) -> Result<()> {
    let info = run.train_ae()?;
    if json {
        print_json(&serde_json::to_value(&info).expect("json"));
    } else {
        println!(
            "autoencoder: latent {}×{}, reconstruction MSE {:.5} (standardised{}), latent clip {:.2}",
            info.config.latent_channels,
            info.config.latent_len(),
            info.reconstruction_mse,
            info.centring(),
            info.latent_clip
        );
    }
    Ok(())
}

pub fn train_diffusion(run: &Run, json: bool) -> Result<()> {
    let lambda = run.config.diffusion.lambda_l1;
    let info = run.train_diffusion(lambda)?;
    if json {
        print_json(&serde_json::to_value(&info).expect("json"));
    } else {
        println!(
            "diffusion λ={lambda}: final ε-MSE {:.4}",
            info.final_diffusion_loss
        );
    }
    Ok(())
}

pub fn export(run: &Run, precision: Precision, path: &Path, json: bool) -> Result<()> {
    run.export_to(
        run.config.diffusion.lambda_l1,
        &run.splits()?,
        precision,
        path,
    )?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if json {
        print_json(&json!({"bundle": path, "bytes": size}));
    } else {
        println!("wrote {} ({} bytes)", path.display(), size);
    }
    Ok(())
}

pub fn evaluate(run: &Run, bundle: &Path, json: bool) -> Result<()> {
    let e = run.evaluate(bundle, &run.splits()?)?;
    print_evaluations(json, &[("G2D", &e)]);
    Ok(())
}

pub fn attack(run: &Run, args: &AttackArgs, json: bool) -> Result<()> {
    let attack = if args.pgd_steps == 0 {
        LinfAttack::fgsm(args.epsilon)
    } else {
        LinfAttack::pgd(args.epsilon, args.pgd_steps)
    };
    let result = transfer::transfer(
        run,
        &run.splits()?,
        attack,
        args.inputs,
        args.models,
        &report::compared_lambdas(run.config.diffusion.lambda_l1),
        args.retrained,
    )?;
    if json {
        print_json(&serde_json::to_value(&result).expect("json"));
    } else {
        println!("{}", transfer::table(&result));
    }
    Ok(())
}

pub fn query_attack(run: &Run, args: &QueryAttackArgs, json: bool) -> Result<()> {
    let plan = QueryAttackPlan {
        epsilon: args.epsilon,
        budget: args.budget,
        every: args.every.clone(),
        per_session: args.per_session,
        adaptive: args.adaptive,
        inputs: args.inputs,
        pool: args.pool,
    };
    let lambda = run.config.diffusion.lambda_l1;
    let result = query_attack::attack_run(run, &run.splits()?, lambda, &plan)?;
    if json {
        print_json(&serde_json::to_value(&result).expect("json"));
    } else {
        println!("{}", query_attack::table(&result));
    }
    Ok(())
}

pub fn report(run: &Run, args: &ReportArgs, json: bool) -> Result<()> {
    let mut plan = report::ReportPlan {
        lambdas: args.lambdas.clone(),
        scopes: args.scopes.clone(),
        checkpoint_counts: args.k_values.clone(),
        noise_factors: args
            .noise
            .iter()
            .map(|s| super::overrides::parse_noise(s))
            .collect::<Result<_>>()?,
        ..Default::default()
    };
    plan.transfer.inputs = args.attack_inputs;
    plan.transfer.models = args.attack_models;
    plan.transfer.retrained = args.retrained;
    plan.query.inputs = args.query_inputs;
    plan.query.budget = args.query_budget;
    let command = command_line();
    let built = report::build(&run.dir, &run.config, &plan, &run.device, command)?;
    let written = report::write(&built, &args.out)?;
    if json {
        print_json(&serde_json::to_value(&built).expect("json"));
    } else {
        println!("{}", report::headline(&built));
        println!("{}", report::targets(&built));
        for path in written {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

pub fn threat(run: &Run, args: &ThreatArgs, json: bool) -> Result<()> {
    let result = match &args.render {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| G2dError::io(path, e))?;
            let mut stored: study::ThreatStudy =
                serde_json::from_str(&text).map_err(|source| G2dError::Json {
                    what: path.display().to_string(),
                    source,
                })?;
            stored.reselect();
            stored
        }
        None => measure_threats(run, args)?,
    };
    let written = report::threat::write(&result, &args.out)?;
    if json {
        print_json(&report::threat::summary_json(&result));
    } else {
        println!("{}", report::threat::markdown(&result));
        for path in written {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn measure_threats(run: &Run, args: &ThreatArgs) -> Result<study::ThreatStudy> {
    let plan = ThreatPlan {
        epsilons: args.epsilons.clone(),
        pgd_steps: args.pgd_steps,
        inputs: args.inputs,
        sizes: PopulationSizes {
            targets: args.models,
            eot_models: args.eot_models,
            retrained: args.retrained,
            robust_retrained: args.robust_retrained,
        },
        shuffle_rotation: args.shuffle_rotation,
        ..Default::default()
    };
    let mut runs = vec![Run::new(&run.dir, run.config.clone(), run.device.clone())?];
    for dir in &args.variants {
        let config = RunConfig::from_file(&dir.join("config.json"))?;
        runs.push(Run::new(dir, config, run.device.clone())?);
    }
    let command = command_line();
    study::study(&runs, &plan, command)
}
