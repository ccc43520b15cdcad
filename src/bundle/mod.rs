//! The bundle: one versioned file that carries everything generation needs, for the browser and
//! the CLI alike.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "G2DBNDL\0"
//! 8       4     format version, u32 little-endian
//! 12      8     metadata length M, u64 LE
//! 20      8     section data length S, u64 LE
//! 28      M     metadata, UTF-8 JSON (BundleMeta)
//! 28+M    S     sections, in the order metadata lists them (f32 LE, f16 LE or u8)
//! 28+M+S  32    SHA-256 of every byte before it
//! ```
//!
//! Sections: decoder and denoiser weights, the classifier's fixed (not regenerated) weights,
//! θ_orig, the parameter and latent normalisations, the runs' means where the parameters are
//! centred per collection run (`param_centres`, only then) (all f32), and a validation slice for the
//! guard (u8 pixels and labels). A bundle written at [`Precision::F16`] holds what only generation
//! reads (the decoder, the denoiser, the parameter normalisation and the run centres) as IEEE half
//! floats instead; θ_orig, which the guard and the distances are measured against, the latent
//! normalisation and the fixed weights stay f32 either way.
//! Loading checks length, magic, version, checksum, metadata, every section's length against the
//! architecture it claims, finiteness, and θ_orig's SHA-256, in that order, and fails on the first
//! problem with a message that names it.

mod validate;

pub use validate::MAX_RUN_CENTRES;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::autoencoder::AutoencoderConfig;
use crate::classifier::ClassifierConfig;
use crate::codec::{
    f16_from_le_bytes, f16_to_le_bytes, f32_from_le_bytes, f32_to_le_bytes, round_to_f16,
};
use crate::data::Images;
use crate::diffusion::denoiser::DenoiserConfig;
use crate::diffusion::sampler::SamplerConfig;
use crate::diffusion::schedule::ScheduleConfig;
use crate::error::{BundleFault, G2dError, Result};
use crate::normalize::Normalizer;
use crate::params::{Manifest, Scope};

pub const MAGIC: &[u8; 8] = b"G2DBNDL\0";
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 28;
const CHECKSUM_LEN: usize = 32;

/// What a bundle says about itself (the JSON part).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleMeta {
    /// The protected classifier (`arch`, `hidden`, `image`, `classes` at the top level).
    #[serde(flatten)]
    pub classifier: ClassifierConfig,
    pub scope: Scope,
    pub dataset: String,
    /// The regenerated tensors: θ's layout.
    pub regenerated: Manifest,
    /// The tensors that stay as trained.
    pub fixed: Manifest,
    pub autoencoder: AutoencoderConfig,
    pub denoiser: DenoiserConfig,
    pub schedule: ScheduleConfig,
    /// Default sampler for regeneration.
    pub sampler: SamplerConfig,
    pub lambda_l1: f32,
    /// A candidate is installed only if its validation accuracy ≥ original − `guard_delta`.
    pub guard_delta: f32,
    /// B, the candidates regenerate() samples when not told, with the guard check at export
    /// that chose it. Absent in bundles written before it was measured: the browser samples 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<crate::generate::Candidates>,
    /// Bound on x̂₀ in the standardised latent space.
    pub latent_clip: f32,
    /// Hex SHA-256 of θ_orig's little-endian bytes.
    pub theta_orig_sha256: String,
    /// The configuration of the run that produced the bundle.
    pub training: serde_json::Value,
    /// The PyTorch names, when the target was imported from a state_dict: regenerated sets
    /// export under them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_names: Option<crate::params::TorchNames>,
    pub sections: Vec<Section>,
}

/// One data section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub name: String,
    pub dtype: String,
    pub len: usize,
}

/// How a bundle stores the sections only generation reads ([`HALF_SECTIONS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Four bytes a value: what training produced, bit for bit.
    #[default]
    F32,
    /// Two bytes a value, rounded to the nearest IEEE half ([`Bundle::at_precision`]).
    F16,
}

/// The sections a bundle may store at [`Precision::F16`].
pub const HALF_SECTIONS: [&str; 5] = [
    "decoder",
    "denoiser",
    "param_mean",
    "param_std",
    "param_centres",
];

