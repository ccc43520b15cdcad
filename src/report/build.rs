//! Running the plan: each variant trained (or reused from its `report-part.json`), then
//! attacked as the plan asks.

use std::path::Path;

use super::model::{Report, Variant};
use super::plan::{specs, ReportPlan, Spec};
use super::rank::recommend;
use crate::data::Splits;
use crate::defense::query_attack::attack_run;
use crate::defense::transfer::transfer;
use crate::error::Result;
use crate::pipeline::artifacts::write_atomic;
use crate::pipeline::config::RunConfig;
use crate::pipeline::run::Run;

const PART: &str = "report-part.json";

/// A saved result whose trained models still match the spec (its attacks may not).
fn cached(spec: &Spec) -> Option<Variant> {
    let path = spec.dir.join(PART);
    let text = std::fs::read_to_string(&path).ok()?;
    let v: Variant = serde_json::from_str(&text)
        .map_err(|e| eprintln!("report: {} unreadable ({e}); running again", path.display()))
        .ok()?;
    (v.config == spec.config && v.lambdas == spec.lambdas).then_some(v)
}

/// A variant's run directory, with its data loaded on first use: training and attacks share it.
struct Workspace {
    run: Run,
    splits: Option<Splits>,
}

impl Workspace {
    fn new(spec: &Spec, device: &burn::prelude::Device) -> Result<Workspace> {
        Ok(Workspace {
            run: Run::new(&spec.dir, spec.config.clone(), device.clone())?,
            splits: None,
        })
    }

    fn open(&mut self) -> Result<(&Run, &Splits)> {
        if self.splits.is_none() {
            self.splits = Some(self.run.splits()?);
        }
        Ok((&self.run, self.splits.as_ref().expect("loaded above")))
    }
}

/// Trains and evaluates a variant; its attacks come after ([`attack`]).
fn train(spec: &Spec, ws: &mut Workspace, base: &Run) -> Result<Variant> {
    let started = std::time::Instant::now();
    let (run, splits) = ws.open()?;
    eprintln!(
        "report: variant {} ({}) in {}",
        spec.name,
        spec.config.collect.scope,
        spec.dir.display()
    );
    // adopt_collection refuses the base's own directory, so the base collects.
    let collected = match run.adopt_collection(base)? {
        Some(info) => info,
        None => run.collect()?,
    };
    let ae = run.train_ae()?;
    let mut evaluations = Vec::new();
    for &lambda in &spec.lambdas {
        run.train_diffusion(lambda)?;
        let bundle = run.export(lambda, splits)?;
        evaluations.push(run.evaluate(&bundle, splits)?);
    }
    Ok(Variant {
        name: spec.name.clone(),
        ablation: spec.ablation,
        dir: spec.dir.clone(),
        config: spec.config.clone(),
        lambdas: spec.lambdas.clone(),
        transfer_plan: None,
        query_plan: None,
        regenerated: collected.regenerated.len(),
        fold: ae.config.fold,
        reconstruction_mse: ae.reconstruction_mse,
        evaluations,
        transfer: None,
        query: Vec::new(),
        train_seconds: started.elapsed().as_secs_f64(),
        transfer_seconds: 0.0,
        query_seconds: 0.0,
    })
}

/// Runs the attacks the spec asks for and the variant does not have yet (a changed plan runs
/// its attack again; the query attack also runs for any λ it lacks). Returns whether it ran any.
fn attack(v: &mut Variant, spec: &Spec, ws: &mut Workspace) -> Result<bool> {
    if v.query_plan != spec.query {
        v.query.clear();
        v.query_seconds = 0.0;
        v.query_plan = spec.query.clone();
    }
    let missing: Vec<f32> = match &spec.query {
        Some(_) => spec
            .lambdas
            .iter()
            .copied()
            .filter(|&l| !v.query.iter().any(|q| q.lambda == l))
            .collect(),
        None => Vec::new(),
    };
    if v.transfer_plan == spec.transfer && missing.is_empty() {
        return Ok(false);
    }
    let (run, splits) = ws.open()?;
    if v.transfer_plan != spec.transfer {
        let started = std::time::Instant::now();
        v.transfer = match &spec.transfer {
            Some(t) => Some(transfer(
                run,
                splits,
                t.attack,
                t.inputs,
                t.models,
                &spec.lambdas,
                t.retrained,
            )?),
            None => None,
        };
        v.transfer_plan = spec.transfer.clone();
        v.transfer_seconds = started.elapsed().as_secs_f64();
    }
    if let Some(q) = &spec.query {
        for lambda in missing {
            let started = std::time::Instant::now();
            v.query.push(attack_run(run, splits, lambda, q)?);
            v.query_seconds += started.elapsed().as_secs_f64();
        }
    }
    Ok(true)
}

/// Runs (or reuses) every variant of the plan and returns the report. A variant's models are
/// reused while its configuration and λ values are unchanged, its attacks while their plans are.
pub fn build(
    dir: &Path,
    base: &RunConfig,
    plan: &ReportPlan,
    device: &burn::prelude::Device,
    command: String,
) -> Result<Report> {
    let started = std::time::Instant::now();
    let base_run = Run::new(dir, base.clone(), device.clone())?;
    let mut variants = Vec::new();
    for spec in specs(dir, base, plan) {
        let path = spec.dir.join(PART);
        let mut ws = Workspace::new(&spec, device)?;
        let (mut v, mut changed) = match cached(&spec) {
            Some(v) => {
                eprintln!("report: reusing {}", path.display());
                (v, false)
            }
            None => (train(&spec, &mut ws, &base_run)?, true),
        };
        changed |= attack(&mut v, &spec, &mut ws)?;
        if changed {
            let text = serde_json::to_string_pretty(&v).expect("variant serialises");
            write_atomic(&path, text)?;
        }
        variants.push(v);
    }
    let data = base.data.source.name().to_string();
    Ok(Report {
        command,
        data,
        base_lambda: base.diffusion.lambda_l1,
        plan: plan.clone(),
        recommendation: recommend(&variants),
        variants,
        seconds: started.elapsed().as_secs_f64(),
    })
}
