//! Native-only stages: data files, training (collect, autoencoder, diffusion), evaluation,
//! export and the command line. Compiled out of the wasm build.

pub mod artifacts;
pub mod config;
pub mod sources;