/// A decoded bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// How [`HALF_SECTIONS`] are stored; at F16 their values here are already halves.
    pub precision: Precision,
    pub meta: BundleMeta,
    pub decoder: Vec<f32>,
    pub denoiser: Vec<f32>,
    pub fixed: Vec<f32>,
    pub theta_orig: Vec<f32>,
    pub param_norm: Normalizer,
    /// With `autoencoder.centre_runs`, the collection runs' means `[runs × param_len]`, one of
    /// which each generated set adds; empty otherwise (and then no section is written).
    pub param_centres: Vec<f32>,
    pub latent_norm: Normalizer,
    /// Validation images for the guard in the browser.
    pub validation: Images,
}

const FLOAT_SECTIONS: [&str; 9] = [
    "decoder",
    "denoiser",
    "fixed",
    "theta_orig",
    "param_mean",
    "param_std",
    "param_centres",
    "latent_mean",
    "latent_std",
];

fn bad(fault: BundleFault, reason: impl Into<String>) -> G2dError {
    G2dError::bundle(fault, reason)
}

/// Re-files another error (a range check, a shape, a non-finite value) as a bundle fault.
fn refile(fault: BundleFault) -> impl Fn(G2dError) -> G2dError {
    move |e| match e {
        G2dError::Bundle { .. } => e,
        other => bad(fault, other.to_string()),
    }
}

/// Hex SHA-256 of a vector's little-endian bytes.
pub fn sha256_hex(values: &[f32]) -> String {
    crate::codec::sha256_hex(&f32_to_le_bytes(values))
}

impl Bundle {
    /// The float sections (f32, or f16 at [`Precision::F16`]) in file order; `param_centres`
    /// only where there are centres, so a bundle without them is byte for byte what it was
    /// before they existed.
    fn float_sections(&self) -> Vec<(&'static str, &[f32])> {
        [
            ("decoder", &self.decoder[..]),
            ("denoiser", &self.denoiser),
            ("fixed", &self.fixed),
            ("theta_orig", &self.theta_orig),
            ("param_mean", &self.param_norm.mean),
            ("param_std", &self.param_norm.std),
            ("param_centres", &self.param_centres),
            ("latent_mean", &self.latent_norm.mean),
            ("latent_std", &self.latent_norm.std),
        ]
        .into_iter()
        .filter(|(name, v)| *name != "param_centres" || !v.is_empty())
        .collect()
    }

