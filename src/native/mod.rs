//! Native-only stages: data files, training (collect, autoencoder, diffusion), evaluation,
//! export and the command line. Compiled out of the wasm build.

pub mod artifacts;
pub mod bench;
pub mod cli;
pub mod collect;
pub mod config;
pub mod evaluate;
pub mod plots;
pub mod progress;
pub mod query_attack;
pub mod report;
pub mod sources;
pub mod stages;
pub mod train_ae;
pub mod train_diffusion;
pub mod transfer;
