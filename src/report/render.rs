//! The report's text: the headline table, the targets, Markdown and HTML, and the files
//! `g2d report` writes.

use std::path::{Path, PathBuf};

use super::model::{Report, Variant};
use super::plots;
use super::rank::{meets_accuracy_targets, relative_l1};
use crate::defense::query_attack::{self, Attacker, Policy};
use crate::defense::transfer;
use crate::error::{G2dError, Result};
use crate::pipeline::artifacts::write_atomic;
use crate::pipeline::evaluate::Evaluation;
use crate::pipeline::run::lambda_tag;

/// Writes `report.json`, `report.md`, the plots and `index.html` into `out`.
pub fn write(report: &Report, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| G2dError::io(out, e))?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        let path = out.join(name);
        write_atomic(&path, text)?;
        written.push(path);
        Ok(())
    };
    put(
        "report.json",
        serde_json::to_string_pretty(report).expect("report serialises"),
    )?;
    put("report.md", markdown(report))?;
    for (name, svg) in plots::all(report)? {
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
        out += &format!("\n## Transfer (base)\n\n{}", transfer::table(t));
    }
    for v in report.variants.iter().skip(1) {
        if let Some(t) = &v.transfer {
            out += &format!("\n### Transfer, {}\n\n{}", v.name, transfer::table(t));
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
            query_attack::table(q)
        );
    }
    out += "\n## Plots\n\n";
    for (file, caption) in plots::CAPTIONS {
        out += &format!("![{caption}]({file})\n\n");
    }
    out
}

fn html(report: &Report) -> String {
    let mut figures = String::new();
    for (file, caption) in plots::CAPTIONS {
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
