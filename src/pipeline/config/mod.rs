//! The run configuration: every knob of every stage, saved beside the artifacts it produced.
//! A JSON file (`--config`) sets any subset; command-line flags override it. The networks,
//! the noise schedule and the optimizers are burn Configs nested in their stage, so each
//! default lives in one place; [`file`] says how they read and write.

mod file;
mod validate;

use burn::optim::AdamWConfig;
use serde::{Deserialize, Serialize};

use super::sources::DataSource;
use crate::attacks::LinfAttack;
use crate::autoencoder::{auto_fold, AutoencoderConfig};
use crate::backend::BackendKind;
use crate::classifier::{Arch, ClassifierConfig};
use crate::diffusion::denoiser::DenoiserConfig;
use crate::diffusion::sampler::SamplerConfig;
use crate::diffusion::schedule::ScheduleConfig;
use crate::error::{G2dError, Result};
use crate::params::Scope;

/// Serialised through [`file`]: the `remote = "Self"` derive gives the plain field-by-field
/// (de)serialiser that the migration and the overlay of defaults wrap.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct RunConfig {
    pub seed: u64,
    pub backend: BackendKind,
    pub data: DataConfig,
    pub collect: CollectConfig,
    pub autoencoder: AutoencoderTraining,
    pub diffusion: DiffusionTraining,
    pub generate: GenerateConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    pub dir: Option<std::path::PathBuf>,
    /// Training images carved off for validation (default: 1,000 embedded, 5,000 full MNIST
    /// and Fashion-MNIST, a tenth of an `.npz`'s).
    pub validation_size: Option<usize>,
    /// Validation images shipped in the bundle for the browser's guard.
    pub bundle_validation_size: usize,
}

/// Stage 1: train the target, then keep training only the regenerated tensors and save K
/// checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    pub arch: Arch,
    /// The MLP's hidden widths (pixels → these → classes).
    pub hidden: Vec<usize>,
    /// The CNN's layers (an `--arch FILE`); null: G2D's own CNN.
    pub layers: Option<Vec<crate::classifier::LayerSpec>>,
    pub scope: Scope,
    /// A PyTorch state_dict (safetensors) the target starts from: imported instead of trained
    /// for `pretrain_steps` (see [`crate::torch`]). Absent: trained from a fresh initialisation.
    pub init: Option<std::path::PathBuf>,
    /// Optimizer steps of full training before collection starts: 12,000 (28 epochs of full
    /// MNIST's 55,000 training images at batch 128), where the clean target's validation
    /// accuracy stops rising (`.ci/target-steps`; 2,000 in the studies before the threat model's
    /// report).
    pub pretrain_steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// K, the number of checkpoints.
    pub checkpoints: usize,
    /// Optimizer steps between two checkpoints.
    pub save_every: usize,
    /// Learning rate while only the regenerated tensors train.
    pub collect_lr: f64,
    /// Runs the K checkpoints are spread over; run s > 0 re-initialises the regenerated
    /// tensors from seed + s and trains them for `pretrain_steps` before collecting (the fixed
    /// tensors stay shared). With `vulnerability` the runs train side by side, each also away
    /// from the other runs' current weights.
    pub seeds: usize,
    /// Adversarial training throughout stage 1 (the target and every checkpoint): half of each
    /// batch's loss on examples this attack crafts against the current weights, so the
    /// generator learns from robust checkpoints. By default PGD-7 at ε = 0.1: with the
    /// target trained 12,000 steps, the vulnerability term and the cross term, the
    /// configuration the threat study's rule picks on validation data (trained-robust-0.1, and
    /// with independent centred runs trained-robust-0.1-independent-centred; README, "Threat
    /// model"). `null`: clean training, as p-diff collects.
    pub adversarial: Option<LinfAttack>,
    /// Checkpoints collected away from θ_orig's weaknesses (see [`CollectVulnerability`]). On
    /// by default at weight 0.3 over 4 runs, 3 of them trained from their own initialisations
    /// and each centred on its mean before the autoencoder ([`AutoencoderTraining::centre_runs`]),
    /// with λ = 0.05: trained-robust-0.1-independent-centred, the configuration the threat
    /// study's rule picks on validation data (README, "Threat model"). `null`: the trajectory
    /// trains on clean images and ends on θ_orig, as p-diff's does.
    pub vulnerability: Option<CollectVulnerability>,
    /// AdamW for the target and the checkpoints (no weight decay by default).
    pub optimizer: AdamWConfig,
    /// Runs trained from their own initialisation (`seeds` > 1, not from the target) have
    /// their hidden units permuted to match the target's before collecting (weight matching,
    /// [`crate::pipeline::collect`]): the same functions, in one unit order the autoencoder can
    /// learn. The whole MLP only.
    pub align_runs: bool,
}

