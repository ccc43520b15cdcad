//! `g2d report`: the ablations and attacks behind the README's figures, run from one command.
//!
//! The run's configuration is the base. The report trains and evaluates it for every λ of the
//! plan, then one variant per other regenerated scope, K and pair of noise factors (each with
//! λ = 0 and the base λ), attacks the base and scope variants (PGD transfer; SimBA, as
//! published and adaptive, against a static or rotating model), ranks (scope, λ) by accuracy
//! and measured attack success, and writes `report.json`, `report.md`, SVG plots and an `index.html` that shows them.
//!
//! ```text
//! RUN/                      the base variant (same layout as `g2d pipeline`)
//! RUN/ablation-NAME/        one run directory per variant
//! RUN/…/report-part.json    a variant's results, reused while its config and plan are unchanged
//! OUT/report.json, report.md, *.svg, index.html
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::evaluate::{Evaluation, ModelScore};
use super::query_attack::{attack_run, Attacker, Policy, QueryAttackPlan, QueryAttackReport};
use super::stages::{lambda_tag, Run};
use super::transfer::{transfer, TransferReport};
use crate::attacks::LinfAttack;
use crate::data::Splits;
use crate::error::{G2dError, Result};
use crate::params::Scope;

/// What `g2d report` runs beside the base configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportPlan {
    /// The λ ablation on the base variant (0 and the base λ are always added).
    pub lambdas: Vec<f32>,
    /// Regenerated scopes compared with the base's.
    pub scopes: Vec<Scope>,
    /// Values of K compared with the base's.
    pub checkpoint_counts: Vec<usize>,
    /// (input, latent) noise factors of the autoencoder compared with the base's.
    pub noise_factors: Vec<(f32, f32)>,
    /// The transfer attack (crafted on each variant's θ_orig).
    pub transfer: TransferPlan,
    /// SimBA against the θ_orig of the base and scope variants, static and regenerated.
    pub query: QueryAttackPlan,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferPlan {
    pub attack: LinfAttack,
    pub inputs: usize,
    /// Guard-accepted generated models (and checkpoints) attacked per group.
    pub models: usize,
    /// Targets retrained from other seeds (base variant only).
    pub retrained: usize,
}

impl Default for ReportPlan {
    fn default() -> Self {
        Self {
            lambdas: vec![0.0, 1.0, 2.0, 3.0, 6.0],
            scopes: vec![Scope::Last, Scope::LastTwo, Scope::All],
            checkpoint_counts: vec![50, 100],
            noise_factors: vec![(0.0, 0.0), (0.01, 0.5)],
            transfer: TransferPlan {
                attack: LinfAttack::pgd(0.1, 40),
                inputs: 500,
                models: 20,
                retrained: 3,
            },
            query: QueryAttackPlan {
                epsilon: 0.2,
                budget: 1000,
                every: vec![100, 10, 1],
                per_session: true,
                adaptive: true,
                inputs: 300,
                pool: 20,
            },
        }
    }
}

/// Which ablation a variant belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ablation {
    Base,
    Scope,
    Checkpoints,
    Noise,
}

/// One trained and evaluated configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub ablation: Ablation,
    pub dir: PathBuf,
    pub config: RunConfig,
    /// What this variant ran (its part of the plan); a change re-runs it.
    pub lambdas: Vec<f32>,
    pub transfer_plan: Option<TransferPlan>,
    pub query_plan: Option<QueryAttackPlan>,
    /// Regenerated parameters and the autoencoder's fold.
    pub regenerated: usize,
    pub fold: usize,
    pub reconstruction_mse: f64,
    /// One evaluation per λ, in `lambdas` order.
    pub evaluations: Vec<Evaluation>,
    pub transfer: Option<TransferReport>,
    /// SimBA against pools of each λ.
    pub query: Vec<QueryAttackReport>,
    /// Wall-clock time of collection, training and evaluation.
    pub train_seconds: f64,
    /// Wall-clock time of the transfer attack and of the query attacks (each as last run).
    pub transfer_seconds: f64,
    pub query_seconds: f64,
}

impl Variant {
    /// What this variant costs from scratch.
    pub fn seconds(&self) -> f64 {
        self.train_seconds + self.transfer_seconds + self.query_seconds
    }

