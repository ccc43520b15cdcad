//! The run directory loses nothing: a collect that fails on its data leaves the run as it was,
//! a stage whose loss diverges writes nothing, and a later stage refuses artifacts made from
//! an earlier stage's previous output, naming the stage to rerun.

use std::path::{Path, PathBuf};

use g2d::backend::cpu_device;
use g2d::bundle::Precision;
use g2d::pipeline::config::RunConfig;
use g2d::pipeline::run::{load_bundle, Run};
use g2d::pipeline::sources::DataSource;

fn tiny_config() -> RunConfig {
    let mut c = RunConfig::base();
    c.collect.pretrain_steps = 20;
    c.collect.checkpoints = 4;
    c.collect.save_every = 1;
    c.autoencoder.steps = 5;
    c.autoencoder.batch_size = 4;
    c.autoencoder.network.channels = vec![8];
    c.diffusion.steps = 5;
    c.diffusion.batch_size = 4;
    c.diffusion.denoiser.channels = 8;
    c.diffusion.denoiser.time_dim = 8;
    c.diffusion.baseline = false;
    c
}

fn run_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("g2d-run-dir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn failed_or_diverged_stages_leave_the_run_as_it_was() {
    let dir = run_dir("failures");
    let device = cpu_device();
    let run = Run::new(&dir, tiny_config(), device.clone()).unwrap();
    run.collect().unwrap();
    let (config, target) = (
        read(&run.path("config.json")),
        read(&run.path("target.safetensors")),
    );

    // A collect whose data is missing changes nothing: not the config, not the artifact.
    let mut missing = tiny_config();
    missing.collect.checkpoints = 6;
    missing.data.source = DataSource::Mnist;
    missing.data.dir = Some(dir.join("no-such-data"));
    let err = Run::new(&dir, missing, device.clone())
        .unwrap()
        .collect()
        .unwrap_err();
    assert_eq!(err.code(), "IO", "{err}");
    assert_eq!(read(&run.path("config.json")), config);
    assert_eq!(read(&run.path("target.safetensors")), target);

    // A learning rate that blows the autoencoder up stops the stage and writes nothing.
    let mut wild = tiny_config();
    wild.autoencoder.lr = 1e30;
    let err = Run::new(&dir, wild, device.clone())
        .unwrap()
        .train_ae()
        .unwrap_err();
    assert_eq!(err.code(), "TRAINING_DIVERGED", "{err}");
    assert!(err.to_string().contains("train-ae diverged"), "{err}");
    assert!(!run.path("autoencoder.safetensors").exists());

    // So does a collect whose loss blows up: the run's artifact and config stay.
    let mut wild = tiny_config();
    wild.collect.lr = 1e30;
    let err = Run::new(&dir, wild, device.clone())
        .unwrap()
        .collect()
        .unwrap_err();
    assert_eq!(err.code(), "TRAINING_DIVERGED", "{err}");
    assert!(err.to_string().contains("collect diverged"), "{err}");
    assert_eq!(read(&run.path("config.json")), config);
    assert_eq!(read(&run.path("target.safetensors")), target);

    // A damaged artifact is named, with the command that writes it again.
    std::fs::write(run.path("target.safetensors"), &target[..target.len() / 2]).unwrap();
    let err = run.train_ae().unwrap_err();
    assert_eq!(err.code(), "ARTIFACT_CORRUPT", "{err}");
    assert!(err.to_string().contains("target.safetensors"), "{err}");
    assert!(err.to_string().contains("rerun `g2d collect`"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn later_stages_refuse_artifacts_of_an_earlier_collection() {
    let dir = run_dir("stale");
    let device = cpu_device();
    let run = Run::new(&dir, tiny_config(), device.clone()).unwrap();
    run.collect().unwrap();
    run.train_ae().unwrap();
    run.train_diffusion(3.0).unwrap();
    let splits = run.splits().unwrap();
    let bundle = run.export(3.0, &splits).unwrap();
    // config.json now asks for another collection than target.safetensors holds.
    let mut changed = tiny_config();
    changed.collect.checkpoints = 6;
    let edited = Run::new(&dir, changed.clone(), device.clone()).unwrap();
    let err = edited.train_ae().unwrap_err();
    assert_eq!(err.code(), "STALE_ARTIFACT", "{err}");
    assert!(err.to_string().contains("rerun `g2d collect`"), "{err}");

    // Collect again: the autoencoder, the diffusion model and the bundle are now stale.
    edited.collect().unwrap();
    let err = edited.export(3.0, &splits).unwrap_err();
    assert!(err.to_string().contains("rerun `g2d train-ae`"), "{err}");
    let err = edited.evaluate(&bundle, &splits).unwrap_err();
    assert!(err.to_string().contains("rerun `g2d export"), "{err}");
    edited.train_ae().unwrap();
    let err = edited.export(3.0, &splits).unwrap_err();
    assert!(
        err.to_string()
            .contains("rerun `g2d train-diffusion --lambda 3`"),
        "{err}"
    );
    edited.train_diffusion(3.0).unwrap();
    edited.export(3.0, &splits).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_half_precision_export_is_smaller_and_generates_alike() {
    let dir = run_dir("half");
    let run = Run::new(&dir, tiny_config(), cpu_device()).unwrap();
    run.collect().unwrap();
    run.train_ae().unwrap();
    run.train_diffusion(3.0).unwrap();
    let splits = run.splits().unwrap();
    let bundle = run.export(3.0, &splits).unwrap();
    let record = dir.join("evaluation-lambda-3.json");
    let full = run.evaluate(&bundle, &splits).unwrap();
    let written = std::fs::read(&record).unwrap();

    // The same bundle in half precision, elsewhere: smaller, with its own guard check.
    let half = dir.join("half.g2d");
    run.export_to(3.0, &splits, Precision::F16, &half).unwrap();
    let read = load_bundle(&half).unwrap();
    assert_eq!(read.precision, Precision::F16);
    assert_eq!(read.theta_orig, load_bundle(&bundle).unwrap().theta_orig);
    assert!(read.meta.candidates.is_some());
    assert!(std::fs::metadata(&half).unwrap().len() < std::fs::metadata(&bundle).unwrap().len());
    // Its sets lie where the f32 bundle's do; evaluating it leaves the run's record alone.
    let halved = run.evaluate(&half, &splits).unwrap();
    // Rounding θ_orig-sized weights to f16 moves them by about 2^-12 of their size, and this
    // tiny run's sets lie not much further from θ_orig, so the bound adds that to a share of L1.
    let (a, b) = (full.l1_to_original.mean, halved.l1_to_original.mean);
    let theta = &read.theta_orig;
    let size = theta.iter().map(|v| f64::from(v.abs())).sum::<f64>() / theta.len() as f64;
    assert!(
        a > 0.0 && (a - b).abs() < size * 2f64.powi(-10) + 0.05 * a,
        "mean L1 to θ_orig {a} in f32, {b} in f16"
    );
    assert_eq!(std::fs::read(&record).unwrap(), written);
    std::fs::remove_dir_all(&dir).unwrap();
}
