//! A run directory and the stages that fill it. Each stage reads what the previous ones wrote,
//! so `g2d collect`, `g2d train-ae`, … can run one by one, and `g2d pipeline` runs them all.
//!
//! ```text
//! RUN/config.json                   the configuration that made the run
//! RUN/target.safetensors            fixed weights, θ_orig, the K checkpoints   (collect)
//! RUN/autoencoder.safetensors       encoder, decoder, normalisations, latents  (train-ae)
//! RUN/diffusion-lambda-Λ.safetensors EMA denoiser for λ = Λ                     (train-diffusion)
//! RUN/g2d-lambda-Λ.g2d              the bundle for λ = Λ                       (export)
//! RUN/evaluation-lambda-Λ.json      its evaluation                             (evaluate)
//! ```

use std::path::{Path, PathBuf};

use burn::prelude::*;

use super::artifacts::{self, Named};
use super::collect::{collect, CollectInfo};
use super::config::RunConfig;
use super::evaluate::{evaluate, Evaluation};
use super::sources::load_splits;
use super::train_autoencoder::{train_autoencoder, AutoencoderInfo};
use super::train_diffusion::{
    standardised_theta_orig, train_diffusion, vulnerability_bank, DiffusionData, DiffusionInfo,
    FunctionData,
};
use crate::bundle::{sha256_hex, Bundle, BundleMeta, Precision};
use crate::classifier::Classifier;
use crate::data::Splits;
use crate::error::{G2dError, Result};
use crate::functional::FunctionalMlp;
use crate::generate::{Candidates, G2dModel};
use crate::normalize::Normalizer;
use crate::params::Manifest;
use crate::rng::G2dRng;

pub struct Run {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub device: Device,
}

/// `0.05` → `0.05`, `0` → `0`: the λ part of artifact names.
pub fn lambda_tag(lambda: f32) -> String {
    format!("{lambda}")
}