    pub fn evaluation(&self, lambda: f32) -> Option<&Evaluation> {
        self.evaluations.iter().find(|e| e.lambda == lambda)
    }

    /// Mean PGD success on the guard-accepted generated models of λ.
    pub fn transfer_success(&self, lambda: f32) -> Option<f64> {
        let t = self.transfer.as_ref()?;
        t.rows
            .iter()
            .find(|r| r.lambda == Some(lambda))
            .map(|r| r.attack_success.mean)
    }

    /// SimBA's success within the budget against the pool of λ rotated every N queries, for
    /// the smallest N of the plan (the defender's strongest rotation).
    pub fn query_success(&self, lambda: f32) -> Option<f64> {
        self.query_success_by(lambda, Attacker::Simba)
    }

    /// The same for a given attacker.
    pub fn query_success_by(&self, lambda: f32, attacker: Attacker) -> Option<f64> {
        let q = self.query.iter().find(|q| q.lambda == lambda)?;
        q.rows
            .iter()
            .filter(|r| r.attacker == attacker)
            .filter_map(|r| match r.policy {
                Policy::EveryN(n) => Some((n, r.success_rate)),
                _ => None,
            })
            .min_by_key(|&(n, _)| n)
            .map(|(_, s)| s)
    }

    /// PGD success on θ_orig itself (white box).
    pub fn white_box_success(&self) -> Option<f64> {
        Some(self.transfer.as_ref()?.rows.first()?.attack_success.mean)
    }

    /// Mean PGD success on the retrained targets.
    pub fn retrained_success(&self) -> Option<f64> {
        let t = self.transfer.as_ref()?;
        t.rows
            .iter()
            .find(|r| r.models.starts_with("retrained"))
            .map(|r| r.attack_success.mean)
    }
}

/// Everything the report shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The command that wrote it.
    pub command: String,
    pub data: String,
    pub base_lambda: f32,
    pub plan: ReportPlan,
    /// The base first, then the variants in plan order.
    pub variants: Vec<Variant>,
    pub recommendation: Option<Recommendation>,
    pub seconds: f64,
}

/// The variant and λ the report ranks first, and why (`reason`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recommendation {
    pub variant: String,
    pub lambda: f32,
    pub median_drop_pt: f64,
    pub transfer_success: Option<f64>,
    pub query_success: Option<f64>,
    pub l1_to_original: f64,
    pub reason: String,
}

impl Report {
    pub fn base(&self) -> &Variant {
        &self.variants[0]
    }

    /// λ = 0 (p-diff) and the base λ, the pair every variant trains.
    pub fn compared_lambdas(&self) -> Vec<f32> {
        compared_lambdas(self.base_lambda)
    }

    pub fn original_test_accuracy(&self) -> f64 {
        self.base()
            .evaluations
            .first()
            .map_or(f64::NAN, |e| e.original_test_accuracy)
    }
}

/// The accuracy targets of the native pipeline: median within 0.5 pt of θ_orig (the transfer
/// target's cost bound) and every guard-accepted model within 1 pt.
pub fn meets_accuracy_targets(e: &Evaluation) -> bool {
    let floor = e.original_test_accuracy;
    e.generated_test_accuracy.median >= floor - 0.005
        && e.accepted_test_accuracy
            .is_some_and(|a| a.min >= floor - 0.01)
}

/// Transfer successes closer than this count as a tie (they are means over 20 models and a few
/// hundred inputs).
const TRANSFER_TIE: f64 = 0.02;

/// L1 to θ_orig in units of the checkpoints' own spread: comparable across scopes.
fn relative_l1(e: &Evaluation) -> f64 {
    e.checkpoint_l1_to_original
        .map_or(f64::NAN, |c| e.l1_to_original.mean / c.mean)
}

/// Mean success of the two SimBA attackers (as published, and adaptive when it ran) against
/// the fastest rotation of λ's pool: the defence the report ranks by.
fn query_defence(v: &Variant, lambda: f32) -> Option<f64> {
    let naive = v.query_success(lambda)?;
    Some(match v.query_success_by(lambda, Attacker::SimbaPaired) {
        Some(adaptive) => (naive + adaptive) / 2.0,
        None => naive,
    })
}

