//! # G2D — Generate to Defend
//!
//! Regenerates a classifier's parameters with a latent diffusion model whose loss rewards
//! distance from the deployed parameters, so that what an attacker learned about the old
//! weights stops applying, while accuracy stays. One module per stage of the algorithm:
//!
//! | stage | module |
//! |---|---|
//! | data (IDX, splits) | [`data`] |
//! | the protected classifier, and the MLP batched over parameter sets | [`classifier`], [`functional`] |
//! | parameter vectors θ (scope, manifest, flatten) | [`params`] |
//! | per-position normalisation | [`normalize`] |
//! | autoencoder over θ (input and latent noise) | [`autoencoder`] |
//! | latent DDPM: schedule, denoiser, G2D loss, samplers | [`diffusion`] |
//! | generation and guard | [`generate`] |
//! | metrics | [`metrics`] |
//! | the bundle file, and the float codec of every file | [`bundle`], [`codec`] |
//! | attacks | [`attacks`] |
//! | names of the closed sets (backend, arch, scope) | [`naming`] |
//! | native training stages and the run directory (feature `cli`) | `pipeline` |
//! | defense evaluation: transfer and query attacks (feature `cli`) | `defense` |
//! | the report: plan, ranking, tables, plots (feature `cli`) | `report` |
//! | the `g2d` command line (feature `cli`) | `cli` |
//! | browser bindings (wasm32) | `web` |

pub mod attacks;
pub mod autoencoder;
pub mod backend;
pub mod bundle;
pub mod classifier;
pub mod codec;
pub mod data;
pub mod diffusion;
pub mod error;
pub mod functional;
pub mod generate;
pub mod metrics;
pub mod naming;
pub mod normalize;
pub mod params;
pub mod rng;

#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod cli;
#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod defense;
#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod npy;
#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod pipeline;
#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod report;
#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod torch;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{G2dError, Result};