impl Run {
    pub fn new(dir: &Path, config: RunConfig, device: Device) -> Result<Run> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| G2dError::io(dir, e))?;
        Ok(Run {
            dir: dir.to_path_buf(),
            config,
            device,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn bundle_path(&self, lambda: f32) -> PathBuf {
        self.path(&format!("g2d-lambda-{}.g2d", lambda_tag(lambda)))
    }

    pub fn splits(&self) -> Result<Splits> {
        let d = &self.config.data;
        load_splits(
            d.source,
            d.dir.as_deref(),
            d.validation_size,
            self.config.seed,
        )
    }

    fn save_config(&self) -> Result<()> {
        let path = self.path("config.json");
        let text = serde_json::to_string_pretty(&self.config).expect("config serialises");
        artifacts::write_atomic(&path, text)
    }

    /// Stage 1. The data is loaded and the target trained before anything in the run
    /// directory changes; the artifact is written first, the configuration last, each whole.
    pub fn collect(&self) -> Result<CollectInfo> {
        let splits = self.splits()?;
        let c = collect(&self.config, &splits, &self.device)?;
        for (k, checkpoint) in c.checkpoints.iter().enumerate() {
            crate::error::ensure_finite(&format!("collect: checkpoint {k}"), checkpoint)?;
        }
        let fixed = c.info.fixed.flatten(&c.target);
        let flat: Vec<f32> = c.checkpoints.concat();
        artifacts::save(
            &self.path("target.safetensors"),
            &c.info,
            &self.config.collect_key(),
            &[
                Named::vector("fixed", &fixed),
                Named::vector("theta_orig", &c.theta_orig),
                Named {
                    name: "checkpoints",
                    shape: vec![c.checkpoints.len(), c.theta_orig.len()],
                    values: &flat,
                },
            ],
        )?;
        self.save_config()?;
        Ok(c.info)
    }

    /// `target.safetensors`, refused when `config.json` asks for another collection.
    pub fn load_target(&self) -> Result<artifacts::Loaded> {
        let target = artifacts::load(&self.path("target.safetensors"), "collect")?;
        target.check_derived_from(
            &self.config.collect_key(),
            "seed, data or collect configuration",
            "collect",
        )?;
        Ok(target)
    }

    /// `autoencoder.safetensors`, refused unless it was trained on `target` as it is now.
    fn load_autoencoder(&self, target: &artifacts::Loaded) -> Result<artifacts::Loaded> {
        let ae = artifacts::load(&self.path("autoencoder.safetensors"), "train-ae")?;
        ae.check_derived_from(&target.sha256, "target.safetensors", "train-ae")?;
        Ok(ae)
    }

    /// The diffusion artifact for λ, refused unless it was trained on `autoencoder` as it is.
    fn load_diffusion(
        &self,
        lambda: f32,
        autoencoder: &artifacts::Loaded,
    ) -> Result<artifacts::Loaded> {
        let rerun = format!("train-diffusion --lambda {lambda}");
        let diffusion = artifacts::load(&self.diffusion_path(lambda), &rerun)?;
        diffusion.check_derived_from(&autoencoder.sha256, "autoencoder.safetensors", &rerun)?;
        Ok(diffusion)
    }

    fn diffusion_path(&self, lambda: f32) -> PathBuf {
        self.path(&format!(
            "diffusion-lambda-{}.safetensors",
            lambda_tag(lambda)
        ))
    }

    /// Stage 1 without training: takes over `other`'s collection when it was made with the same
    /// seed, data and collection settings (it would come out the same); `None` otherwise.
    pub fn adopt_collection(&self, other: &Run) -> Result<Option<CollectInfo>> {
        let source = other.path("target.safetensors");
        let same_dir = self.dir.canonicalize().ok() == other.dir.canonicalize().ok();
        let same = self.config.collect_key() == other.config.collect_key();
        if same_dir || !same || !source.is_file() {
            return Ok(None);
        }
        other.load_target()?; // the other run's collection must be current for its config
        let target = self.path("target.safetensors");
        let bytes = std::fs::read(&source).map_err(|e| G2dError::io(&source, e))?;
        artifacts::write_atomic(&target, bytes)?;
        self.save_config()?;
        Ok(Some(self.load_target()?.meta()?))
    }

    /// Stage 2.
    pub fn train_ae(&self) -> Result<AutoencoderInfo> {
        let target = self.load_target()?;
        let checkpoints = target.rows("checkpoints")?;
        let ae = train_autoencoder(&self.config, &checkpoints, &self.device)?;
        let encoder = Manifest::full(&ae.encoder).flatten(&ae.encoder);
        let decoder = Manifest::full(&ae.decoder).flatten(&ae.decoder);
        let latents = ae.latents.concat();
        let centres = ae.param_centres.concat();
        let mut tensors = vec![
            Named::vector("encoder", &encoder),
            Named::vector("decoder", &decoder),
            Named::vector("param_mean", &ae.param_norm.mean),
            Named::vector("param_std", &ae.param_norm.std),
            Named::vector("latent_mean", &ae.latent_norm.mean),
            Named::vector("latent_std", &ae.latent_norm.std),
            Named {
                name: "latents",
                shape: vec![ae.latents.len(), ae.info.config.latent_size()],
                values: &latents,
            },
        ];
        if !centres.is_empty() {
            tensors.push(Named {
                name: "param_centres",
                shape: vec![ae.param_centres.len(), ae.info.config.param_len],
                values: &centres,
            });
        }
        artifacts::save(
            &self.path("autoencoder.safetensors"),
            &ae.info,
            &target.sha256,
            &tensors,
        )?;
        Ok(ae.info)
    }

    /// Stage 3, for one λ.
    pub fn train_diffusion(&self, lambda: f32) -> Result<DiffusionInfo> {
        let target = self.load_target()?;
        let ae_file = self.load_autoencoder(&target)?;
        let info: AutoencoderInfo = ae_file.meta()?;
        let decoder = info.config.init_decoder(&self.device);
        let decoder = Manifest::full(&decoder).unflatten(decoder, &ae_file.vector("decoder")?)?;
        let param_norm = Normalizer {
            mean: ae_file.vector("param_mean")?,
            std: ae_file.vector("param_std")?,
        };
        let latent_norm = Normalizer {
            mean: ae_file.vector("latent_mean")?,
            std: ae_file.vector("latent_std")?,
        };
        let centres = ae_file.rows_if_any("param_centres")?;
        let theta_orig =
            standardised_theta_orig(&target.vector("theta_orig")?, &param_norm, &centres);
        let latents = ae_file.rows("latents")?;
        let splits = match self.config.diffusion.function_terms_at(lambda) {
            true => Some(self.splits()?),
            false => None,
        };
        let function = match &splits {
            Some(s) => Some(self.function_data(&target, &param_norm, &centres, s)?),
            None => None,
        };
        let data = DiffusionData {
            latents: &latents,
            latent_shape: [info.config.latent_channels, info.config.latent_len()],
            latent_norm: &latent_norm,
            latent_clip: info.latent_clip,
            decoder: &decoder,
            theta_orig: &theta_orig,
            per_run: self.config.collect.per_run(),
            function,
        };
        let trained = train_diffusion(&self.config, lambda, &data, &self.device)?;
        let weights = Manifest::full(&trained.denoiser).flatten(&trained.denoiser);
        artifacts::save(
            &self.diffusion_path(lambda),
            &trained.info,
            &ae_file.sha256,
            &[Named::vector("denoiser", &weights)],
        )?;
        Ok(trained.info)
    }

    /// The function-space terms' inputs: the collected classifier batched over parameter sets,
    /// and the bank of adversarial examples crafted on θ_orig and the checkpoints.
    fn function_data<'a>(
        &self,
        target: &artifacts::Loaded,
        param_norm: &'a Normalizer,
        centres: &'a [Vec<f32>],
        splits: &'a Splits,
    ) -> Result<FunctionData<'a>> {
        let info: CollectInfo = target.meta()?;
        let classifier = info.classifier.init(&self.device);
        let classifier = info.fixed.unflatten(classifier, &target.vector("fixed")?)?;
        let original = info
            .regenerated
            .unflatten(classifier.clone(), &target.vector("theta_orig")?)?;
        let all = target.rows("checkpoints")?;
        let spread: Vec<Classifier> = all
            .iter()
            .step_by((all.len() / 4).max(1))
            .map(|c| info.regenerated.unflatten(classifier.clone(), c))
            .collect::<Result<_>>()?;
        let d = &self.config.diffusion;
        Ok(FunctionData {
            classifier: FunctionalMlp::new(info.classifier.arch, &classifier, &info.regenerated)?,
            param_norm,
            centres,
            train: &splits.train,
            bank: vulnerability_bank(
                &original,
                &spread,
                &splits.train,
                d.vulnerability_bank,
                &d.vulnerability_attack,
                self.config.seed + 3,
            ),
        })
    }

    /// Stage 3b: the bundle for one λ, with the number of candidates its guard needs per
    /// regeneration ([`Candidates::measure`]). Returns its path.
    pub fn export(&self, lambda: f32, splits: &Splits) -> Result<PathBuf> {
        let path = self.bundle_path(lambda);
        self.export_to(lambda, splits, Precision::F32, &path)?;
        Ok(path)
    }

    /// [`Run::export`] at `precision`, written to `path`. At F16 the candidates are measured on
    /// the rounded networks, which is what the file holds.
    pub fn export_to(
        &self,
        lambda: f32,
        splits: &Splits,
        precision: Precision,
        path: &Path,
    ) -> Result<()> {
        let target = self.load_target()?;
        let ae_file = self.load_autoencoder(&target)?;
        let diff_file = self.load_diffusion(lambda, &ae_file)?;
        let collect_info: CollectInfo = target.meta()?;
        let ae_info: AutoencoderInfo = ae_file.meta()?;
        let diff_info: DiffusionInfo = diff_file.meta()?;
        let theta_orig = target.vector("theta_orig")?;
        let bundle = Bundle {
            precision: Precision::F32,
            meta: BundleMeta {
                classifier: collect_info.classifier,
                scope: collect_info.scope,
                dataset: splits.name.clone(),
                regenerated: collect_info.regenerated,
                fixed: collect_info.fixed,
                autoencoder: ae_info.config,
                denoiser: diff_info.config,
                schedule: self.config.diffusion.schedule.clone(),
                sampler: self.config.generate.sampler,
                lambda_l1: lambda,
                guard_delta: self.config.generate.guard_delta,
                candidates: None,
                latent_clip: ae_info.latent_clip,
                theta_orig_sha256: sha256_hex(&theta_orig),
                training: serde_json::to_value(&self.config).expect("config serialises"),
                torch_names: collect_info.torch_names,
                sections: Vec::new(),
            },
            decoder: ae_file.vector("decoder")?,
            denoiser: diff_file.vector("denoiser")?,
            fixed: target.vector("fixed")?,
            theta_orig,
            param_norm: Normalizer {
                mean: ae_file.vector("param_mean")?,
                std: ae_file.vector("param_std")?,
            },
            param_centres: ae_file.rows_if_any("param_centres")?.concat(),
            latent_norm: Normalizer {
                mean: ae_file.vector("latent_mean")?,
                std: ae_file.vector("latent_std")?,
            },
            validation: splits
                .validation
                .take(self.config.data.bundle_validation_size),
        };
        bundle.validate()?;
        let mut bundle = bundle.at_precision(precision)?;
        bundle.validate()?; // what the file will hold, rounded
        let rng = G2dRng::seeded(self.config.seed + 9);
        bundle.meta.candidates = Some(Candidates::measure(&bundle, &self.device, rng)?);
        artifacts::write_atomic(path, bundle.to_bytes())
    }

    /// Stage 5: generate N and evaluate a bundle against this run's data and checkpoints; the
    /// run's own bundle's evaluation is also written to RUN/evaluation-lambda-Λ.json.
    pub fn evaluate(&self, bundle_path: &Path, splits: &Splits) -> Result<Evaluation> {
        let bundle = load_bundle(bundle_path)?;
        let model = G2dModel::from_bundle(&bundle, &self.device)?;
        let checkpoints = match self.target_behind(bundle_path, &bundle)? {
            Some(target) => Some(target.rows("checkpoints")?),
            None => None,
        };
        let g = &self.config.generate;
        let (evaluation, _) = evaluate(
            &model,
            splits,
            checkpoints.as_deref(),
            g.count,
            &g.sampler,
            g.guard_delta,
            G2dRng::seeded(self.config.seed + 3),
        )?;
        // The run's record is of its own bundle; another (a copy in half precision, one from
        // elsewhere) is printed, not filed under the run.
        let lambda = bundle.meta.lambda_l1;
        let own = std::fs::canonicalize(self.bundle_path(lambda)).ok();
        if own.is_some() && own == std::fs::canonicalize(bundle_path).ok() {
            let path = self.path(&format!("evaluation-lambda-{}.json", lambda_tag(lambda)));
            let text = serde_json::to_string_pretty(&evaluation).expect("evaluation serialises");
            artifacts::write_atomic(&path, text)?;
        }
        Ok(evaluation)
    }
}