fn recommend(variants: &[Variant]) -> Option<Recommendation> {
    let candidates: Vec<(&Variant, &Evaluation)> = variants
        .iter()
        .filter(|v| matches!(v.ablation, Ablation::Base | Ablation::Scope))
        .flat_map(|v| v.evaluations.iter().map(move |e| (v, e)))
        .filter(|(_, e)| meets_accuracy_targets(e))
        .collect();
    let unknown = f64::INFINITY;
    let transfer =
        |(v, e): &&(&Variant, &Evaluation)| v.transfer_success(e.lambda).unwrap_or(unknown);
    let query = |(v, e): &&(&Variant, &Evaluation)| query_defence(v, e.lambda).unwrap_or(unknown);
    let best_transfer = candidates
        .iter()
        .map(|c| transfer(&c))
        .fold(unknown, f64::min);
    let shortlist: Vec<&(&Variant, &Evaluation)> = candidates
        .iter()
        .filter(|c| transfer(c) <= best_transfer + TRANSFER_TIE)
        .collect();
    let (v, e) = shortlist
        .into_iter()
        .min_by(|a, b| query(a).total_cmp(&query(b)))?;
    Some(Recommendation {
        variant: v.name.clone(),
        lambda: e.lambda,
        median_drop_pt: (e.original_test_accuracy - e.generated_test_accuracy.median) * 100.0,
        transfer_success: v.transfer_success(e.lambda),
        query_success: query_defence(v, e.lambda),
        l1_to_original: e.l1_to_original.mean,
        reason: format!(
            "of the (scope, λ) pairs whose median stays within 0.5 pt of θ_orig and whose guard-accepted models all stay within 1 pt, and whose PGD transfer success is within {:.0} pt of the lowest, the one with the lowest SimBA success (mean of the published and the adaptive attacker) under the fastest rotation",
            TRANSFER_TIE * 100.0,
        ),
    })
}

/// A variant to run: its name, ablation, directory and configuration.
struct Spec {
    name: String,
    ablation: Ablation,
    dir: PathBuf,
    config: RunConfig,
    lambdas: Vec<f32>,
    transfer: Option<TransferPlan>,
    query: Option<QueryAttackPlan>,
}

/// λ = 0 (p-diff) and `lambda`, once each.
pub fn compared_lambdas(lambda: f32) -> Vec<f32> {
    let mut pair = vec![0.0, lambda];
    pair.dedup();
    pair
}

fn specs(dir: &Path, base: &RunConfig, plan: &ReportPlan) -> Vec<Spec> {
    let lambda = base.diffusion.lambda_l1;
    let pair = compared_lambdas(lambda);
    let mut base_lambdas = pair.clone();
    for &l in &plan.lambdas {
        if !base_lambdas.contains(&l) {
            base_lambdas.push(l);
        }
    }
    let mut out = vec![Spec {
        name: "base".into(),
        ablation: Ablation::Base,
        dir: dir.to_path_buf(),
        config: base.clone(),
        lambdas: base_lambdas,
        transfer: Some(plan.transfer.clone()),
        query: Some(plan.query.clone()),
    }];
    let variant = |name: String, ablation, config: RunConfig, attacked: bool| Spec {
        dir: dir.join(format!("ablation-{name}")),
        name,
        ablation,
        config,
        lambdas: pair.clone(),
        transfer: attacked.then(|| TransferPlan {
            retrained: 0,
            ..plan.transfer.clone()
        }),
        query: attacked.then(|| plan.query.clone()),
    };
    for &scope in plan.scopes.iter().filter(|&&s| s != base.collect.scope) {
        let mut c = base.clone();
        c.collect.scope = scope;
        out.push(variant(format!("scope-{scope}"), Ablation::Scope, c, true));
    }
    for &k in plan
        .checkpoint_counts
        .iter()
        .filter(|&&k| k != base.collect.checkpoints)
    {
        // The same stretch of training, sampled by fewer or more checkpoints.
        let mut c = base.clone();
        c.collect.checkpoints = k;
        c.collect.save_every = (base.collect.save_every * base.collect.checkpoints / k).max(1);
        out.push(variant(format!("K-{k}"), Ablation::Checkpoints, c, false));
    }
    let base_noise = (
        base.autoencoder.input_noise_factor,
        base.autoencoder.latent_noise_factor,
    );
    for &(input, latent) in plan.noise_factors.iter().filter(|&&n| n != base_noise) {
        let mut c = base.clone();
        c.autoencoder.input_noise_factor = input;
        c.autoencoder.latent_noise_factor = latent;
        out.push(variant(
            format!("noise-{input}-{latent}"),
            Ablation::Noise,
            c,
            false,
        ));
    }
    for s in &mut out {
        s.config.diffusion.lambda_l1 = lambda;
        s.config.diffusion.sweep.clear();
    }
    out
}

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
            std::fs::write(&path, text).map_err(|e| G2dError::io(&path, e))?;
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

