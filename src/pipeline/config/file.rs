//! How a [`RunConfig`] reads and writes as JSON.
//!
//! - **A file names only what it changes.** What a file says is laid over the defaults, object
//!   by object, so `{"diffusion": {"denoiser": {"channels": 32}}}` changes one width and keeps
//!   the rest. burn's Configs, nested as they are, have no serde defaults of their own; the
//!   overlay supplies them. A key the defaults do not have is refused with its path.
//! - **Derived fields stay out of the file.** A nested network config leaves out what the
//!   pipeline fills in ([`Shape::DERIVED`]: θ's length, the fold, the latent channels), and
//!   holds 0 there until [`super::AutoencoderTraining::model`] or
//!   [`super::DiffusionTraining::denoiser`] sets it.
//! - **Older files still load.** Before the burn Configs were nested, a run file held the
//!   network fields flat in its stage (`autoencoder.channels`, `diffusion.blocks`); [`migrate`]
//!   moves them to where they live now, so old run directories and report caches read as
//!   they were written. A run file written before `collect.vulnerability` or
//!   `autoencoder.centre_runs` existed (when it was off, before it became the default) reads
//!   with it off.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::RunConfig;
use crate::autoencoder::AutoencoderConfig;
use crate::diffusion::denoiser::DenoiserConfig;

/// A burn Config nested in the run file less the fields the pipeline derives.
pub trait Shape: Serialize + DeserializeOwned {
    /// Fields the pipeline sets; absent from files, 0 until set.
    const DERIVED: &'static [&'static str];
}

impl Shape for AutoencoderConfig {
    const DERIVED: &'static [&'static str] = &["param_len", "fold"];
}

impl Shape for DenoiserConfig {
    const DERIVED: &'static [&'static str] = &["latent_channels"];
}

/// `serialize_with` for a [`Shape`]: its fields less the derived ones.
pub fn write_shape<C: Shape, S: Serializer>(config: &C, s: S) -> Result<S::Ok, S::Error> {
    let mut value = serde_json::to_value(config).map_err(serde::ser::Error::custom)?;
    if let Value::Object(fields) = &mut value {
        for key in C::DERIVED {
            fields.remove(*key);
        }
    }
    value.serialize(s)
}

/// `deserialize_with` for a [`Shape`]: the derived fields come back as 0.
pub fn read_shape<'de, C: Shape, D: Deserializer<'de>>(d: D) -> Result<C, D::Error> {
    let mut value = Value::deserialize(d)?;
    if let Value::Object(fields) = &mut value {
        for key in C::DERIVED {
            fields.insert((*key).to_string(), Value::from(0));
        }
    }
    serde_json::from_value(value).map_err(D::Error::custom)
}

/// Network fields that sat flat in their stage before the burn Configs were nested:
/// (stage, field, the nested config that holds it now).
const MOVED: [(&str, &str, &str); 7] = [
    ("autoencoder", "channels", "network"),
    ("autoencoder", "latent_channels", "network"),
    ("autoencoder", "input_noise_factor", "network"),
    ("autoencoder", "latent_noise_factor", "network"),
    ("diffusion", "channels", "denoiser"),
    ("diffusion", "blocks", "denoiser"),
    ("diffusion", "time_dim", "denoiser"),
];

/// Fields every run file g2d has written names, per object: one that has all of them was written
/// out whole, not typed by hand, so a setting added after them that it lacks was off.
const WRITTEN_COLLECT: [&str; 6] = [
    "scope",
    "pretrain_steps",
    "batch_size",
    "checkpoints",
    "save_every",
    "collect_lr",
];
const WRITTEN_VULNERABILITY: [&str; 3] = ["weight", "attack", "warmup_steps"];
const WRITTEN_AUTOENCODER: [&str; 3] = ["steps", "batch_size", "lr"];
const WRITTEN_DIFFUSION: [&str; 2] = ["task_weight", "vulnerability_bank"];

/// Whether `object` names every one of `fields`: written out whole by g2d.
fn written_whole(object: &Map<String, Value>, fields: &[&str]) -> bool {
    fields.iter().all(|k| object.contains_key(*k))
}

