//! What a bundle's metadata and sections must satisfy before anything is built from them: every
//! setting in range, manifests and section lengths matching the architecture, finite values and
//! θ_orig's hash.

use super::{bad, refile, sha256_hex, Bundle, BundleMeta};
use crate::error::{ensure_finite, BundleFault, G2dError, Result};
use crate::generate::Candidates;
use crate::params::Manifest;

/// The most run centres a bundle may hold (collection runs of one pipeline).
pub const MAX_RUN_CENTRES: usize = 64;

impl BundleMeta {
    /// Range-checks every setting before any network is built or memory reserved: the
    /// autoencoder, denoiser and schedule within their bounds
    /// ([`AutoencoderConfig::validate`], [`DenoiserConfig::validate`],
    /// [`ScheduleConfig::validate`]), a sampler the schedule can run, a finite `latent_clip > 0`,
    /// `guard_delta` in [0, 1], B in [1, 64] and a finite λ.
    pub fn validate(&self) -> Result<()> {
        self.classifier.validate("hidden")?;
        self.autoencoder.validate("autoencoder")?;
        self.denoiser.validate("denoiser")?;
        if self.denoiser.latent_channels != self.autoencoder.latent_channels {
            return Err(G2dError::config(
                "denoiser.latent_channels",
                format!(
                    "is {} but the autoencoder's latent has {} channels",
                    self.denoiser.latent_channels, self.autoencoder.latent_channels
                ),
            ));
        }
        self.schedule.validate("schedule")?;
        self.sampler
            .validate(self.schedule.timesteps)
            .map_err(|e| G2dError::config("sampler", e.to_string()))?;
        if !(self.latent_clip > 0.0 && self.latent_clip.is_finite()) {
            return Err(G2dError::config(
                "latent_clip",
                format!("must be finite and > 0, got {}", self.latent_clip),
            ));
        }
        crate::error::ensure_range("guard_delta", self.guard_delta, 0.0, 1.0)?;
        if let Some(c) = &self.candidates {
            crate::error::ensure_range("candidates.count", c.count, 1, Candidates::MAX)?;
            if c.accepted > c.sampled {
                return Err(G2dError::config(
                    "candidates",
                    format!("{} accepted of {} sampled", c.accepted, c.sampled),
                ));
            }
        }
        if !self.lambda_l1.is_finite() {
            return Err(G2dError::config(
                "lambda_l1",
                format!("must be finite, got {}", self.lambda_l1),
            ));
        }
        Ok(())
    }
}

impl Bundle {
    /// Checks the sections against the architecture and configurations the metadata claims.
    pub fn validate(&self) -> Result<()> {
        self.meta
            .validate()
            .map_err(refile(BundleFault::Metadata))?;
        self.validate_manifests()?;
        self.validate_lengths()?;
        self.validate_values()
    }

    /// The manifests and the autoencoder's length match the claimed architecture and scope.
    fn validate_manifests(&self) -> Result<()> {
        let m = &self.meta;
        let device = crate::backend::cpu_device();
        let classifier = m.classifier.init(&device);
        let expect_manifest = |what: &str, claimed: &Manifest, actual: Manifest| {
            if *claimed != actual {
                Err(bad(BundleFault::Metadata, format!(
                    "{what} manifest does not match a {} with scope {}: expected tensors {:?}, bundle lists {:?}",
                    m.classifier.arch,
                    m.scope,
                    actual.names(),
                    claimed.names()
                )))
            } else {
                Ok(())
            }
        };
        expect_manifest(
            "regenerated",
            &m.regenerated,
            Manifest::regenerated(&classifier, m.scope),
        )?;
        expect_manifest("fixed", &m.fixed, Manifest::fixed(&classifier, m.scope))?;
        if let Some(names) = &m.torch_names {
            use std::collections::BTreeSet;
            let ours = Manifest::full(&classifier).names();
            let keys: BTreeSet<&String> = names.keys().collect();
            let distinct: BTreeSet<&String> = names.values().collect();
            if keys != ours.iter().collect() || distinct.len() != names.len() {
                return Err(bad(
                    BundleFault::Metadata,
                    format!(
                        "torch_names must give each of {ours:?} one distinct name, got {names:?}"
                    ),
                ));
            }
        }
        if m.autoencoder.param_len != m.regenerated.len() {
            return Err(bad(
                BundleFault::Metadata,
                format!(
                    "autoencoder.param_len is {} but the regenerated tensors hold {}",
                    m.autoencoder.param_len,
                    m.regenerated.len()
                ),
            ));
        }
        Ok(())
    }

