//! The `g2d` command line: the arguments, and dispatch to one function per command
//! ([`commands`]); flags and the config file are merged in [`overrides`].

mod bench;
mod bench_train;
mod commands;
mod overrides;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use overrides::Overrides;

use crate::backend::native_device;
use crate::bundle::Precision;
use crate::defense::study::ThreatPlan;
use crate::error::Result;
use crate::params::Scope;
use crate::pipeline::run::Run;
use crate::report::{ReportPlan, TransferPlan};

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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Stage 1: train the target and collect K checkpoints of the regenerated tensors.
    Collect,
    /// Stage 2: train the parameter autoencoder.
    TrainAe,
    /// Stage 3: train the latent diffusion model with the G2D loss (λ from --lambda).
    TrainDiffusion,
    /// Write the bundle for --lambda (browser and CLI).
    Export {
        /// How what only generation reads (decoder, denoiser, parameter normalisation, run
        /// centres) is stored: f32 as trained, or f16, rounded to the nearest half (what
        /// generation then reads; θ_orig stays f32).
        #[arg(long, value_enum, default_value_t = Precision::F32)]
        precision: Precision,
        /// Write it here (default: RUN/g2d-lambda-Λ.g2d).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Generate parameter sets from a bundle and pass them through the guard.
    Generate {
        /// Bundle file (default: RUN/g2d-lambda-Λ.g2d).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Write the generated vectors as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write each accepted set, and θ_orig, as a complete PyTorch state_dict here
        /// (`regenerated-NNN.safetensors`, `original.safetensors`).
        #[arg(long)]
        out_safetensors: Option<PathBuf>,
        /// The same as NumPy archives (`.npz`, one array per state_dict key).
        #[arg(long)]
        out_npz: Option<PathBuf>,
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
    Attack(AttackArgs),
    /// A score-based black-box attack (SimBA) against θ_orig served statically or regenerated
    /// every N queries.
    QueryAttack(QueryAttackArgs),
    /// The ablations (λ, regenerated scope, K, noise factors) and attacks behind the README's
    /// figures: trains every variant under RUN (reusing finished ones), then writes
    /// report.json, report.md, SVG plots and index.html to --out.
    Report(ReportArgs),
    /// The threat model: white-box, T1 (leaked θ_orig), T2 (cross-session) and T3 (bundle
    /// holder, EOT) PGD success on G2D and every baseline, selected on validation images;
    /// writes threat-model.md, summary.json and pareto.svg to --out.
    Threat(ThreatArgs),
    /// Benchmarks: regeneration time per backend, sampler and batch (both CPU backends
    /// unless --backend names one; --backend wgpu needs a build with the `wgpu` feature).
    Bench {
        /// Timed repetitions (with --train: timed optimiser steps per stage).
        #[arg(long, value_parser = count(), default_value_t = 20)]
        repeats: usize,
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Time training instead: ms per optimiser step of the autoencoder and the diffusion
        /// model (λ = 0 and the run's λ) on the run's backend and configuration.
        #[arg(long)]
        train: bool,
    },
}

#[derive(Args, Debug)]
pub struct AttackArgs {
    /// L∞ radius ε, in (0, 1].
    #[arg(long, value_parser = radius, default_value_t = TransferPlan::default().attack.epsilon)]
    pub epsilon: f32,
    /// PGD steps (with random start and step ε/4), at most 1,000; 0 means FGSM.
    #[arg(long, value_parser = attack_steps(0), default_value_t = TransferPlan::default().attack.steps)]
    pub pgd_steps: usize,
    /// Test images attacked.
    #[arg(long, value_parser = count(), default_value_t = TransferPlan::default().inputs)]
    pub inputs: usize,
    /// Generated models (and checkpoints) per group.
    #[arg(long, value_parser = count(), default_value_t = TransferPlan::default().models)]
    pub models: usize,
    /// Targets retrained from other seeds.
    #[arg(long, value_parser = count(), default_value_t = TransferPlan::default().retrained)]
    pub retrained: usize,
}

#[derive(Args, Debug)]
pub struct QueryAttackArgs {
    /// Per-pixel step ε of SimBA, in (0, 1].
    #[arg(long, value_parser = radius, default_value_t = 0.2)]
    pub epsilon: f32,
    /// Queries allowed per image.
    #[arg(long, value_parser = count(), default_value_t = 1000)]
    pub budget: usize,
    /// Regeneration periods N to compare with the static model (comma-separated).
    #[arg(long, value_parser = count(), value_delimiter = ',', default_value = "100,10")]
    pub every: Vec<usize>,
    /// Also serve each attacked image (one attacker session) its own parameter set.
    #[arg(long)]
    pub per_session: bool,
    /// Also run the rotation-aware attacker (re-queries the current image beside each
    /// candidate).
    #[arg(long)]
    pub adaptive: bool,
    /// Test images attacked (ones θ_orig classifies correctly).
    #[arg(long, value_parser = count(), default_value_t = 300)]
    pub inputs: usize,
    /// Guard-accepted parameter sets the defender rotates through.
    #[arg(long, value_parser = count(), default_value_t = 20)]
    pub pool: usize,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Where the report goes (the demo links www/report/).
    #[arg(long, default_value = "www/report")]
    pub out: PathBuf,
    /// λ values of the ablation on the base configuration (finite, ≥ 0).
    #[arg(long, value_parser = weight, value_delimiter = ',', default_values_t = ReportPlan::default().lambdas)]
    pub lambdas: Vec<f32>,
    /// Regenerated scopes compared.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = ReportPlan::default().scopes)]
    pub scopes: Vec<Scope>,
    /// Values of K compared with the base's.
    #[arg(long, value_parser = count(), value_delimiter = ',', default_values_t = ReportPlan::default().checkpoint_counts)]
    pub k_values: Vec<usize>,
    /// Autoencoder noise factors compared, as INPUT:LATENT pairs.
    #[arg(long, value_delimiter = ',', default_values_t = ReportPlan::default_noise_args())]
    pub noise: Vec<String>,
    /// Test images attacked by PGD (ε = 0.1, 40 steps).
    #[arg(long, value_parser = count(), default_value_t = TransferPlan::default().inputs)]
    pub attack_inputs: usize,
    /// Generated models per group in the transfer table.
    #[arg(long, value_parser = count(), default_value_t = TransferPlan::default().models)]
    pub attack_models: usize,
    /// Targets retrained from other seeds for the transfer table.
    #[arg(long, value_parser = count(), default_value_t = TransferPlan::default().retrained)]
    pub retrained: usize,
    /// Images SimBA attacks.
    #[arg(long, value_parser = count(), default_value_t = ReportPlan::default().query.inputs)]
    pub query_inputs: usize,
    /// SimBA's query budget per image.
    #[arg(long, value_parser = count(), default_value_t = ReportPlan::default().query.budget)]
    pub query_budget: usize,
}

#[derive(Args, Debug)]
pub struct ThreatArgs {
    /// More run directories whose G2D configurations compete (each with its own config.json);
    /// the baselines that need no run of their own come from --run.
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<PathBuf>,
    /// Where the files go.
    #[arg(long, default_value = "www/report")]
    pub out: PathBuf,
    /// Re-render the files from this threat-model.json instead of measuring again (the
    /// recommendation is picked again by the selection rule of this build).
    #[arg(long)]
    pub render: Option<PathBuf>,
    /// L∞ radii in (0, 1] (comma-separated).
    #[arg(long, value_parser = radius, value_delimiter = ',', default_values_t = ThreatPlan::default().epsilons)]
    pub epsilons: Vec<f32>,
    /// PGD steps (random start, step ε/4), 1 to 1,000.
    #[arg(long, value_parser = attack_steps(1), default_value_t = ThreatPlan::default().pgd_steps)]
    pub pgd_steps: usize,
    /// Images attacked from each of the validation and test splits.
    #[arg(long, value_parser = count(), default_value_t = ThreatPlan::default().inputs)]
    pub inputs: usize,
    /// Models served per moving method.
    #[arg(long, value_parser = count(), default_value_t = ThreatPlan::default().sizes.targets)]
    pub models: usize,
    /// m, the models T3's attacker averages over.
    #[arg(long, value_parser = count(), default_value_t = ThreatPlan::default().sizes.eot_models)]
    pub eot_models: usize,
    /// Whole models retrained from other seeds.
    #[arg(long, value_parser = count(), default_value_t = ThreatPlan::default().sizes.retrained)]
    pub retrained: usize,
    /// Per adversarially trained run, whole models retrained adversarially from other seeds
    /// with that run's attack (each trains as long as its target: minutes).
    #[arg(long, default_value_t = ThreatPlan::default().sizes.robust_retrained)]
    pub robust_retrained: usize,
    /// Serve checkpoint rotation's checkpoints in a seeded random order, so that T2's pairs come
    /// from anywhere in the collection, as G2D's independent draws do (the default; `false`:
    /// trajectory order, where neighbours mostly share a run, as the arms before it measured).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub shuffle_rotation: bool,
}

/// Counts of 1 or more: no images, models or repetitions leaves nothing to measure.
fn count() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// Attack steps from `least` to 1,000, the bound [`crate::attacks::LinfAttack::validate`] sets.
fn attack_steps(least: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(least..=1000)
}

fn number(s: &str) -> std::result::Result<f32, String> {
    s.parse::<f32>()
        .map_err(|e| format!("{s:?} is not a number: {e}"))
}

/// An L∞ radius or pixel step: pixels lie in [0, 1], so a finite number in (0, 1].
fn radius(s: &str) -> std::result::Result<f32, String> {
    let v = number(s)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "must lie in (0, 1] (pixels lie in [0, 1]), got {s}"
        ))
    }
}