/// The vulnerability term in collection: θ_orig is the trained target, and every checkpoint's
/// trajectory adds `weight` × the cross-entropy on examples `attack` crafts against θ_orig to
/// each batch's clean loss, so the generator learns parameter sets that what fools θ_orig does
/// not fool (the idea of ensemble adversarial training). θ_orig itself is then not a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectVulnerability {
    pub weight: f32,
    pub attack: LinfAttack,
    /// Steps each trajectory trains away from θ_orig before its first checkpoint.
    pub warmup_steps: usize,
    /// With several runs (`collect.seeds`): every run starts from the trained target instead
    /// of a fresh initialisation, so the runs keep θ_orig's order of hidden units and differ
    /// only by what they learn to resist (the default before run centres; the default with
    /// `collect.init`, whose runs descend from the imported model).
    #[serde(default)]
    pub from_target: bool,
}

impl CollectVulnerability {
    /// `weight` with PGD-10 at ε = 0.1 and 500 warm-up steps.
    pub fn new(weight: f32) -> Self {
        Self {
            weight,
            attack: LinfAttack::pgd(0.1, 10),
            warmup_steps: 500,
            from_target: false,
        }
    }
}

/// Stage 2: the parameter autoencoder.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoencoderTraining {
    /// The network: its stages, latent channels and noise factors (θ's length and the fold
    /// are set by [`AutoencoderTraining::model`]).
    #[serde(
        serialize_with = "file::write_shape",
        deserialize_with = "file::read_shape"
    )]
    pub network: AutoencoderConfig,
    /// Parameters folded side by side into channels; absent: chosen from θ's length
    /// ([`crate::autoencoder::auto_fold`]) so a whole network costs about what two layers do.
    pub fold: Option<usize>,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// AdamW for the encoder and the decoder alike.
    pub optimizer: AdamWConfig,
    /// With `collect.seeds` > 1 runs (the default; one run has nothing to centre): each
    /// checkpoint is taken relative to its run's mean before standardising, the bundle keeps the
    /// runs' means, and each generated set adds one of them drawn at random. The autoencoder and
    /// the diffusion model then learn the spread within a run, and the runs' distinct solutions
    /// are kept whole (one autoencoder over the flattened vectors does not span them:
    /// `mnist-aligned`). Training scores each x̂₀ with its own run's mean while generation draws
    /// the mean independently of the sample: this assumes the centred spread looks alike in
    /// every run (measured: every sampled set passes the guard).
    pub centre_runs: bool,
}

/// Stage 3: the latent diffusion model with the G2D regulariser.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffusionTraining {
    /// λ in `L = L_diffusion − λ·L1(D(x̂₀), θ_orig)`; 0 is p-diff.
    pub lambda_l1: f32,
    /// Also train a λ = 0 model from the same seed, for the comparison table.
    pub baseline: bool,
    /// More λ values `pipeline` trains and evaluates on the same checkpoints and autoencoder
    /// (the λ ablation).
    pub sweep: Vec<f32>,
    /// The denoiser (its latent channels are the autoencoder's, set by
    /// [`DiffusionTraining::denoiser`]).
    #[serde(
        serialize_with = "file::write_shape",
        deserialize_with = "file::read_shape"
    )]
    pub denoiser: DenoiserConfig,
    pub schedule: ScheduleConfig,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// AdamW for the denoiser (no weight decay by default).
    pub optimizer: AdamWConfig,
    pub ema_decay: f64,
    /// μ_task: weight of the cross-entropy of the decoded parameters on clean training images
    /// (0: off; MLP only).
    pub task_weight: f32,
    /// μ_vuln: weight of their cross-entropy on adversarial examples crafted on θ_orig and the
    /// checkpoints (0: off; MLP only).
    pub vulnerability_weight: f32,
    /// μ_cross: weight of each decoded set's cross-entropy on the examples crafted on its
    /// neighbour in the batch (0: off; MLP only).
    pub cross_weight: f32,
    /// The L∞ attack that crafts the cross term's examples from the clean images: FGSM at
    /// ε = 0.1 by default; more steps make it PGD (never from a random start).
    pub cross_attack: LinfAttack,
    /// Images per step for each function-space term.
    pub function_batch: usize,
    /// Adversarial examples in the vulnerability bank (training images).
    pub vulnerability_bank: usize,
    /// The attack that crafts the bank.
    pub vulnerability_attack: LinfAttack,
}

