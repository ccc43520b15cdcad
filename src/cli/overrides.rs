//! Settings from the command line: flags override the run's config file, which overrides the
//! defaults.

use std::path::PathBuf;

use clap::Args;

use super::{Cli, Command};
use crate::attacks::LinfAttack;
use crate::backend::BackendKind;
use crate::classifier::{Arch, LayerSpec};
use crate::diffusion::sampler::SamplerConfig;
use crate::error::{G2dError, Result};
use crate::params::Scope;
use crate::pipeline::config::{CollectVulnerability, RunConfig};
use crate::pipeline::sources::DataSource;

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
    /// Backend the stages run on.
    #[arg(long, global = true, value_enum)]
    pub backend: Option<BackendKind>,
    /// The protected classifier: mlp, cnn (G2D's own), or a JSON file listing a CNN's layers
    /// (`{"layers": [{"type": "conv2d", "out_channels": 6, "kernel_size": 5}, …]}`).
    #[arg(long, global = true)]
    pub arch: Option<String>,
    /// The MLP's hidden widths, comma-separated (default 64,32).
    #[arg(long, global = true, value_delimiter = ',', num_args = 1)]
    pub hidden: Option<Vec<usize>>,
    /// Regenerated tensors (default: all).
    #[arg(long, global = true, value_enum)]
    pub scope: Option<Scope>,
    /// λ of the G2D regulariser (default 0.05; 0 = p-diff).
    #[arg(long, global = true)]
    pub lambda: Option<f32>,
    /// K, the number of checkpoints.
    #[arg(long, global = true)]
    pub checkpoints: Option<usize>,
    /// Optimizer steps of target training before collection (default 12,000).
    #[arg(long, global = true)]
    pub pretrain_steps: Option<usize>,
    #[arg(long, global = true)]
    pub ae_steps: Option<usize>,
    #[arg(long, global = true)]
    pub diffusion_steps: Option<usize>,
    /// N, the number of generated models to evaluate.
    #[arg(long, global = true)]
    pub count: Option<usize>,
    /// ddim, dpm-solver++ or ddpm.
    #[arg(long, global = true)]
    pub sampler: Option<String>,
    /// DDIM or DPM-Solver++ steps.
    #[arg(long, global = true)]
    pub steps: Option<usize>,
    /// DDIM η.
    #[arg(long, global = true)]
    pub eta: Option<f64>,
    /// Guard tolerance δ (fraction): accept when val. accuracy ≥ original − δ.
    #[arg(long, global = true)]
    pub guard_delta: Option<f32>,
    /// μ_task, the task cross-entropy term of the diffusion loss (MLP).
    #[arg(long, global = true)]
    pub task_weight: Option<f32>,
    /// μ_vuln, the vulnerability cross-entropy term of the diffusion loss (MLP).
    #[arg(long, global = true)]
    pub vulnerability_weight: Option<f32>,
    /// μ_cross, the diffusion loss's term that scores each generated set on the FGSM examples
    /// of another (MLP).
    #[arg(long, global = true)]
    pub cross_weight: Option<f32>,
    /// Start the target from this PyTorch state_dict (safetensors) instead of training it.
    #[arg(long, global = true)]
    pub init: Option<PathBuf>,
    /// Adversarial training during collection with PGD-7 at this ε: a robust target and robust
    /// checkpoints (default 0.1; 0 turns it off, as p-diff collects).
    #[arg(long, global = true)]
    pub adversarial_collect: Option<f32>,
    /// Collect checkpoints away from θ_orig: + this weight × cross-entropy on PGD-10
    /// (ε = 0.1) examples crafted on θ_orig, after 500 warm-up steps (default 0.3; 0 turns it
    /// off, as p-diff collects).
    #[arg(long, global = true)]
    pub collect_vulnerability: Option<f32>,
    /// Runs the K checkpoints are spread over (default 4; with --collect-vulnerability:
    /// trained side by side, each away from the others).
    #[arg(long, global = true)]
    pub seeds: Option<usize>,
    /// With --collect-vulnerability and --seeds: every run starts from the trained target
    /// (the default with --init) instead of its own initialisation (the default otherwise;
    /// `--seeds-from-target false`).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub seeds_from_target: Option<bool>,
    /// With --seeds and runs from fresh initialisations: permute each run's hidden units to
    /// match the target's before collecting (weight matching; the whole MLP only).
    #[arg(long, global = true)]
    pub align_runs: bool,
    /// With --seeds > 1: centre each run's checkpoints on its mean before the autoencoder;
    /// every generated set adds one run's mean, drawn at random (the default, but not with
    /// --init; `--centre-runs false` turns it off).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub centre_runs: Option<bool>,
    /// Skip the λ = 0 (p-diff) comparison model in `pipeline`.
    #[arg(long, global = true)]
    pub no_baseline: bool,
    /// More λ values for `pipeline` to train and evaluate (comma-separated): the λ ablation.
    #[arg(long, global = true, value_delimiter = ',')]
    pub sweep: Option<Vec<f32>>,
}