/// Moves the flat network fields of an older run file into their nested configs, reads a run
/// file written before `collect.vulnerability`, `autoencoder.centre_runs` or
/// `diffusion.cross_weight` existed with that setting off, as it ran (and a vulnerability
/// object that left `from_target` out, as g2d wrote it when false, with it false), and the
/// cross term's attack of two settings as the attack it was.
pub fn migrate(file: &mut Value) {
    if let Some(Value::Object(collect)) = file.get_mut("collect") {
        if written_whole(collect, &WRITTEN_COLLECT) {
            collect.entry("vulnerability").or_insert(Value::Null);
        }
        if let Some(Value::Object(v)) = collect.get_mut("vulnerability") {
            if written_whole(v, &WRITTEN_VULNERABILITY) {
                v.entry("from_target").or_insert(false.into());
            }
        }
    }
    if let Some(Value::Object(autoencoder)) = file.get_mut("autoencoder") {
        if written_whole(autoencoder, &WRITTEN_AUTOENCODER) {
            autoencoder.entry("centre_runs").or_insert(false.into());
        }
    }
    if let Some(Value::Object(diffusion)) = file.get_mut("diffusion") {
        if written_whole(diffusion, &WRITTEN_DIFFUSION) {
            diffusion.entry("cross_weight").or_insert(0.0.into());
        }
        migrate_cross_attack(diffusion);
    }
    for (stage, field, nested) in MOVED {
        let Some(Value::Object(stage)) = file.get_mut(stage) else {
            continue;
        };
        let Some(value) = stage.remove(field) else {
            continue;
        };
        let into = stage
            .entry(nested)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(into) = into {
            into.entry(field).or_insert(value);
        }
    }
}

/// `diffusion.cross_epsilon` and `diffusion.cross_steps`, the cross term's attack before it was
/// a [`LinfAttack`](crate::attacks::LinfAttack), as `diffusion.cross_attack`: from the clean
/// images, one step of ε (FGSM) or k steps of 2.5·ε/k. Values that are not an ε and a step
/// count stay where they are, for the overlay to refuse with their path.
fn migrate_cross_attack(diffusion: &mut Map<String, Value>) {
    let (epsilon, steps) = (diffusion.get("cross_epsilon"), diffusion.get("cross_steps"));
    if diffusion.contains_key("cross_attack") || (epsilon.is_none() && steps.is_none()) {
        return;
    }
    // An absent one held its default then: ε = 0.1, one step.
    let (Some(epsilon), Some(steps)) = (
        epsilon.map_or(Some(0.1), Value::as_f64),
        steps.map_or(Some(1), Value::as_u64),
    ) else {
        return;
    };
    let epsilon = epsilon as f32;
    let step_size = match steps {
        1 => epsilon,
        k => 2.5 * epsilon / k as f32,
    };
    diffusion.remove("cross_epsilon");
    diffusion.remove("cross_steps");
    diffusion.insert(
        "cross_attack".into(),
        serde_json::json!({
            "epsilon": epsilon, "step_size": step_size, "steps": steps, "random_start": false
        }),
    );
}

/// `file` laid over `defaults`: objects merge key by key; anything else (numbers, lists, null,
/// and an enum object whose `kind` differs from the default's) replaces the default. A key
/// the defaults lack is an error naming its path.
pub fn overlay(defaults: &mut Value, file: Value, path: &str) -> Result<(), String> {
    let (Value::Object(base), Value::Object(fields)) = (&mut *defaults, &file) else {
        *defaults = file;
        return Ok(());
    };
    if fields
        .get("kind")
        .is_some_and(|k| base.get("kind") != Some(k))
    {
        *defaults = file;
        return Ok(());
    }
    let Value::Object(fields) = file else {
        unreachable!("matched as an object above")
    };
    for (key, value) in fields {
        let at = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let Some(slot) = base.get_mut(&key) else {
            let known: Vec<&str> = base.keys().map(String::as_str).collect();
            return Err(format!(
                "unknown setting `{at}` (settings there: {})",
                known.join(", ")
            ));
        };
        overlay(slot, value, &at)?;
    }
    Ok(())
}