/// A loss weight such as λ: finite and ≥ 0.
fn weight(s: &str) -> std::result::Result<f32, String> {
    let v = number(s)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be finite and ≥ 0, got {s}"))
    }
}

/// Runs one command with the merged configuration.
pub fn run(cli: Cli) -> Result<()> {
    let config = overrides::load_config(&cli)?;
    let device = native_device(config.backend)?;
    let run = Run::new(&cli.run, config, device)?;
    let json = cli.json;
    let bundle_or_default = |b: &Option<PathBuf>| {
        b.clone()
            .unwrap_or_else(|| run.bundle_path(run.config.diffusion.lambda_l1))
    };
    match &cli.command {
        Command::Collect => commands::collect(&run, json),
        Command::TrainAe => commands::train_ae(&run, json),
        Command::TrainDiffusion => commands::train_diffusion(&run, json),
        Command::Export { precision, out } => {
            commands::export(&run, *precision, &bundle_or_default(out), json)
        }
        Command::Generate {
            bundle,
            out,
            out_safetensors,
            out_npz,
        } => commands::generate(
            &run,
            &bundle_or_default(bundle),
            commands::GenerateOutputs {
                vectors: out.as_deref(),
                safetensors: out_safetensors.as_deref(),
                npz: out_npz.as_deref(),
            },
            json,
        ),
        Command::Evaluate { bundle } => commands::evaluate(&run, &bundle_or_default(bundle), json),
        Command::Pipeline => commands::pipeline(&run, json),
        Command::Attack(args) => commands::attack(&run, args, json),
        Command::QueryAttack(args) => commands::query_attack(&run, args, json),
        Command::Report(args) => commands::report(&run, args, json),
        Command::Threat(args) => commands::threat(&run, args, json),
        Command::Bench {
            repeats,
            bundle,
            train: true,
        } => bench_train::bench_train(&run, &bundle_or_default(bundle), *repeats, json),
        Command::Bench {
            repeats, bundle, ..
        } => {
            let named = cli.overrides.backend.map(|kind| (kind, run.device.clone()));
            bench::bench(&bundle_or_default(bundle), named, *repeats, json)
        }
    }
}
