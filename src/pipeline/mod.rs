//! Native training: the run directory and the stages that fill it (collect the checkpoints,
//! train the autoencoder, train the latent diffusion model, export the bundle, evaluate),
//! the data files they read and the configuration that made them. Compiled out of the wasm
//! build; the models themselves live in the library rooms ([`crate::classifier`],
//! [`crate::autoencoder`], [`crate::diffusion`]).

pub mod artifacts;
pub mod collect;
pub mod config;
pub mod evaluate;
pub mod progress;
pub mod run;
pub mod sources;
pub mod train_autoencoder;
pub mod train_diffusion;