    /// Every section has the length its configuration implies.
    fn validate_lengths(&self) -> Result<()> {
        let m = &self.meta;
        let device = crate::backend::cpu_device();
        let lens = [
            (
                "decoder",
                Manifest::full(&m.autoencoder.init_decoder(&device)).len(),
                self.decoder.len(),
            ),
            (
                "denoiser",
                Manifest::full(&m.denoiser.init(&device)).len(),
                self.denoiser.len(),
            ),
            ("fixed", m.fixed.len(), self.fixed.len()),
            ("theta_orig", m.regenerated.len(), self.theta_orig.len()),
            (
                "param_mean",
                m.regenerated.len(),
                self.param_norm.mean.len(),
            ),
            ("param_std", m.regenerated.len(), self.param_norm.std.len()),
            (
                "latent_mean",
                m.autoencoder.latent_size(),
                self.latent_norm.mean.len(),
            ),
            (
                "latent_std",
                m.autoencoder.latent_size(),
                self.latent_norm.std.len(),
            ),
            (
                "validation_images",
                self.validation.labels.len() * self.meta.classifier.inputs(),
                self.validation.pixels.len(),
            ),
        ];
        for (name, expected, got) in lens {
            if expected != got {
                return Err(bad(
                    BundleFault::Section,
                    format!(
                        "section {name} holds {got} values, its configuration implies {expected}"
                    ),
                ));
            }
        }
        self.run_centre_count().map(|_| ())
    }

    /// How many run means `param_centres` holds (0: none), refusing a section that is not whole
    /// vectors of θ or holds more than [`MAX_RUN_CENTRES`].
    pub fn run_centre_count(&self) -> Result<usize> {
        let (len, centres) = (self.theta_orig.len().max(1), self.param_centres.len());
        if !centres.is_multiple_of(len) || centres / len > MAX_RUN_CENTRES {
            return Err(bad(
                BundleFault::Section,
                format!(
                    "section param_centres holds {centres} values: expected whole vectors of θ's \
                     {len}, at most {MAX_RUN_CENTRES} of them"
                ),
            ));
        }
        Ok(centres / len)
    }

    /// Values are finite and in range, and θ_orig is the one the metadata names.
    fn validate_values(&self) -> Result<()> {
        let m = &self.meta;
        for (name, values) in self.float_sections() {
            ensure_finite(&format!("section {name}"), values)
                .map_err(refile(BundleFault::Value))?;
        }
        if self
            .param_norm
            .std
            .iter()
            .chain(&self.latent_norm.std)
            .any(|s| *s <= 0.0)
        {
            return Err(bad(
                BundleFault::Value,
                "normalisation has a non-positive standard deviation",
            ));
        }
        let classes = m.classifier.classes;
        let outside = |&l: &u8| usize::from(l) >= classes;
        if self.validation.is_empty() || self.validation.labels.iter().any(outside) {
            return Err(bad(
                BundleFault::Value,
                format!(
                    "validation slice is empty or has labels outside 0-{}",
                    classes - 1
                ),
            ));
        }
        let sha = sha256_hex(&self.theta_orig);
        if sha != m.theta_orig_sha256 {
            return Err(bad(
                BundleFault::Value,
                format!(
                    "theta_orig SHA-256 is {sha}, metadata says {}",
                    m.theta_orig_sha256
                ),
            ));
        }
        Ok(())
    }
}