impl Overrides {
    /// `current` with --sampler, --steps and --eta laid over it.
    fn sampler(&self, current: SamplerConfig) -> Result<SamplerConfig> {
        if self.sampler.is_none() && self.steps.is_none() && self.eta.is_none() {
            return Ok(current);
        }
        let (kind, steps, eta) = match current {
            SamplerConfig::Ddpm => ("ddpm", None, None),
            SamplerConfig::Ddim { steps, eta } => ("ddim", Some(steps), Some(eta)),
            SamplerConfig::DpmSolver { steps } => ("dpm-solver++", Some(steps), None),
        };
        SamplerConfig::parse(
            self.sampler.as_deref().unwrap_or(kind),
            self.steps.or(steps),
            self.eta.or(eta),
        )
    }

    pub fn apply(&self, c: &mut RunConfig) -> Result<()> {
        if let Some(v) = self.data {
            c.data.source = v;
        }
        if let Some(v) = &self.data_dir {
            c.data.dir = Some(v.clone());
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = self.backend {
            c.backend = v;
        }
        if let Some(v) = &self.arch {
            (c.collect.arch, c.collect.layers) = parse_arch(v)?;
            if c.collect.arch != Arch::Mlp {
                // The function-space terms need the MLP: a CNN keeps only those asked for.
                c.diffusion.default_terms_off(|field| match field {
                    "task_weight" => self.task_weight.is_some(),
                    "vulnerability_weight" => self.vulnerability_weight.is_some(),
                    _ => self.cross_weight.is_some(),
                });
            }
        }
        if let Some(v) = self.scope {
            c.collect.scope = v;
        }
        if let Some(v) = &self.hidden {
            c.collect.hidden = v.clone();
        }
        // A model imported here (not the one a run or config file already names): its runs are
        // set once every other flag is, below.
        let imported = (self.init.as_ref()).is_some_and(|v| c.collect.init.as_ref() != Some(v));
        if let Some(v) = &self.init {
            c.collect.init = Some(v.clone());
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
        c.generate.sampler = self.sampler(c.generate.sampler)?;
        if let Some(v) = self.guard_delta {
            c.generate.guard_delta = v;
        }
        if let Some(v) = self.task_weight {
            c.diffusion.task_weight = v;
        }
        if let Some(v) = self.vulnerability_weight {
            c.diffusion.vulnerability_weight = v;
        }
        if let Some(v) = self.cross_weight {
            c.diffusion.cross_weight = v;
        }
        match self.adversarial_collect {
            Some(0.0) => c.collect.adversarial = None,
            Some(eps) => c.collect.adversarial = Some(LinfAttack::pgd(eps, 7)),
            None => {}
        }
        if let Some(v) = self.seeds {
            c.collect.seeds = v;
        }
        // The weight alone: the attack, the warm-up and the runs' start stay as configured.
        match self.collect_vulnerability {
            Some(0.0) => c.collect.vulnerability = None,
            Some(w) => {
                c.collect
                    .vulnerability
                    .get_or_insert_with(|| CollectVulnerability::new(w))
                    .weight = w
            }
            None => {}
        }
        if let (Some(v), Some(from_target)) = (&mut c.collect.vulnerability, self.seeds_from_target)
        {
            v.from_target = from_target;
        }
        if let Some(v) = self.centre_runs {
            c.autoencoder.centre_runs = v;
        }
        if imported {
            c.imported_runs(self.seeds_from_target.is_some(), self.centre_runs.is_some());
        }
        if self.align_runs {
            c.collect.align_runs = true;
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
pub fn load_config(cli: &Cli) -> Result<RunConfig> {
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

/// `--arch`: `mlp`, `cnn`, or an architecture file holding a CNN's `layers`.
pub fn parse_arch(value: &str) -> Result<(Arch, Option<Vec<LayerSpec>>)> {
    if let Ok(arch) = value.parse::<Arch>() {
        return Ok((arch, None));
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ArchFile {
        layers: Vec<LayerSpec>,
    }
    let path = std::path::Path::new(value);
    if !path.is_file() {
        return Err(G2dError::config(
            "--arch",
            format!("expected mlp, cnn or an architecture file, got {value:?} (no such file)"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| G2dError::io(path, e))?;
    let file: ArchFile = serde_json::from_str(&text).map_err(|source| G2dError::Json {
        what: path.display().to_string(),
        source,
    })?;
    Ok((Arch::Cnn, Some(file.layers)))
}

/// `INPUT:LATENT` noise factors.
pub fn parse_noise(s: &str) -> Result<(f32, f32)> {
    let bad = || G2dError::config("--noise", format!("expected INPUT:LATENT, got {s:?}"));
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(flags: &[&str]) -> RunConfig {
        let args = ["g2d", "pipeline"].iter().chain(flags);
        load_config(&Cli::try_parse_from(args).unwrap()).unwrap()
    }

    #[test]
    fn a_cnn_trains_without_the_default_function_terms_and_keeps_those_asked_for() {
        let mlp = config(&[]);
        assert_eq!(
            (mlp.diffusion.task_weight, mlp.diffusion.cross_weight),
            (1.0, 10.0)
        );
        let cnn = config(&["--arch", "cnn"]);
        assert!(!cnn.diffusion.function_terms());
        let args = ["g2d", "pipeline", "--arch", "cnn", "--cross-weight", "3"];
        let err = load_config(&Cli::try_parse_from(args).unwrap()).unwrap_err();
        assert!(err.to_string().contains("need the MLP"), "{err}");
    }

    #[test]
    fn the_vulnerability_weight_leaves_where_the_runs_start() {
        let default = config(&[]);
        let v = default.collect.vulnerability.as_ref().unwrap();
        assert_eq!((v.weight, v.from_target), (0.3, false));
        assert_eq!(default.collect.seeds, 4);

        let weight = config(&["--collect-vulnerability", "1"]);
        let v = weight.collect.vulnerability.as_ref().unwrap();
        assert_eq!((v.weight, v.from_target), (1.0, false));

        for (flags, from_target) in [
            (&["--seeds-from-target", "false"][..], false),
            (&["--seeds-from-target"][..], true),
        ] {
            let c = config(flags);
            assert_eq!(c.collect.vulnerability.unwrap().from_target, from_target);
        }
        assert_eq!(
            config(&["--collect-vulnerability", "0"])
                .collect
                .vulnerability,
            None
        );
    }

    #[test]
    fn runs_are_centred_unless_told_and_an_imported_models_runs_descend_from_it() {
        let runs = |c: RunConfig| {
            let from_target = c.collect.vulnerability.as_ref().unwrap().from_target;
            (from_target, c.autoencoder.centre_runs)
        };
        assert_eq!(runs(config(&[])), (false, true));
        assert_eq!(runs(config(&["--centre-runs", "false"])), (false, false));
        assert_eq!(
            runs(config(&["--init", "model.safetensors"])),
            (true, false)
        );
        // Runs trained apart from an imported model are centred, as the default's are.
        let apart = [
            "--init",
            "model.safetensors",
            "--seeds-from-target",
            "false",
        ];
        assert_eq!(runs(config(&apart)), (false, true));
        // The vulnerability weight leaves where an imported model's runs start.
        let weight = [
            "--init",
            "model.safetensors",
            "--collect-vulnerability",
            "1",
        ];
        assert_eq!(runs(config(&weight)), (true, false));
        let flags = [
            "--init",
            "model.safetensors",
            "--seeds-from-target",
            "false",
            "--centre-runs",
        ];
        assert_eq!(runs(config(&flags)), (false, true));
    }

    #[test]
    fn collection_is_adversarial_at_0_1_after_12000_target_steps_unless_told() {
        let epsilon = |c: RunConfig| c.collect.adversarial.map(|a| (a.epsilon, a.steps));
        assert_eq!(epsilon(config(&[])), Some((0.1, 7)));
        assert_eq!(
            epsilon(config(&["--adversarial-collect", "0.07"])),
            Some((0.07, 7))
        );
        assert_eq!(config(&[]).collect.pretrain_steps, 12_000);
        assert_eq!(RunConfig::base().collect.pretrain_steps, 2000);
        assert_eq!(epsilon(config(&["--adversarial-collect", "0"])), None);
        assert_eq!(RunConfig::base().collect.adversarial, None);
    }
}