/// Writes `report.json`, `report.md`, the plots and `index.html` into `out`.
pub fn write(report: &Report, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| G2dError::io(out, e))?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| G2dError::io(&path, e))?;
        written.push(path);
        Ok(())
    };
    put(
        "report.json",
        serde_json::to_string_pretty(report).expect("report serialises"),
    )?;
    put("report.md", markdown(report))?;
    for (name, svg) in super::plots::all(report)? {
        put(name, svg)?;
    }
    put("index.html", html(report))?;
    Ok(written)
}

fn pct(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}", v * 100.0))
}

/// The headline table: every (variant, λ) with accuracy, distance and attack figures.
pub fn headline(report: &Report) -> String {
    let mut out = String::from(
        "| variant | regenerated | λ | θ_orig test acc. | median test acc. (Δ pt) | accepted | worst accepted (Δ pt) | L1 to θ_orig (× checkpoints') | agreement / wrong-IoU with θ_orig | PGD transfer success (%) | SimBA success, fastest rotation (%) | adaptive SimBA, same (%) | meets accuracy targets |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for v in &report.variants {
        let mut evaluations: Vec<&Evaluation> = v.evaluations.iter().collect();
        evaluations.sort_by(|a, b| a.lambda.total_cmp(&b.lambda));
        for e in evaluations {
            let o = e.original_test_accuracy;
            out += &format!(
                "| {} | {} ({}) | {} | {} | {} ({:+.2}) | {:.0}% | {} | {:.5} ({:.2}×) | {:.3} / {:.3} | {} | {} | {} | {} |\n",
                v.name,
                v.regenerated,
                v.config.collect.scope,
                lambda_tag(e.lambda),
                pct(o),
                pct(e.generated_test_accuracy.median),
                (e.generated_test_accuracy.median - o) * 100.0,
                e.accepted_fraction * 100.0,
                e.accepted_test_accuracy.map_or("–".into(), |a| format!(
                    "{} ({:+.2})",
                    pct(a.min),
                    (a.min - o) * 100.0
                )),
                e.l1_to_original.mean,
                relative_l1(e),
                e.agreement_with_original.mean,
                e.wrong_iou_with_original.mean,
                opt_pct(v.transfer_success(e.lambda)),
                opt_pct(v.query_success(e.lambda)),
                opt_pct(v.query_success_by(e.lambda, Attacker::SimbaPaired)),
                if meets_accuracy_targets(e) {
                    "yes"
                } else {
                    "no"
                },
            );
        }
    }
    out
}

/// The two attack targets of the issue, each with whether it is met.
pub fn targets(report: &Report) -> String {
    let base = report.base();
    let lambda = report.base_lambda;
    let mut out = String::new();
    if let (Some(s), Some(e)) = (base.transfer_success(lambda), base.evaluation(lambda)) {
        let cost = (e.original_test_accuracy - e.generated_test_accuracy.median) * 100.0;
        out += &format!(
            "- PGD ε = {} transfer to guard-accepted regenerated models (λ = {}): {:.1}% success (target ≤ 20%), median clean cost {:.2} pt (target ≤ 0.5 pt): **{}**.\n",
            base.transfer_plan.as_ref().map_or(0.0, |t| t.attack.epsilon),
            lambda_tag(lambda),
            s * 100.0,
            cost,
            if s <= 0.2 && cost <= 0.5 { "met" } else { "not met" }
        );
    }
    for q in base.query.iter().filter(|q| q.lambda == lambda) {
        for stat in q.rows.iter().filter(|r| r.policy == Policy::Static) {
            for r in q
                .rows
                .iter()
                .filter(|r| r.attacker == stat.attacker && r.policy != Policy::Static)
            {
                let fall = stat.success_rate / r.success_rate.max(1e-9);
                out += &format!(
                "- {} at {} queries, λ = {} pool, {}: {:.0}% vs {:.0}% static, a {}× fall (target ≥ 5×): **{}**.\n",
                r.attacker,
                q.budget,
                lambda_tag(q.lambda),
                r.policy,
                r.success_rate * 100.0,
                stat.success_rate * 100.0,
                if r.success_rate == 0.0 { "∞".to_string() } else { format!("{fall:.1}") },
                if fall >= 5.0 { "met" } else { "not met" }
            );
            }
        }
    }
    out
}

