//! The `g2d` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use super::config::RunConfig;
use super::evaluate::{table, Evaluation};
use super::sources::DataSource;
use super::stages::{load_bundle, Run};
use crate::backend::{native_device, BackendKind};
use crate::classifier::Arch;
use crate::diffusion::sampler::SamplerConfig;
use crate::error::{G2dError, Result};
use crate::generate::{generate_accepted, generate_host, G2dModel, Guard};
use crate::metrics::l1_distance;
use crate::params::Scope;
use crate::rng::G2dRng;

#[derive(Parser, Debug)]
#[command(
    name = "g2d",
    version,
    about = "Generate to Defend: regenerate a classifier's parameters with regularised latent diffusion"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Run directory: artifacts, the config that made them, evaluations.
    #[arg(long, global = true, default_value = "runs/default")]
    pub run: PathBuf,
    /// JSON configuration file (any subset of the keys in RUN/config.json); flags override it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Args, Debug, Default)]
pub struct Overrides {
    /// Data set: embedded (default), mnist or fashion-mnist.
    #[arg(long, global = true, value_enum)]
    pub data: Option<DataSource>,
    /// Folder of the IDX files for --data mnist / fashion-mnist.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// cpu or wgpu.
    #[arg(long, global = true)]
    pub backend: Option<String>,
    /// mlp or cnn.
    #[arg(long, global = true)]
    pub arch: Option<String>,
    /// Regenerated tensors: last, last-two or all.
    #[arg(long, global = true)]
    pub scope: Option<String>,
    /// λ of the G2D regulariser (0 = p-diff).
    #[arg(long, global = true)]
    pub lambda: Option<f32>,
    /// K, the number of checkpoints.
    #[arg(long, global = true)]
    pub checkpoints: Option<usize>,
    /// Optimizer steps of target training before collection.
    #[arg(long, global = true)]
    pub pretrain_steps: Option<usize>,
    #[arg(long, global = true)]
    pub ae_steps: Option<usize>,
    #[arg(long, global = true)]
    pub diffusion_steps: Option<usize>,
    /// N, the number of generated models to evaluate.
    #[arg(long, global = true)]
    pub count: Option<usize>,
    /// ddim or ddpm.
    #[arg(long, global = true)]
    pub sampler: Option<String>,
    /// DDIM steps.
    #[arg(long, global = true)]
    pub steps: Option<usize>,
    /// DDIM η.
    #[arg(long, global = true)]
    pub eta: Option<f64>,
    /// Guard tolerance δ (fraction): accept when val. accuracy ≥ original − δ.
    #[arg(long, global = true)]
    pub guard_delta: Option<f32>,
    /// Skip the λ = 0 (p-diff) comparison model in `pipeline`.
    #[arg(long, global = true)]
    pub no_baseline: bool,
    /// More λ values for `pipeline` to train and evaluate (comma-separated): the λ ablation.
    #[arg(long, global = true, value_delimiter = ',')]
    pub sweep: Option<Vec<f32>>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Stage 1: train the target and collect K checkpoints of the regenerated tensors.
    Collect,
    /// Stage 2: train the parameter autoencoder.
    TrainAe,
    /// Stage 3: train the latent diffusion model with the G2D loss (λ from --lambda).
    TrainDiffusion,
    /// Write the bundle for --lambda (browser and CLI).
    Export,
    /// Generate parameter sets from a bundle and pass them through the guard.
    Generate {
        /// Bundle file (default: RUN/g2d-lambda-Λ.g2d).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Write the generated vectors as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Generate N models from a bundle and evaluate them on this run's data.
    Evaluate {
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// All stages on the configured data; prints the evaluation table.
    Pipeline,
    /// Transfer of an L∞ attack crafted on θ_orig to checkpoints, generated models (λ = 0 and
    /// the run's λ) and retrained models.
    Attack {
        /// L∞ radius ε.
        #[arg(long, default_value_t = 0.1)]
        epsilon: f32,
        /// PGD steps (with random start and step ε/4); 0 means FGSM.
        #[arg(long, default_value_t = 40)]
        pgd_steps: usize,
        /// Test images attacked.
        #[arg(long, default_value_t = 500)]
        inputs: usize,
        /// Generated models (and checkpoints) per group.
        #[arg(long, default_value_t = 20)]
        models: usize,
    },
    /// A score-based black-box attack (SimBA) against θ_orig served statically or regenerated
    /// every N queries.
    QueryAttack {
        /// Per-pixel step ε of SimBA.
        #[arg(long, default_value_t = 0.2)]
        epsilon: f32,
        /// Queries allowed per image.
        #[arg(long, default_value_t = 1000)]
        budget: usize,
        /// Regeneration periods N to compare with the static model (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "100,10")]
        every: Vec<usize>,
        /// Test images attacked (ones θ_orig classifies correctly).
        #[arg(long, default_value_t = 100)]
        inputs: usize,
        /// Guard-accepted parameter sets the defender rotates through.
        #[arg(long, default_value_t = 20)]
        pool: usize,
    },
    /// Benchmarks: generation time per parameter set, CPU backends compared.
    Bench {
        /// Timed repetitions.
        #[arg(long, default_value_t = 20)]
        repeats: usize,
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
}

impl Overrides {
    fn apply(&self, c: &mut RunConfig) -> Result<()> {
        if let Some(v) = self.data {
            c.data.source = v;
        }
        if let Some(v) = &self.data_dir {
            c.data.dir = Some(v.clone());
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = &self.backend {
            c.backend = v.parse::<BackendKind>()?;
        }
        if let Some(v) = &self.arch {
            c.collect.arch = v.parse::<Arch>()?;
        }
        if let Some(v) = &self.scope {
            c.collect.scope = v.parse::<Scope>()?;
        }
        if let Some(v) = self.lambda {
            c.diffusion.lambda_l1 = v;
        }
        if let Some(v) = self.checkpoints {
            c.collect.checkpoints = v;
        }
        if let Some(v) = self.pretrain_steps {
            c.collect.pretrain_steps = v;
        }
        if let Some(v) = self.ae_steps {
            c.autoencoder.steps = v;
        }
        if let Some(v) = self.diffusion_steps {
            c.diffusion.steps = v;
        }
        if let Some(v) = self.count {
            c.generate.count = v;
        }
        if self.sampler.is_some() || self.steps.is_some() || self.eta.is_some() {
            let (kind, steps, eta) = match c.generate.sampler {
                SamplerConfig::Ddpm => ("ddpm", None, None),
                SamplerConfig::Ddim { steps, eta } => ("ddim", Some(steps), Some(eta)),
            };
            c.generate.sampler = SamplerConfig::parse(
                self.sampler.as_deref().unwrap_or(kind),
                self.steps.or(steps),
                self.eta.or(eta),
            )?;
        }
        if let Some(v) = self.guard_delta {
            c.generate.guard_delta = v;
        }
        if self.no_baseline {
            c.diffusion.baseline = false;
        }
        if let Some(v) = &self.sweep {
            c.diffusion.sweep = v.clone();
        }
        Ok(())
    }
}

/// Defaults ← RUN/config.json (or --config) ← flags.
fn load_config(cli: &Cli) -> Result<RunConfig> {
    let saved = cli.run.join("config.json");
    let mut config = match (&cli.config, saved.is_file()) {
        (Some(path), _) => RunConfig::from_file(path)?,
        (None, true) if !matches!(cli.command, Command::Pipeline | Command::Collect) => {
            RunConfig::from_file(&saved)?
        }
        _ => RunConfig::default(),
    };
    cli.overrides.apply(&mut config)?;
    config.validate()?;
    Ok(config)
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("json"));
}

fn say(json: bool, text: impl AsRef<str>) {
    if !json {
        eprintln!("{}", text.as_ref());
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let config = load_config(&cli)?;
    let device = native_device(config.backend)?;
    let run = Run::new(&cli.run, config, device)?;
    let lambda = run.config.diffusion.lambda_l1;
    let bundle_or_default =
        |b: &Option<PathBuf>| b.clone().unwrap_or_else(|| run.bundle_path(lambda));
    match &cli.command {
        Command::Collect => {
            let info = run.collect()?;
            if cli.json {
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
        }
        Command::TrainAe => {
            let info = run.train_ae()?;
            if cli.json {
                print_json(&serde_json::to_value(&info).expect("json"));
            } else {
                println!(
                    "autoencoder: latent {}×{}, reconstruction MSE {:.5} (standardised), latent clip {:.2}",
                    info.config.latent_channels,
                    info.config.latent_len(),
                    info.reconstruction_mse,
                    info.latent_clip
                );
            }
        }
        Command::TrainDiffusion => {
            let info = run.train_diffusion(lambda)?;
            if cli.json {
                print_json(&serde_json::to_value(&info).expect("json"));
            } else {
                println!(
                    "diffusion λ={lambda}: final ε-MSE {:.4}",
                    info.final_diffusion_loss
                );
            }
        }
        Command::Export => {
            let path = run.export(lambda, &run.splits()?)?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if cli.json {
                print_json(&json!({"bundle": path, "bytes": size}));
            } else {
                println!("wrote {} ({} bytes)", path.display(), size);
            }
        }
        Command::Generate { bundle, out } => {
            generate(&run, &bundle_or_default(bundle), out.as_deref(), cli.json)?
        }
        Command::Evaluate { bundle } => {
            let splits = run.splits()?;
            let e = run.evaluate(&bundle_or_default(bundle), &splits)?;
            report(cli.json, &[("G2D", &e)]);
        }
        Command::Pipeline => pipeline(&run, cli.json)?,
        Command::QueryAttack {
            epsilon,
            budget,
            every,
            inputs,
            pool,
        } => query_attack(&run, *epsilon, *budget, every, *inputs, *pool, cli.json)?,
        Command::Attack {
            epsilon,
            pgd_steps,
            inputs,
            models,
        } => {
            let attack = if *pgd_steps == 0 {
                crate::attacks::LinfAttack::fgsm(*epsilon)
            } else {
                crate::attacks::LinfAttack::pgd(*epsilon, *pgd_steps)
            };
            let report = super::transfer::transfer(&run, &run.splits()?, attack, *inputs, *models)?;
            if cli.json {
                print_json(&serde_json::to_value(&report).expect("json"));
            } else {
                println!("{}", super::transfer::table(&report));
            }
        }
        Command::Bench { repeats, bundle } => {
            super::bench::bench(&bundle_or_default(bundle), *repeats, cli.json)?
        }
    }
    Ok(())
}

fn generate(
    run: &Run,
    bundle_path: &std::path::Path,
    out: Option<&std::path::Path>,
    json: bool,
) -> Result<()> {
    let bundle = load_bundle(bundle_path)?;
    let model = G2dModel::from_bundle(&bundle, &run.device)?;
    let guard = Guard::new(&bundle.validation, bundle.meta.guard_delta, &run.device);
    let original = guard.accuracy(&model.original).into_scalar::<f32>();
    let count = run.config.generate.count;
    let thetas = generate_host(
        &model,
        count,
        &run.config.generate.sampler,
        G2dRng::from_entropy(),
    )?;
    let mut rows = Vec::new();
    for theta in &thetas {
        let acc = guard
            .accuracy(&model.with_theta(theta)?)
            .into_scalar::<f32>();
        rows.push(json!({
            "val_accuracy": acc,
            "accepted": guard.accepts(acc, original),
            "l1_to_original": l1_distance(theta, &model.theta_orig),
        }));
        say(
            json,
            format!(
                "val {:.2}% (original {:.2}%), {}, L1 to θ_orig {:.5}",
                acc * 100.0,
                original * 100.0,
                if guard.accepts(acc, original) {
                    "accepted"
                } else {
                    "rejected"
                },
                l1_distance(theta, &model.theta_orig)
            ),
        );
    }
    if let Some(out) = out {
        let text =
            serde_json::to_string(&json!({"manifest": bundle.meta.regenerated, "params": thetas}))
                .expect("json");
        std::fs::write(out, text).map_err(|e| G2dError::io(out, e))?;
    }
    if json {
        print_json(&json!({"original_val_accuracy": original, "candidates": rows}));
    }
    Ok(())
}

fn report(json: bool, rows: &[(&str, &Evaluation)]) {
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

fn pipeline(run: &Run, json: bool) -> Result<()> {
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
    let ae = run.train_ae()?;
    say(
        json,
        format!(
            "autoencoder: reconstruction MSE {:.5} (standardised)",
            ae.reconstruction_mse
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
    std::fs::write(&md, text).map_err(|e| G2dError::io(&md, e))?;
    if json {
        report(true, &rows);
    }
    Ok(())
}

fn query_attack(
    run: &Run,
    epsilon: f32,
    budget: usize,
    every: &[usize],
    inputs: usize,
    pool_size: usize,
    json: bool,
) -> Result<()> {
    use super::query_attack::{query_attack, Policy};
    let splits = run.splits()?;
    let bundle = load_bundle(&run.bundle_path(run.config.diffusion.lambda_l1))?;
    let model = G2dModel::from_bundle(&bundle, &run.device)?;
    let guard = Guard::new(
        &splits.validation,
        run.config.generate.guard_delta,
        &run.device,
    );
    let original = guard.accuracy(&model.original).into_scalar::<f32>();
    // The deployed model first, then the accepted regenerations the defender rotates through.
    let mut pool = vec![model.original.clone()];
    let accepted = generate_accepted(
        &model,
        &guard,
        original,
        pool_size,
        &run.config.generate.sampler,
        G2dRng::seeded(run.config.seed + 7),
    )?;
    pool.extend(accepted.into_iter().map(|(_, candidate)| candidate));
    let predictions = crate::generate::predict(&model.original, &splits.test, &run.device);
    let correct: Vec<usize> = (0..splits.test.len())
        .filter(|&i| predictions[i] == splits.test.labels[i])
        .take(inputs)
        .collect();
    let images = splits.test.select(&correct);
    let mut policies = vec![Policy::Static];
    policies.extend(every.iter().filter(|&&n| n > 0).map(|&n| Policy::EveryN(n)));
    let rows = query_attack(
        &pool,
        &images,
        &policies,
        epsilon,
        budget,
        run.config.seed + 8,
        &run.device,
    );
    if json {
        print_json(
            &json!({"epsilon": epsilon, "budget": budget, "pool": pool.len(), "rows": rows}),
        );
    } else {
        println!(
            "SimBA (pixel basis, ε = {epsilon}), budget {budget} queries, {} images θ_orig gets right; pool of {} models (θ_orig + {} accepted regenerations, λ = {}).\n",
            images.len(),
            pool.len(),
            pool.len() - 1,
            run.config.diffusion.lambda_l1
        );
        println!("| served model | success within budget (%) | median queries to success |\n|---|---|---|");
        for r in &rows {
            let policy = match r.policy {
                Policy::Static => "static θ_orig".to_string(),
                Policy::EveryN(n) => format!("regenerated every {n} queries"),
            };
            println!(
                "| {policy} | {:.1} | {} |",
                r.success_rate * 100.0,
                r.queries_to_success
                    .map_or("–".into(), |s| format!("{:.0}", s.median))
            );
        }
    }
    Ok(())
}