/// Stage 4: generation, guard and evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// N, the number of parameter sets generated for evaluation.
    pub count: usize,
    pub sampler: SamplerConfig,
    /// Guard: accept when validation accuracy ≥ original − delta (a fraction).
    pub guard_delta: f32,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            backend: BackendKind::Cpu,
            data: DataConfig::default(),
            collect: CollectConfig::default(),
            autoencoder: AutoencoderTraining::default(),
            diffusion: DiffusionTraining::default(),
            generate: GenerateConfig::default(),
        }
    }
}

impl RunConfig {
    /// The threat study's `base`, the default before it: p-diff's collection (one run of clean
    /// trajectories ending on θ_orig), the last two layers regenerated, λ = 3, no
    /// function-space terms, the target trained 2,000 steps. On the command line: `--scope
    /// last-two --collect-vulnerability 0 --adversarial-collect 0 --seeds 1 --lambda 3
    /// --task-weight 0 --cross-weight 0 --pretrain-steps 2000`.
    pub fn base() -> Self {
        let mut c = Self::default();
        c.collect.pretrain_steps = 2000;
        c.collect.scope = Scope::LastTwo;
        c.collect.seeds = 1;
        c.collect.adversarial = None;
        c.collect.vulnerability = None;
        c.autoencoder.centre_runs = false;
        c.diffusion.lambda_l1 = 3.0;
        c.diffusion.task_weight = 0.0;
        c.diffusion.cross_weight = 0.0;
        c
    }

    /// The runs of an imported model (`collect.init`): they start from it, and are centred only
    /// where they train apart, except for what was given (`from_target_named`: where they
    /// start; `centre_named`: whether they are centred). New models of its architecture trained
    /// by G2D's own recipe, the default's other runs, are not descendants of the model a user
    /// brought.
    pub fn imported_runs(&mut self, from_target_named: bool, centre_named: bool) {
        if !from_target_named {
            if let Some(v) = &mut self.collect.vulnerability {
                v.from_target = true;
            }
        }
        if !centre_named {
            // Without the vulnerability term, runs after the first re-initialise regardless.
            let from_target = (self.collect.vulnerability.as_ref()).is_some_and(|v| v.from_target);
            self.autoencoder.centre_runs = !from_target;
        }
    }

    /// Whether the autoencoder centres each run on its mean: `autoencoder.centre_runs` with
    /// more than one run.
    pub fn centres_runs(&self) -> bool {
        self.autoencoder.centre_runs && self.collect.seeds > 1
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: DataSource::Embedded,
            dir: None,
            validation_size: None,
            bundle_validation_size: 500,
        }
    }
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            arch: Arch::Mlp,
            hidden: crate::classifier::default_hidden(),
            layers: None,
            scope: Scope::All,
            init: None,
            pretrain_steps: 12_000,
            batch_size: 128,
            lr: 1e-3,
            checkpoints: 200,
            save_every: 10,
            collect_lr: 3e-4,
            seeds: 4,
            adversarial: Some(LinfAttack::pgd(0.1, 7)),
            vulnerability: Some(CollectVulnerability::new(0.3)),
            optimizer: AdamWConfig::new().with_weight_decay(0.0),
            align_runs: false,
        }
    }
}

impl Default for AutoencoderTraining {
    fn default() -> Self {
        Self {
            network: AutoencoderConfig::new(0).with_fold(0),
            fold: None,
            steps: 1000,
            batch_size: 50,
            lr: 1e-3,
            optimizer: AdamWConfig::new().with_weight_decay(2e-6),
            centre_runs: true,
        }
    }
}

impl Default for DiffusionTraining {
    fn default() -> Self {
        Self {
            lambda_l1: 0.05,
            baseline: true,
            sweep: Vec::new(),
            denoiser: DenoiserConfig::new(0),
            schedule: ScheduleConfig::new(),
            steps: 1000,
            batch_size: 50,
            lr: 1e-3,
            optimizer: AdamWConfig::new().with_weight_decay(0.0),
            ema_decay: 0.995,
            task_weight: 1.0,
            vulnerability_weight: 0.0,
            cross_weight: 10.0,
            cross_attack: LinfAttack::fgsm(0.1),
            function_batch: 64,
            vulnerability_bank: 2048,
            vulnerability_attack: LinfAttack::pgd(0.1, 10),
        }
    }
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            count: 100,
            sampler: SamplerConfig::default(),
            guard_delta: 0.01,
        }
    }
}

