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
use crate::generate::{generate_host, G2dModel, Guard};
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
        /// Also serve each attacked image (one attacker session) its own parameter set.
        #[arg(long)]
        per_session: bool,
        /// Also run the rotation-aware attacker (re-queries the current image beside each
        /// candidate).
        #[arg(long)]
        adaptive: bool,
        /// Test images attacked (ones θ_orig classifies correctly).
        #[arg(long, default_value_t = 300)]
        inputs: usize,
        /// Guard-accepted parameter sets the defender rotates through.
        #[arg(long, default_value_t = 20)]
        pool: usize,
    },
    /// The ablations (λ, regenerated scope, K, noise factors) and attacks behind the README's
    /// figures: trains every variant under RUN (reusing finished ones), then writes
    /// report.json, report.md, SVG plots and index.html to --out.
    Report {
        /// Where the report goes (the demo links www/report/).
        #[arg(long, default_value = "www/report")]
        out: PathBuf,
        /// λ values of the ablation on the base configuration.
        #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,6")]
        lambdas: Vec<f32>,
        /// Regenerated scopes compared (last, last-two, all).
        #[arg(long, value_delimiter = ',', default_value = "last,last-two,all")]
        scopes: Vec<String>,
        /// Values of K compared with the base's.
        #[arg(long, value_delimiter = ',', default_value = "50,100")]
        k_values: Vec<usize>,
        /// Autoencoder noise factors compared, as INPUT:LATENT pairs.
        #[arg(long, value_delimiter = ',', default_value = "0:0,0.01:0.5")]
        noise: Vec<String>,
        /// Test images attacked by PGD (ε = 0.1, 40 steps).
        #[arg(long, default_value_t = 500)]
        attack_inputs: usize,
        /// Generated models per group in the transfer table.
        #[arg(long, default_value_t = 20)]
        attack_models: usize,
        /// Targets retrained from other seeds for the transfer table.
        #[arg(long, default_value_t = 3)]
        retrained: usize,
        /// Images SimBA attacks.
        #[arg(long, default_value_t = 300)]
        query_inputs: usize,
        /// SimBA's query budget per image.
        #[arg(long, default_value_t = 1000)]
        query_budget: usize,
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

/// `INPUT:LATENT` noise factors.
fn parse_noise(s: &str) -> Result<(f32, f32)> {
    let bad = || G2dError::config("--noise", format!("expected INPUT:LATENT, got {s:?}"));
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
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
            per_session,
            adaptive,
            inputs,
            pool,
        } => {
            let plan = super::query_attack::QueryAttackPlan {
                epsilon: *epsilon,
                budget: *budget,
                every: every.clone(),
                per_session: *per_session,
                adaptive: *adaptive,
                inputs: *inputs,
                pool: *pool,
            };
            query_attack(&run, &plan, cli.json)?
        }
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
            let report = super::transfer::transfer(
                &run,
                &run.splits()?,
                attack,
                *inputs,
                *models,
                &super::report::compared_lambdas(lambda),
                3,
            )?;
            if cli.json {
                print_json(&serde_json::to_value(&report).expect("json"));
            } else {
                println!("{}", super::transfer::table(&report));
            }
        }
        Command::Report {
            out,
            lambdas,
            scopes,
            k_values,
            noise,
            attack_inputs,
            attack_models,
            retrained,
            query_inputs,
            query_budget,
        } => {
            let mut plan = super::report::ReportPlan {
                lambdas: lambdas.clone(),
                scopes: scopes
                    .iter()
                    .map(|s| s.parse::<Scope>())
                    .collect::<Result<_>>()?,
                checkpoint_counts: k_values.clone(),
                noise_factors: noise
                    .iter()
                    .map(|s| parse_noise(s))
                    .collect::<Result<_>>()?,
                ..Default::default()
            };
            plan.transfer.inputs = *attack_inputs;
            plan.transfer.models = *attack_models;
            plan.transfer.retrained = *retrained;
            plan.query.inputs = *query_inputs;
            plan.query.budget = *query_budget;
            let command = format!(
                "g2d {}",
                std::env::args().skip(1).collect::<Vec<_>>().join(" ")
            );
            let report = super::report::build(&run.dir, &run.config, &plan, &run.device, command)?;
            let written = super::report::write(&report, out)?;
            if cli.json {
                print_json(&serde_json::to_value(&report).expect("json"));
            } else {
                println!("{}", super::report::headline(&report));
                println!("{}", super::report::targets(&report));
                for path in written {
                    println!("wrote {}", path.display());
                }
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

fn query_attack(run: &Run, plan: &super::query_attack::QueryAttackPlan, json: bool) -> Result<()> {
    let lambda = run.config.diffusion.lambda_l1;
    let report = super::query_attack::attack_run(run, &run.splits()?, lambda, plan)?;
    if json {
        print_json(&serde_json::to_value(&report).expect("json"));
    } else {
        println!("{}", super::query_attack::table(&report));
    }
    Ok(())
}