impl Run {
    /// The run's own bundle for λ, refused when it was exported before the last collect.
    pub fn load_own_bundle(&self, lambda: f32) -> Result<Bundle> {
        let path = self.bundle_path(lambda);
        let bundle = load_bundle(&path)?;
        self.check_bundle_matches(&path, &bundle, &self.load_target()?)?;
        Ok(bundle)
    }

    /// The collection `bundle` was exported from, if it is this run's. The run's own bundle
    /// (one in its directory) must match its collection, else it is stale; a bundle from
    /// elsewhere that does not match, or a run that has not collected, gives `None`.
    pub fn target_behind(
        &self,
        bundle_path: &Path,
        bundle: &Bundle,
    ) -> Result<Option<artifacts::Loaded>> {
        let target = match self.load_target() {
            Ok(target) => target,
            Err(G2dError::Io { .. }) => return Ok(None), // no collection here
            Err(e) => return Err(e),
        };
        match self.check_bundle_matches(bundle_path, bundle, &target) {
            Ok(()) => Ok(Some(target)),
            Err(e) if bundle_path.parent() == Some(self.dir.as_path()) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Refuses a bundle whose θ_orig is not this run's: it was exported before the last
    /// collect.
    pub fn check_bundle_matches(
        &self,
        path: &Path,
        bundle: &Bundle,
        target: &artifacts::Loaded,
    ) -> Result<()> {
        if bundle.meta.theta_orig_sha256 != sha256_hex(&target.vector("theta_orig")?) {
            return Err(G2dError::Stale {
                what: path.display().to_string(),
                reason: "its θ_orig is not the one this run collected".into(),
                rerun: format!("export --lambda {}", bundle.meta.lambda_l1),
            });
        }
        Ok(())
    }
}

/// Reads and validates a bundle file.
pub fn load_bundle(path: &Path) -> Result<Bundle> {
    let bytes = std::fs::read(path).map_err(|e| G2dError::io(path, e))?;
    Bundle::from_bytes(&bytes).map_err(|e| match e {
        G2dError::Bundle { fault, reason } => {
            G2dError::bundle(fault, format!("{}: {reason}", path.display()))
        }
        other => other,
    })
}
