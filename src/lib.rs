//! # G2D — Generate to Defend
//!
//! Regenerates a classifier's parameters with a latent diffusion model whose loss rewards
//! distance from the deployed parameters, so that what an attacker learned about the old
//! weights stops applying, while accuracy stays. One module per stage of the algorithm:
//!
//! | stage | module |
//! |---|---|
//! | data (IDX, splits) | [`data`] |
//! | the protected classifier | [`classifier`] |
//! | parameter vectors θ (scope, manifest, flatten) | [`params`] |
//! | per-position normalisation | [`normalize`] |
//! | autoencoder over θ (input and latent noise) | [`autoencoder`] |
//! | latent DDPM: schedule, denoiser, G2D loss, samplers | [`diffusion`] |
//! | generation and guard | [`generate`] |
//! | metrics | [`metrics`] |
//! | the bundle file | [`bundle`] |
//! | attacks | [`attacks`] |
//! | native training, evaluation, transfer and query attacks, the report, CLI (feature `cli`) | `native` |
//! | browser bindings (wasm32) | `web` |

pub mod attacks;
pub mod autoencoder;
pub mod backend;
pub mod bundle;
pub mod classifier;
pub mod data;
pub mod diffusion;
pub mod error;
pub mod generate;
pub mod metrics;
pub mod normalize;
pub mod params;
pub mod rng;

#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod native;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{G2dError, Result};