impl Serialize for RunConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RunConfig::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for RunConfig {
    /// An older layout is migrated, then the file is laid over [`RunConfig::default`]. A CNN
    /// keeps only the function-space terms the file names (they need the MLP), and an imported
    /// model's runs start from it, uncentred, unless the file says otherwise
    /// ([`RunConfig::imported_runs`]).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut file = Value::deserialize(d)?;
        migrate(&mut file);
        let named: Vec<String> = match file.get("diffusion") {
            Some(Value::Object(d)) => d.keys().cloned().collect(),
            _ => Vec::new(),
        };
        // Where an imported model's runs start, and whether they are centred, as the file says.
        let from_target_named = file.pointer("/collect/vulnerability/from_target").is_some();
        let centre_named = file.pointer("/autoencoder/centre_runs").is_some();
        let mut config = serde_json::to_value(RunConfig::default()).map_err(D::Error::custom)?;
        overlay(&mut config, file, "").map_err(D::Error::custom)?;
        let mut config = RunConfig::deserialize(config).map_err(D::Error::custom)?;
        if config.collect.arch != crate::classifier::Arch::Mlp {
            config
                .diffusion
                .default_terms_off(|field| named.iter().any(|k| k == field));
        }
        if config.collect.init.is_some() {
            config.imported_runs(from_target_named, centre_named);
        }
        Ok(config)
    }
}

/// Configs compare as what they write: burn's optimizer configs have no `PartialEq`.
impl PartialEq for RunConfig {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::LinfAttack;