impl CollectConfig {
    /// How many of the K checkpoints each run holds: they come run by run, this many at a time
    /// (the last run may hold fewer).
    pub fn per_run(&self) -> usize {
        self.checkpoints.div_ceil(self.seeds.max(1))
    }

    /// The classifier these settings build for `data`'s images and classes.
    pub fn classifier(&self, data: &crate::data::Splits) -> ClassifierConfig {
        self.network()
            .with_data(data.image(), data.classes())
            .with_channels(data.channels())
    }

    /// The same for MNIST's images and classes: what the settings can be checked on before
    /// any data is read.
    pub fn network(&self) -> ClassifierConfig {
        ClassifierConfig {
            hidden: self.hidden.clone(),
            layers: self.layers.clone(),
            ..ClassifierConfig::new(self.arch)
        }
    }
}

impl AutoencoderTraining {
    /// The autoencoder these settings build for a parameter vector of `param_len`.
    pub fn model(&self, param_len: usize) -> AutoencoderConfig {
        let fold = self.fold.unwrap_or_else(|| auto_fold(param_len));
        AutoencoderConfig {
            param_len,
            fold,
            ..self.network.clone()
        }
    }
}

impl DiffusionTraining {
    /// Whether the function-space terms have a weight.
    pub fn function_terms(&self) -> bool {
        self.task_weight != 0.0 || self.vulnerability_weight != 0.0 || self.cross_weight != 0.0
    }

    /// Whether the function-space terms take part in the model trained at `lambda`: not in
    /// the λ = 0 model trained beside another λ, which is p-diff's baseline, exactly.
    pub fn function_terms_at(&self, lambda: f32) -> bool {
        self.function_terms() && (lambda != 0.0 || self.lambda_l1 == 0.0)
    }

    /// Turns off the function-space terms `named` does not name: they need the MLP, so a CNN
    /// trains without the default ones (and is refused the ones asked for).
    pub fn default_terms_off(&mut self, named: impl Fn(&str) -> bool) {
        for (field, weight) in [
            ("task_weight", &mut self.task_weight),
            ("vulnerability_weight", &mut self.vulnerability_weight),
            ("cross_weight", &mut self.cross_weight),
        ] {
            if !named(field) {
                *weight = 0.0;
            }
        }
    }

    /// The denoiser these settings build over latents of `latent_channels`.
    pub fn denoiser(&self, latent_channels: usize) -> DenoiserConfig {
        DenoiserConfig {
            latent_channels,
            ..self.denoiser.clone()
        }
    }
}

impl RunConfig {
    pub fn from_file(path: &std::path::Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| G2dError::io(path, e))?;
        serde_json::from_str(&text).map_err(|source| G2dError::Json {
            what: path.display().to_string(),
            source,
        })
    }

    /// The hash of everything collection reads (the seed, the data and its split, the collect
    /// settings; not the export-only `bundle_validation_size`): what `target.safetensors`
    /// records as its origin. Settings added since keys were first recorded (the hidden widths,
    /// the CNN's layers, the optimizer, the imported state_dict, the vulnerability term and its
    /// `from_target`, `align_runs`) are left out while they hold the value every older run had, the one
    /// [`RunConfig::base`] (the default they were written under) has, so older runs keep their
    /// key.
    pub fn collect_key(&self) -> String {
        let d = &self.data;
        let dir = d
            .dir
            .as_ref()
            .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()));
        let mut collect = serde_json::to_value(&self.collect).expect("settings are JSON");
        let older = serde_json::to_value(RunConfig::base().collect).expect("settings are JSON");
        for added in [
            "hidden",
            "layers",
            "optimizer",
            "init",
            "vulnerability",
            "align_runs",
        ] {
            if collect[added] == older[added] {
                collect.as_object_mut().map(|c| c.remove(added));
            }
        }
        // Runs with the term recorded fresh starts before `from_target` existed, and one run
        // has no other runs to start anywhere.
        let one_run = self.collect.seeds == 1;
        if let Some(v) = collect
            .get_mut("vulnerability")
            .and_then(|v| v.as_object_mut())
        {
            if v.get("from_target") == Some(&false.into()) || one_run {
                v.remove("from_target");
            }
        }
        if let Some(init) = &self.collect.init {
            // The imported file's content, not only its path.
            let bytes = std::fs::read(init).unwrap_or_default();
            collect["init_sha256"] = crate::codec::sha256_hex(&bytes).into();
        }
        let key = serde_json::json!([self.seed, d.source, dir, d.validation_size, collect]);
        crate::codec::sha256_hex(key.to_string().as_bytes())
    }
}