    /// Validation pixels as bytes: they are k/255 exactly, so nothing is lost.
    fn validation_bytes(&self) -> Vec<u8> {
        self.validation
            .pixels
            .iter()
            .map(|p| (p * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// The bundle stored at `precision`: at F16, [`HALF_SECTIONS`] rounded to the nearest half,
    /// which is what the file will hold and what generation then reads; F32 keeps the values
    /// as they are (a bundle read in f16 stays rounded). Fails, naming the section, where a
    /// value is past f16's range (±65,504) or a standard deviation would round to 0.
    pub fn at_precision(mut self, precision: Precision) -> Result<Bundle> {
        if precision == Precision::F16 && self.precision == Precision::F32 {
            for (name, values) in self.half_sections_mut() {
                for v in values.iter_mut() {
                    let half = round_to_f16(*v);
                    if v.is_finite() && !half.is_finite() {
                        return Err(bad(
                            BundleFault::Value,
                            format!("section {name}: {v} is past f16's range (±65,504)"),
                        ));
                    }
                    if name == "param_std" && *v > 0.0 && half == 0.0 {
                        return Err(bad(
                            BundleFault::Value,
                            format!(
                                "section param_std: {v} rounds to 0 in f16 (below 2^-25); \
                                 export this bundle in f32"
                            ),
                        ));
                    }
                    *v = half;
                }
            }
        }
        self.precision = precision;
        Ok(self)
    }

    /// [`HALF_SECTIONS`]' values, in its order, to round in place.
    fn half_sections_mut(&mut self) -> [(&'static str, &mut Vec<f32>); 5] {
        let sections = [
            ("decoder", &mut self.decoder),
            ("denoiser", &mut self.denoiser),
            ("param_mean", &mut self.param_norm.mean),
            ("param_std", &mut self.param_norm.std),
            ("param_centres", &mut self.param_centres),
        ];
        debug_assert!(sections.iter().map(|(n, _)| *n).eq(HALF_SECTIONS));
        sections
    }

    /// Whether section `name` is written in half precision.
    fn is_half(&self, name: &str) -> bool {
        self.precision == Precision::F16 && HALF_SECTIONS.contains(&name)
    }

    /// The dtype section `name` is written in.
    fn dtype_of(&self, name: &str) -> &'static str {
        if self.is_half(name) {
            "f16"
        } else {
            "f32"
        }
    }

    /// Encodes the bundle. The section table in the metadata is rewritten to match the data.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut meta = self.meta.clone();
        meta.sections = self
            .float_sections()
            .iter()
            .map(|(name, v)| Section {
                name: name.to_string(),
                dtype: self.dtype_of(name).into(),
                len: v.len(),
            })
            .chain([
                Section {
                    name: "validation_images".into(),
                    dtype: "u8".into(),
                    len: self.validation.pixels.len(),
                },
                Section {
                    name: "validation_labels".into(),
                    dtype: "u8".into(),
                    len: self.validation.labels.len(),
                },
            ])
            .collect();
        let json = serde_json::to_vec(&meta).expect("metadata serialises");
        let mut data = Vec::new();
        for (name, values) in self.float_sections() {
            data.extend_from_slice(&if self.is_half(name) {
                f16_to_le_bytes(values)
            } else {
                f32_to_le_bytes(values)
            });
        }
        data.extend_from_slice(&self.validation_bytes());
        data.extend_from_slice(&self.validation.labels);

        let mut out = Vec::with_capacity(HEADER_LEN + json.len() + data.len() + CHECKSUM_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&data);
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    /// Checks the framing (length, magic, version, section lengths, checksum); returns the
    /// metadata length and where the checksum starts.
    fn check_framing(bytes: &[u8]) -> Result<(usize, usize)> {
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
            return Err(bad(
                BundleFault::Truncated,
                format!(
                    "truncated: {} bytes is shorter than the {}-byte header and checksum",
                    bytes.len(),
                    HEADER_LEN + CHECKSUM_LEN
                ),
            ));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad(
                BundleFault::Format,
                "bad magic: this is not a G2D bundle (expected \"G2DBNDL\\0\")",
            ));
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version != FORMAT_VERSION {
            return Err(bad(
                BundleFault::Format,
                format!(
                "unsupported format version {version} (this build reads version {FORMAT_VERSION})"
            ),
            ));
        }
        let (meta_len, data_len) = (u64_at(12), u64_at(20));
        let expected = (HEADER_LEN as u64)
            .checked_add(meta_len)
            .and_then(|v| v.checked_add(data_len))
            .and_then(|v| v.checked_add(CHECKSUM_LEN as u64))
            .ok_or_else(|| bad(BundleFault::Truncated, "header lengths overflow"))?;
        if (bytes.len() as u64) < expected {
            return Err(bad(
                BundleFault::Truncated,
                format!(
                    "truncated: header says {expected} bytes, file has {}",
                    bytes.len()
                ),
            ));
        }
        if (bytes.len() as u64) > expected {
            return Err(bad(
                BundleFault::Truncated,
                format!(
                    "{} unexpected bytes after the checksum",
                    bytes.len() as u64 - expected
                ),
            ));
        }
        let body_end = bytes.len() - CHECKSUM_LEN;
        if Sha256::digest(&bytes[..body_end]).as_slice() != &bytes[body_end..] {
            return Err(bad(BundleFault::Checksum,
                "checksum mismatch: the file is corrupt (SHA-256 of the content differs from the stored one)",
            ));
        }
        Ok((meta_len as usize, body_end))
    }

    /// Decodes and validates a bundle.
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle> {
        let (meta_len, body_end) = Self::check_framing(bytes)?;
        let meta_end = HEADER_LEN + meta_len;
        let meta: BundleMeta = serde_json::from_slice(&bytes[HEADER_LEN..meta_end])
            .map_err(|e| bad(BundleFault::Metadata, format!("metadata: {e}")))?;
        let bundle = Self::assemble(meta, &bytes[meta_end..body_end])?;
        bundle.validate()?;
        Ok(bundle)
    }

    /// The sections named by `meta`, read out of `data`.
    fn assemble(meta: BundleMeta, data: &[u8]) -> Result<Bundle> {
        let sections = read_sections(&meta, data)?;
        let take = |name: &str| {
            sections
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let f32s = |name: &str| -> Result<Vec<f32>> {
            match take(name) {
                Some(SectionData::F32(v)) => Ok(v),
                _ => Err(bad(
                    BundleFault::Section,
                    format!("section {name} missing or not f32"),
                )),
            }
        };
        let u8s = |name: &str| -> Result<Vec<u8>> {
            match take(name) {
                Some(SectionData::U8(v)) => Ok(v),
                _ => Err(bad(
                    BundleFault::Section,
                    format!("section {name} missing or not u8"),
                )),
            }
        };
        let labels = u8s("validation_labels")?;
        let pixels = u8s("validation_images")?;
        let precision = meta.precision()?;
        Ok(Bundle {
            precision,
            decoder: f32s("decoder")?,
            denoiser: f32s("denoiser")?,
            fixed: f32s("fixed")?,
            theta_orig: f32s("theta_orig")?,
            param_norm: Normalizer {
                mean: f32s("param_mean")?,
                std: f32s("param_std")?,
            },
            param_centres: match take("param_centres") {
                None => Vec::new(),
                Some(_) => f32s("param_centres")?,
            },
            latent_norm: Normalizer {
                mean: f32s("latent_mean")?,
                std: f32s("latent_std")?,
            },
            validation: Images {
                pixels: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
                labels,
                channels: meta.classifier.channels,
                rows: meta.classifier.image[0],
                cols: meta.classifier.image[1],
            },
            meta,
        })
    }
}

impl Precision {
    /// The dtype's name, as the section table and the JS API's `info().precision` write it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

impl BundleMeta {
    /// F16 where the half-precision sections are written so, F32 where they are not; a bundle
    /// that mixes the two is refused, so that writing it back gives the same bytes.
    pub fn precision(&self) -> Result<Precision> {
        let halves: Vec<&Section> = self
            .sections
            .iter()
            .filter(|s| HALF_SECTIONS.contains(&s.name.as_str()))
            .collect();
        match (
            halves.iter().find(|s| s.dtype == "f16"),
            halves.iter().find(|s| s.dtype != "f16"),
        ) {
            (Some(a), Some(b)) => Err(bad(
                BundleFault::Section,
                format!(
                    "section {} is f16 but {} is {}: a bundle stores them alike",
                    a.name, b.name, b.dtype
                ),
            )),
            (Some(_), None) => Ok(Precision::F16),
            _ => Ok(Precision::F32),
        }
    }
}

#[derive(Clone)]
enum SectionData {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

fn read_sections(meta: &BundleMeta, data: &[u8]) -> Result<Vec<(String, SectionData)>> {
    let mut at = 0usize;
    let mut out = Vec::new();
    for (i, s) in meta.sections.iter().enumerate() {
        if meta.sections[..i]
            .iter()
            .any(|earlier| earlier.name == s.name)
        {
            return Err(bad(
                BundleFault::Section,
                format!("section {} is listed twice", s.name),
            ));
        }
        if s.name == "param_centres" && s.len == 0 {
            return Err(bad(
                BundleFault::Section,
                "section param_centres is empty (a bundle without run centres has none)",
            ));
        }
        let width = match s.dtype.as_str() {
            "f32" => 4,
            "f16" => 2,
            "u8" => 1,
            other => {
                return Err(bad(
                    BundleFault::Section,
                    format!("section {}: unknown dtype {other:?}", s.name),
                ))
            }
        };
        let allowed = if HALF_SECTIONS.contains(&s.name.as_str()) {
            &["f32", "f16"][..]
        } else if FLOAT_SECTIONS.contains(&s.name.as_str()) {
            &["f32"][..]
        } else {
            &["u8"][..]
        };
        if !allowed.contains(&s.dtype.as_str()) {
            return Err(bad(
                BundleFault::Section,
                format!("section {} has dtype {}", s.name, s.dtype),
            ));
        }
        let end = s
            .len
            .checked_mul(width)
            .and_then(|n| n.checked_add(at))
            .filter(|&end| end <= data.len())
            .ok_or_else(|| {
                bad(
                    BundleFault::Section,
                    format!("section {} runs past the end of the data", s.name),
                )
            })?;
        let raw = &data[at..end];
        let values = match width {
            4 => SectionData::F32(f32_from_le_bytes(raw)),
            2 => SectionData::F32(f16_from_le_bytes(raw)),
            _ => SectionData::U8(raw.to_vec()),
        };
        out.push((s.name.clone(), values));
        at = end;
    }
    if at != data.len() {
        return Err(bad(
            BundleFault::Section,
            format!(
                "sections cover {at} bytes but the header declares {}",
                data.len()
            ),
        ));
    }
    Ok(out)
}