fn markdown(report: &Report) -> String {
    let base = report.base();
    let mut out = format!(
        "# G2D report\n\nWritten by `{}` on {}. From scratch its variants take {:.0} s (training and evaluation {:.0} s, transfer attacks {:.0} s, query attacks {:.0} s); finished parts are reused. θ_orig test accuracy {}% (base); Δ is against each variant's own θ_orig.\n\n## All variants\n\n{}\n",
        report.command,
        report.data,
        report.variants.iter().map(Variant::seconds).sum::<f64>(),
        report.variants.iter().map(|v| v.train_seconds).sum::<f64>(),
        report.variants.iter().map(|v| v.transfer_seconds).sum::<f64>(),
        report.variants.iter().map(|v| v.query_seconds).sum::<f64>(),
        pct(report.original_test_accuracy()),
        headline(report)
    );
    out += "## Targets\n\n";
    out += &targets(report);
    if let Some(r) = &report.recommendation {
        out += &format!(
            "\n**Best trade-off**: {} with λ = {} — median −{:.2} pt, L1 {:.5}, PGD transfer {}%, SimBA (mean of both attackers) under the fastest rotation {}%. Rule: {}.\n",
            r.variant,
            lambda_tag(r.lambda),
            r.median_drop_pt,
            r.l1_to_original,
            opt_pct(r.transfer_success),
            opt_pct(r.query_success),
            r.reason
        );
    } else {
        out += "\nNo (scope, λ) pair meets the accuracy targets.\n";
    }
    if let Some(t) = &base.transfer {
        out += &format!("\n## Transfer (base)\n\n{}", super::transfer::table(t));
    }
    for v in report.variants.iter().skip(1) {
        if let Some(t) = &v.transfer {
            out += &format!(
                "\n### Transfer, {}\n\n{}",
                v.name,
                super::transfer::table(t)
            );
        }
    }
    for q in base
        .query
        .iter()
        .filter(|q| report.compared_lambdas().contains(&q.lambda))
    {
        out += &format!(
            "\n## Query attack, λ = {} pool\n\n{}",
            lambda_tag(q.lambda),
            super::query_attack::table(q)
        );
    }
    out += "\n## Plots\n\n";
    for (file, caption) in super::plots::CAPTIONS {
        out += &format!("![{caption}]({file})\n\n");
    }
    out
}

fn html(report: &Report) -> String {
    let mut figures = String::new();
    for (file, caption) in super::plots::CAPTIONS {
        figures += &format!(
            "<figure><img src=\"{file}\" alt=\"{caption}\"><figcaption>{caption}</figcaption></figure>\n"
        );
    }
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>G2D report</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}}img{{max-width:100%}}figure{{margin:1.5rem 0}}pre{{white-space:pre-wrap;background:#f5f5f5;padding:1rem}}</style></head>\n<body><h1>G2D report</h1><p><a href=\"../\">← demo</a> · <a href=\"report.md\">report.md</a> · <a href=\"report.json\">report.json</a></p>\n<p>Written by <code>{}</code> on {}.</p>\n{figures}<h2>Tables</h2><pre>{}</pre></body></html>\n",
        escape(&report.command),
        escape(&report.data),
        escape(&markdown(report))
    )
}

/// Per-model scores of the base variant's λ, for plots.
pub fn scores(report: &Report, lambda: f32) -> &[ModelScore] {
    report
        .base()
        .evaluation(lambda)
        .map_or(&[], |e| e.models.as_slice())
}
