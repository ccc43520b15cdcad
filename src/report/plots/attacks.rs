//! Attack success: PGD transfer by λ and by scope, SimBA against static and rotating models.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::{color, legend_line, padded, svg_chart, Drawn};
use crate::defense::query_attack::{Attacker, Policy};
use crate::pipeline::run::lambda_tag;
use crate::report::model::{Ablation, Report, Variant};

pub(super) fn transfer_by_lambda(report: &Report) -> Drawn<String> {
    let base = report.base();
    let mut pts: Vec<(f64, f64)> = base
        .lambdas
        .iter()
        .filter_map(|&l| Some((l as f64, base.transfer_success(l)? * 100.0)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let x1 = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let references: Vec<(String, f64)> = [
        ("θ_orig (white box)", base.white_box_success()),
        ("retrained from other seeds", base.retrained_success()),
    ]
    .into_iter()
    .filter_map(|(n, v)| Some((n.to_string(), v? * 100.0)))
    .collect();
    svg_chart(
        &transfer_caption(report, "vs λ"),
        50,
        (padded(0.0, x1), 0.0..105.0),
        SeriesLabelPosition::LowerLeft,
        |chart| {
            chart
                .configure_mesh()
                .x_desc("λ (0 = p-diff)")
                .y_desc("attack success (%)")
                .draw()?;
            chart
                .draw_series(LineSeries::new(pts.clone(), color(0).stroke_width(2)))?
                .label("generated, guard-accepted")
                .legend(legend_line(color(0), 18));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color(0).filled())))?;
            for (i, (name, v)) in references.iter().enumerate() {
                let c = color(i + 2);
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(0.0, *v), (x1, *v)],
                        6,
                        4,
                        c.stroke_width(1),
                    ))?
                    .label(format!("{name} ({v:.0}%)"))
                    .legend(legend_line(c, 18));
            }
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, 20.0), (x1, 20.0)],
                    3,
                    3,
                    RED.stroke_width(1),
                ))?
                .label("target ≤ 20%")
                .legend(legend_line(RED, 18));
            Ok(())
        },
    )
}

fn transfer_caption(report: &Report, what: &str) -> String {
    let a = report.plan.transfer.attack;
    format!(
        "PGD-{} (ε = {}) crafted on θ_orig, {what}",
        a.steps, a.epsilon
    )
}

pub(super) fn transfer_by_scope(report: &Report) -> Drawn<String> {
    let mut columns: Vec<&Variant> = report
        .variants
        .iter()
        .filter(|v| matches!(v.ablation, Ablation::Base | Ablation::Scope) && v.transfer.is_some())
        .collect();
    columns.sort_by_key(|v| v.regenerated);
    let names: Vec<String> = columns
        .iter()
        .map(|v| format!("{} ({})", v.config.collect.scope, v.regenerated))
        .collect();
    let mut groups: Vec<(String, Vec<Option<f64>>)> = report
        .compared_lambdas()
        .into_iter()
        .map(|l| {
            (
                format!("generated, λ = {}", lambda_tag(l)),
                columns
                    .iter()
                    .map(|v| v.transfer_success(l).map(|s| s * 100.0))
                    .collect(),
            )
        })
        .collect();
    groups.push((
        "θ_orig (white box)".into(),
        columns
            .iter()
            .map(|v| v.white_box_success().map(|s| s * 100.0))
            .collect(),
    ));
    let n = columns.len().max(1);
    svg_chart(
        &transfer_caption(report, "vs regenerated scope"),
        50,
        ((0..n).into_segmented(), 0.0..105.0),
        SeriesLabelPosition::LowerLeft,
        |chart| {
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc("regenerated tensors (parameters)")
                .y_desc("attack success (%)")
                .x_label_formatter(&|x| match x {
                    SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                        names.get(*i).cloned().unwrap_or_default()
                    }
                    SegmentValue::Last => String::new(),
                })
                .draw()?;
            for (i, (label, values)) in groups.iter().enumerate() {
                let c = color(i);
                let pts: Vec<(SegmentValue<usize>, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(j, v)| Some((SegmentValue::CenterOf(j), (*v)?)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
                    .label(label.clone())
                    .legend(legend_line(c, 18));
                chart.draw_series(pts.into_iter().map(move |p| Circle::new(p, 4, c.filled())))?;
            }
            Ok(())
        },
    )
}

pub(super) fn query_success(report: &Report) -> Drawn<String> {
    let base = report.base();
    let budget = base.query.first().map_or(1, |q| q.budget).max(1);
    let step = (budget / 100).max(1);
    // The base λ's pool only (the table has the others): one colour per policy, solid for
    // SimBA as published, dashed for the adaptive attacker. Per session is left out: to an
    // attacker whose session is one image it is a static model.
    let pool = base.query.iter().find(|q| q.lambda == report.base_lambda);
    let mut policies: Vec<Policy> = Vec::new();
    let caption = pool.map_or("SimBA".to_string(), |q| {
        format!(
            "SimBA (ε = {}) on {} images, λ = {} pool: success within the budget",
            q.epsilon,
            q.rows.first().map_or(0, |r| r.attacked),
            lambda_tag(q.lambda)
        )
    });
    svg_chart(
        &caption,
        50,
        (0.0..budget as f64, 0.0..105.0),
        SeriesLabelPosition::UpperLeft,
        |chart| {
            chart
                .configure_mesh()
                .x_label_formatter(&|x| format!("{x:.0}"))
                .x_desc("queries")
                .y_desc("images fooled (%)")
                .draw()?;
            for r in pool.iter().flat_map(|q| &q.rows) {
                if r.policy == Policy::PerSession {
                    continue;
                }
                if !policies.contains(&r.policy) {
                    policies.push(r.policy);
                }
                let colour = policies.iter().position(|&p| p == r.policy).unwrap_or(0);
                let style = color(colour).stroke_width(2);
                let pts: Vec<(f64, f64)> = (0..=budget)
                    .step_by(step)
                    .map(|b| (b as f64, r.success_within(b) * 100.0))
                    .collect();
                let (drawn, length, suffix) = match r.attacker {
                    Attacker::SimbaPaired => (
                        chart.draw_series(DashedLineSeries::new(pts, 7, 4, style))?,
                        7,
                        ", adaptive",
                    ),
                    Attacker::Simba => (chart.draw_series(LineSeries::new(pts, style))?, 18, ""),
                };
                drawn
                    .label(format!("{}{suffix}", r.policy))
                    .legend(legend_line(style, length));
            }
            Ok(())
        },
    )
}