    fn read(text: &str) -> Result<RunConfig, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_file_changes_only_what_it_names() {
        let c = read(
            r#"{"diffusion": {"denoiser": {"channels": 32}, "optimizer": {"epsilon": 1e-8}}}"#,
        )
        .unwrap();
        let mut expected = RunConfig::default();
        expected.diffusion.denoiser.channels = 32;
        expected.diffusion.optimizer = expected.diffusion.optimizer.with_epsilon(1e-8);
        assert_eq!(c, expected);
        assert_ne!(c, RunConfig::default());
        assert_eq!(read("{}").unwrap(), RunConfig::default());
        // A sampler of another kind replaces the default's fields instead of joining them.
        let c =
            read(r#"{"generate": {"sampler": {"kind": "dpm-solver++", "steps": 10}}}"#).unwrap();
        let dpm = crate::diffusion::sampler::SamplerConfig::DpmSolver { steps: 10 };
        assert_eq!(c.generate.sampler, dpm);
    }

    #[test]
    fn a_setting_that_does_not_exist_is_refused_with_its_path() {
        let err = read(r#"{"autoencoder": {"network": {"chanels": [8]}}}"#).unwrap_err();
        assert!(err.contains("`autoencoder.network.chanels`"), "{err}");
        assert!(err.contains("latent_channels"), "{err}");
        // Derived fields are not settings: the pipeline sets them.
        let err = read(r#"{"autoencoder": {"network": {"param_len": 5}}}"#).unwrap_err();
        assert!(err.contains("`autoencoder.network.param_len`"), "{err}");
        let err = read(r#"{"diffusion": {"denoiser": {"latent_channels": 5}}}"#).unwrap_err();
        assert!(
            err.contains("`diffusion.denoiser.latent_channels`"),
            "{err}"
        );
    }

    #[test]
    fn the_file_round_trips_without_derived_fields() {
        let mut c = RunConfig::default();
        c.autoencoder.network.channels = vec![8, 16, 32];
        c.autoencoder.fold = Some(4);
        c.diffusion.denoiser.blocks = 3;
        let text = serde_json::to_string(&c).unwrap();
        for derived in ["param_len", "latent_channels\":0", "\"fold\":0"] {
            assert!(!text.contains(derived), "{derived} written: {text}");
        }
        assert_eq!(read(&text).unwrap(), c);
        assert_eq!(c.autoencoder.model(1000).fold, 4);
        assert_eq!(c.autoencoder.model(1000).param_len, 1000);
        assert_eq!(c.diffusion.denoiser(6).latent_channels, 6);
    }

    #[test]
    fn a_run_file_from_before_the_cross_term_reads_with_it_off_and_a_cnn_file_without_the_defaults()
    {
        let mut written = serde_json::to_value(RunConfig::base()).unwrap();
        written["diffusion"]
            .as_object_mut()
            .unwrap()
            .remove("cross_weight");
        let c = read(&written.to_string()).unwrap();
        assert_eq!(
            (c.diffusion.task_weight, c.diffusion.cross_weight),
            (0.0, 0.0)
        );
        // Typed by hand, without the weights: today's defaults.
        let typed = read(r#"{"diffusion": {"steps": 9}}"#).unwrap();
        assert_eq!(
            (typed.diffusion.task_weight, typed.diffusion.cross_weight),
            (1.0, 10.0)
        );
        // A CNN keeps only the terms its file names.
        let cnn =
            read(r#"{"collect": {"arch": "cnn"}, "diffusion": {"cross_weight": 2}}"#).unwrap();
        assert_eq!(
            (cnn.diffusion.task_weight, cnn.diffusion.cross_weight),
            (0.0, 2.0)
        );
    }

    #[test]
    fn the_cross_terms_two_settings_read_as_the_attack_they_ran() {
        let fgsm = read(r#"{"diffusion": {"cross_epsilon": 0.1, "cross_steps": 1}}"#).unwrap();
        assert_eq!(fgsm.diffusion.cross_attack, LinfAttack::fgsm(0.1));
        assert_eq!(fgsm, RunConfig::default());
        let pgd = read(r#"{"diffusion": {"cross_epsilon": 0.05, "cross_steps": 5}}"#).unwrap();
        let want = LinfAttack {
            epsilon: 0.05,
            step_size: 2.5 * 0.05 / 5.0,
            steps: 5,
            random_start: false,
        };
        assert_eq!(pgd.diffusion.cross_attack, want);
        let steps_only = read(r#"{"diffusion": {"cross_steps": 4}}"#).unwrap();
        assert_eq!(steps_only.diffusion.cross_attack.epsilon, 0.1);
        assert_eq!(steps_only.diffusion.cross_attack.step_size, 2.5 * 0.1 / 4.0);
        // What is not an ε and a step count is refused where it stands.
        let err = read(r#"{"diffusion": {"cross_steps": 2.5}}"#).unwrap_err();
        assert!(err.contains("`diffusion.cross_steps`"), "{err}");
    }

    #[test]
    fn an_older_flat_file_reads_as_it_was_written() {
        let old = r#"{
            "autoencoder": {"fold": null, "channels": [16], "latent_channels": 2,
                            "input_noise_factor": 0.01, "latent_noise_factor": 0.2,
                            "steps": 7, "batch_size": 50, "lr": 0.001},
            "diffusion": {"channels": 32, "blocks": 3, "time_dim": 16, "steps": 9}
        }"#;
        let c = read(old).unwrap();
        let network = &c.autoencoder.network;
        assert_eq!(network.channels, vec![16]);
        assert_eq!(network.latent_channels, 2);
        assert_eq!(network.input_noise_factor, 0.01);
        assert_eq!(network.latent_noise_factor, 0.2);
        assert_eq!(c.autoencoder.steps, 7);
        let denoiser = &c.diffusion.denoiser;
        assert_eq!(
            (denoiser.channels, denoiser.blocks, denoiser.time_dim),
            (32, 3, 16)
        );
        assert_eq!(c.diffusion.steps, 9);
    }

    #[test]
    fn every_collect_vulnerability_setting_reads_back_as_written() {
        let mut c = RunConfig::default();
        let v = c.collect.vulnerability.as_mut().unwrap();
        assert!(!v.from_target);
        v.warmup_steps = 900;
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(read(&text).unwrap(), c);
        let mut from_target = c.clone();
        from_target
            .collect
            .vulnerability
            .as_mut()
            .unwrap()
            .from_target = true;
        assert_eq!(
            read(&serde_json::to_string(&from_target).unwrap()).unwrap(),
            from_target
        );
        // Fresh starts keep the key they had before `from_target` was a setting.
        assert_ne!(from_target.collect_key(), c.collect_key());
        let written = serde_json::to_value(&c.collect).unwrap();
        assert_eq!(written["vulnerability"]["from_target"], false);
        // What the threat study's away-all run (full MNIST, one run at weight 1, the collect
        // defaults then) recorded; with one run, where the runs start changes nothing.
        let mut away_all = RunConfig::default();
        away_all.data.source = crate::pipeline::sources::DataSource::Mnist;
        away_all.collect.pretrain_steps = 2000;
        away_all.collect.seeds = 1;
        away_all.collect.adversarial = None;
        away_all.collect.vulnerability.as_mut().unwrap().weight = 1.0;
        let key = "95e9b6f5e1951b5cbd8513b7ef2574bfcc493677dceb1cb79631244cbc35cac6";
        assert_eq!(away_all.collect_key(), key);
    }

    #[test]
    fn aligned_runs_read_back_and_have_their_own_key() {
        let mut c = RunConfig::default();
        let plain = c.collect_key();
        c.collect.align_runs = true;
        assert_eq!(read(&serde_json::to_string(&c).unwrap()).unwrap(), c);
        assert_ne!(c.collect_key(), plain);
    }

    #[test]
    fn runs_collected_before_the_optimizer_was_a_setting_keep_their_key() {
        // What the embedded run's target.safetensors recorded when the default was the last
        // two layers without the vulnerability term.
        let key = "c89581f618b99ec399e9843314392cae33e74d4576c247345ebc3988b806b0af";
        let old = RunConfig::base();
        assert_eq!(old.collect_key(), key);
        assert_ne!(RunConfig::default().collect_key(), key);
        let mut c = old.clone();
        c.collect.optimizer = c.collect.optimizer.with_weight_decay(1e-4);
        assert_ne!(c.collect_key(), key);

        // Its config.json, written before `collect.vulnerability` existed, reads as it ran.
        let mut file = serde_json::to_value(&old).unwrap();
        file["collect"]
            .as_object_mut()
            .unwrap()
            .remove("vulnerability");
        let read_back: RunConfig = serde_json::from_value(file).unwrap();
        assert_eq!(read_back.collect.vulnerability, None);
        assert_eq!(read_back.collect_key(), key);
        // A hand-written file that names only some collect settings gets today's default.
        let partial = read(r#"{"collect": {"checkpoints": 50}}"#).unwrap();
        assert!(partial.collect.vulnerability.is_some());
    }

    #[test]
    fn an_imported_models_runs_descend_from_it_unless_the_file_says_otherwise() {
        let runs = |text: &str| {
            let c = read(text).unwrap();
            (
                c.collect.vulnerability.unwrap().from_target,
                c.autoencoder.centre_runs,
            )
        };
        assert_eq!(
            runs(r#"{"collect": {"init": "m.safetensors"}}"#),
            (true, false)
        );
        let named = r#"{"collect": {"init": "m.safetensors", "vulnerability": {"weight": 0.3,
            "attack": {"epsilon": 0.1, "step_size": 0.025, "steps": 10, "random_start": true},
            "warmup_steps": 500, "from_target": false}}, "autoencoder": {"centre_runs": true}}"#;
        assert_eq!(runs(named), (false, true));
        assert_eq!(runs("{}"), (false, true));
        // A vulnerability object written whole without `from_target` (left out when false, as
        // g2d wrote it before) keeps its runs apart, and so centred.
        let written = named.replace(r#", "from_target": false"#, "");
        let written = written.replace(r#", "autoencoder": {"centre_runs": true}"#, "");
        assert_eq!(runs(&written), (false, true));
    }

    #[test]
    fn a_run_file_written_before_run_centres_reads_with_them_off() {
        // Written whole, as every run file g2d wrote before `centre_runs` existed.
        let mut file = serde_json::to_value(RunConfig::default()).unwrap();
        file["autoencoder"]
            .as_object_mut()
            .unwrap()
            .remove("centre_runs");
        let read_back: RunConfig = serde_json::from_value(file).unwrap();
        assert!(!read_back.autoencoder.centre_runs);
        // A hand-written file that names some autoencoder settings gets today's default.
        assert!(
            read(r#"{"autoencoder": {"steps": 50}}"#)
                .unwrap()
                .autoencoder
                .centre_runs
        );
    }
}
