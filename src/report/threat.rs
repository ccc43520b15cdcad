//! The threat study's files: `threat-model.json` (everything measured), `summary.json` (one
//! object per method at ε = 0.1 on test images), `threat-model.md` and `pareto.svg`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::plots;
use crate::defense::study::{MethodResult, ThreatStudy, HEADLINE_EPSILON};
use crate::defense::threat::AttackRates;
use crate::error::{G2dError, Result};
use crate::metrics::Rate;
use crate::pipeline::artifacts::write_atomic;

fn rate_json(epsilon: f32, r: &Rate) -> Value {
    // ε as written (0.1), not as its f32 widened to f64 (0.10000000149011612).
    let eps: f64 = format!("{epsilon}")
        .parse()
        .expect("a float prints as a float");
    json!({"eps": eps, "success": r.rate, "ci95": r.ci95, "n": r.n})
}

fn method_json(m: &MethodResult) -> Value {
    let mut v = json!({
        "name": m.name,
        "kind": m.kind,
        "run": m.run,
        "lambda": m.lambda,
        "models": m.models,
        "median_test_accuracy": m.median_test_accuracy,
        "original_test_accuracy": m.original_test_accuracy,
        "accepted_fraction": m.accepted_fraction,
        "l1_to_original": m.l1_to_original,
    });
    if let Some(r) = m.test_at(HEADLINE_EPSILON) {
        // The names: T1 transfers from the original, T2 across sessions, T3 is the
        // bundle holder's ensemble (EOT) of `ensemble` models.
        for (key, rate) in [
            ("white_box", &r.white_box),
            ("transfer_from_original", &r.t1),
            ("cross_session", &r.t2),
            ("eot_bundle", &r.t3),
        ] {
            v[key] = rate_json(r.epsilon, rate);
        }
        v["eot_bundle"]["ensemble"] = json!(r.eot_models);
    }
    v
}

/// `summary.json`: the headline figures of every method, the recommendation and its rule.
pub fn summary_json(study: &ThreatStudy) -> Value {
    let original = study
        .methods
        .iter()
        .find(|m| m.kind == crate::defense::populations::MethodKind::Static)
        .map(|m| m.median_test_accuracy);
    json!({
        "dataset": study.dataset,
        "selected_on": "validation",
        "selection_rule": study.rule,
        "theta_orig_test_accuracy": original,
        "recommended": study.recommended,
        "attack": {"kind": "pgd-linf", "steps": study.plan.pgd_steps, "random_start": true,
                   "images": study.plan.inputs, "split": "test"},
        "methods": study.methods.iter().map(method_json).collect::<Vec<_>>(),
    })
}

fn cell(r: &Rate) -> String {
    r.display_pct()
}

fn attack_table(study: &ThreatStudy, epsilon: f32) -> String {
    let mut out = String::from(
        "| method | kind | models | median test acc. (Δ pt) | accepted | L1 to θ_orig | white box | T1 leaked θ_orig | T2 cross-session | T3 bundle holder (m) |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in &study.methods {
        let Some(r): Option<&AttackRates> = m.test_at(epsilon) else {
            continue;
        };
        out += &format!(
            "| {}{} | {} | {} | {:.2} ({:+.2}) | {:.0}% | {} | {} | {} | {} | {} ({}) |\n",
            m.name,
            if study.recommended.as_deref() == Some(&m.name) {
                " **(recommended)**"
            } else {
                ""
            },
            crate::naming::name_of(&m.kind),
            m.models,
            m.median_test_accuracy * 100.0,
            (m.median_test_accuracy - m.original_test_accuracy) * 100.0,
            m.accepted_fraction * 100.0,
            m.l1_to_original.map_or("–".into(), |l| format!("{l:.5}")),
            cell(&r.white_box),
            cell(&r.t1),
            cell(&r.t2),
            cell(&r.t3),
            r.eot_models,
        );
    }
    out
}

fn memorisation_table(study: &ThreatStudy) -> String {
    let mut out = String::from(
        "| method | generated → nearest checkpoint, L1 (min / median) | checkpoint → nearest other checkpoint (min / median) |\n|---|---|---|\n",
    );
    for m in &study.methods {
        if let Some(mem) = &m.memorisation {
            out += &format!(
                "| {} | {:.5} / {:.5} | {:.5} / {:.5} |\n",
                m.name,
                mem.generated_to_nearest_checkpoint.min,
                mem.generated_to_nearest_checkpoint.median,
                mem.checkpoint_to_nearest_other.min,
                mem.checkpoint_to_nearest_other.median,
            );
        }
    }
    out
}

/// The study as Markdown: one table per ε, the memorisation check, the rule.
pub fn markdown(study: &ThreatStudy) -> String {
    let mut out = format!(
        "# G2D threat model\n\nWritten by `{}` on {} in {:.0} s. PGD L∞, {} steps, random start, step ε/4; {} test images; success counted on the (image, model) pairs the attacked model classifies correctly, with 95% Wilson intervals (n = those pairs). Accuracy is the median over the served models on the whole test split; Δ is against the run's θ_orig.\n\nAttackers: **white box** crafts on the served model itself; **T1** crafts on θ_orig (a leaked original); **T2** crafts on one served model and is scored on the next (every visitor can read their own session's weights); **T3** holds the public recipe or bundle and crafts on the mean loss of m fresh models (EOT). A static model serves the same weights to everyone, so its T2 and T3 equal its white box. T4, the query attacker against server-side rotation, is `g2d query-attack`.\n\n",
        study.command, study.dataset, study.seconds, study.plan.pgd_steps, study.plan.inputs
    );
    for &eps in &study.plan.epsilons {
        out += &format!("## ε = {eps}\n\n{}\n", attack_table(study, eps));
    }
    if !study.unserved.is_empty() {
        out += &format!(
            "Not in the tables: the guard accepted none of the models drawn for {}.\n\n",
            study.unserved.join(", ")
        );
    }
    out += &format!(
        "## Memorisation\n\n{}\n## Selection\n\nRecommended: **{}**. Rule ({}): {}.\n",
        memorisation_table(study),
        study.recommended.as_deref().unwrap_or("none"),
        "validation split",
        study.rule
    );
    out
}

/// Writes the study's files into `out`.
pub fn write(study: &ThreatStudy, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| G2dError::io(out, e))?;
    let pareto = plots::pareto(study).map_err(|e| G2dError::Plot {
        plot: "pareto.svg".into(),
        reason: format!("{e:?}"),
    })?;
    let files = [
        (
            "threat-model.json",
            serde_json::to_string_pretty(study).expect("study serialises"),
        ),
        (
            "summary.json",
            serde_json::to_string_pretty(&summary_json(study)).expect("summary serialises"),
        ),
        ("threat-model.md", markdown(study)),
        ("pareto.svg", pareto),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = out.join(name);
        write_atomic(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::study::ThreatPlan;

    #[test]
    fn populations_with_nothing_accepted_are_named_below_the_tables() {
        let mut study = ThreatStudy {
            command: "g2d threat".into(),
            dataset: "mnist".into(),
            plan: ThreatPlan::default(),
            methods: Vec::new(),
            unserved: Vec::new(),
            recommended: None,
            rule: "rule".into(),
            seconds: 1.0,
        };
        assert!(!markdown(&study).contains("accepted none"));
        study.unserved = vec!["joint-all/g2d-lambda-3".into()];
        let text = markdown(&study);
        assert!(text.contains("accepted none of the models drawn for joint-all/g2d-lambda-3"));
        let json = serde_json::to_value(&study).unwrap();
        assert_eq!(json["unserved"][0], "joint-all/g2d-lambda-3");
    }
}
