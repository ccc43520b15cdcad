//! The report's plots, drawn as SVG with plotters from a [`Report`] alone, so re-rendering
//! never re-runs an experiment.

use plotters::coord::ranged1d::{AsRangedCoord, SegmentValue};
use plotters::prelude::*;

use super::query_attack::{Attacker, Policy};
use super::report::{scores, Ablation, Report};
use super::stages::lambda_tag;
use crate::error::{G2dError, Result};

/// The files `all` writes, with their captions.
pub const CAPTIONS: [(&str, &str); 5] = [
    (
        "accuracy-vs-l1.svg",
        "Clean test accuracy vs L1 distance to θ_orig, one point per generated model, by λ",
    ),
    (
        "accuracy-histogram.svg",
        "Test accuracy of the generated models against the original's",
    ),
    (
        "transfer-by-lambda.svg",
        "PGD transfer success on guard-accepted generated models vs λ",
    ),
    (
        "transfer-by-scope.svg",
        "PGD transfer success on guard-accepted generated models vs the regenerated scope",
    ),
    (
        "query-success.svg",
        "SimBA success over its query budget: static vs regenerated every N queries",
    ),
];

const SIZE: (u32, u32) = (820, 500);
const FONT: &str = "sans-serif";

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Every plot of the report, as (file name, SVG text), in [`CAPTIONS`] order.
pub fn all(report: &Report) -> Result<Vec<(&'static str, String)>> {
    let plots: [fn(&Report) -> Drawn<String>; 5] = [
        accuracy_vs_l1,
        accuracy_histogram,
        transfer_by_lambda,
        transfer_by_scope,
        query_success,
    ];
    CAPTIONS
        .iter()
        .zip(plots)
        .map(|(&(file, _), plot)| {
            plot(report)
                .map(|svg| (file, svg))
                .map_err(|e| G2dError::Plot {
                    plot: file.to_string(),
                    reason: format!("{e:?}"),
                })
        })
        .collect()
}

/// What plotters' SVG backend can fail with.
type Drawn<T> = std::result::Result<T, DrawingAreaErrorKind<std::io::Error>>;

type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

/// One chart in the report's look: white canvas, caption, margins; `draw` adds the mesh and
/// the series, then the legend goes to `legend`.
fn svg_chart<X: AsRangedCoord, Y: AsRangedCoord>(
    caption: &str,
    y_label_area: u32,
    (x, y): (X, Y),
    legend: SeriesLabelPosition,
    draw: impl FnOnce(&mut Chart<'_, '_, X::CoordDescType, Y::CoordDescType>) -> Drawn<()>,
) -> Drawn<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, 20))
            .margin(12)
            .margin_right(30)
            .x_label_area_size(45)
            .y_label_area_size(y_label_area)
            .build_cartesian_2d(x, y)?;
        draw(&mut chart)?;
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// A legend entry: a line `length` pixels long.
fn legend_line<S: Into<ShapeStyle>>(
    style: S,
    length: i32,
) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    let style = style.into();
    move |(x, y)| PathElement::new(vec![(x, y), (x + length, y)], style)
}

/// `lo..hi` widened by 5% (and made non-empty).
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = (hi - lo).max(1e-6);
    (lo - 0.05 * span)..(hi + 0.05 * span)
}

fn accuracy_vs_l1(report: &Report) -> Drawn<String> {
    let base = report.base();
    let original = report.original_test_accuracy() * 100.0;
    let mut lambdas = base.lambdas.clone();
    lambdas.sort_by(f32::total_cmp);
    let points: Vec<(f32, Vec<(f64, f64)>)> = lambdas
        .iter()
        .map(|&l| {
            let pts = scores(report, l)
                .iter()
                .map(|m| (m.l1_to_original, m.test_accuracy * 100.0))
                .collect();
            (l, pts)
        })
        .collect();
    let checkpoint_l1 = base
        .evaluations
        .first()
        .and_then(|e| e.checkpoint_l1_to_original)
        .map(|s| s.mean);
    let all = points.iter().flat_map(|(_, p)| p.iter());
    let (mut x1, mut y0, mut y1) = (checkpoint_l1.unwrap_or(0.0), original, original);
    for &(x, y) in all {
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    // A collapsed λ would squash the rest into one line: the axis stops FLOOR_PT below θ_orig
    // and models under it sit on the bottom edge as triangles, counted in the legend.
    const FLOOR_PT: f64 = 3.0;
    let y0 = y0.max(original - FLOOR_PT);
    svg_chart(
        &format!("Generated models ({}): accuracy vs distance", base.name),
        60,
        (padded(0.0, x1), padded(y0, y1)),
        SeriesLabelPosition::UpperRight,
        |chart| {
            chart
                .configure_mesh()
                .x_desc("mean |θ − θ_orig| per parameter")
                .y_desc("test accuracy (%)")
                .draw()?;
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, original), (x1, original)],
                    BLACK.stroke_width(1),
                ))?
                .label(format!("θ_orig {original:.2}%"))
                .legend(legend_line(BLACK, 18));
            if let Some(k) = checkpoint_l1 {
                let c = color(7);
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(k, y0), (k, y1)],
                        6,
                        4,
                        c.stroke_width(1),
                    ))?
                    .label(format!("K checkpoints, mean L1 {k:.5}"))
                    .legend(legend_line(c, 18));
            }
            for (i, (lambda, pts)) in points.iter().enumerate() {
                let c = color(i);
                let below: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.1 < y0).collect();
                let mut label = format!("λ = {}", lambda_tag(*lambda));
                if let Some(lowest) = below.iter().map(|p| p.1).reduce(f64::min) {
                    label += &format!(
                        " ({} of {} below the axis, down to {lowest:.1}%)",
                        below.len(),
                        pts.len()
                    );
                }
                chart
                    .draw_series(
                        pts.iter()
                            .filter(|p| p.1 >= y0)
                            .map(move |&p| Circle::new(p, 3, c.mix(0.7).filled())),
                    )?
                    .label(label)
                    .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
                chart.draw_series(
                    below
                        .into_iter()
                        .map(move |(x, _)| TriangleMarker::new((x, y0), 4, c.mix(0.7).filled())),
                )?;
            }
            Ok(())
        },
    )
}

fn accuracy_histogram(report: &Report) -> Drawn<String> {
    let original = report.original_test_accuracy() * 100.0;
    let series: Vec<(f32, Vec<f64>)> = report
        .compared_lambdas()
        .into_iter()
        .map(|l| {
            (
                l,
                scores(report, l)
                    .iter()
                    .map(|m| m.test_accuracy * 100.0)
                    .collect(),
            )
        })
        .collect();
    let values = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = values.fold((original - 1.0, original), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    // Bins [k·w, (k+1)·w) on multiples of the width; the nudge keeps an accuracy that is an
    // exact multiple (in decimal) in the bin it starts.
    let width = 0.1;
    let bin = |a: f64| ((a / width) + 1e-6).floor();
    let start = bin(lo) * width;
    let bins = (bin(hi) - bin(lo)) as usize + 1;
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|(_, v)| {
            let mut c = vec![0usize; bins];
            for &a in v {
                c[((bin(a) - bin(lo)).max(0.0) as usize).min(bins - 1)] += 1;
            }
            c
        })
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    svg_chart(
        "Test accuracy of generated models (0.1 pt bins)",
        50,
        (
            start - width..start + (bins + 1) as f64 * width,
            0.0..top * 1.15,
        ),
        SeriesLabelPosition::UpperLeft,
        |chart| {
            chart
                .configure_mesh()
                .x_desc("test accuracy (%)")
                .y_desc("generated models")
                .draw()?;
            for (i, ((lambda, _), c)) in series.iter().zip(&counts).enumerate() {
                let col = color(i);
                chart
                    .draw_series(c.iter().enumerate().filter(|(_, &n)| n > 0).map(
                        move |(b, &n)| {
                            let x = start + b as f64 * width;
                            Rectangle::new(
                                [(x, 0.0), (x + width, n as f64)],
                                col.mix(0.45).filled(),
                            )
                        },
                    ))?
                    .label(format!("λ = {}", lambda_tag(*lambda)))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], col.mix(0.45).filled())
                    });
            }
            for (at, label, style) in [
                (
                    original,
                    format!("θ_orig {original:.2}%"),
                    BLACK.stroke_width(2),
                ),
                (
                    original - 1.0,
                    "θ_orig − 1 pt".to_string(),
                    RED.stroke_width(1),
                ),
            ] {
                chart
                    .draw_series(LineSeries::new(vec![(at, 0.0), (at, top * 1.15)], style))?
                    .label(label)
                    .legend(legend_line(style, 18));
            }
            Ok(())
        },
    )
}

fn transfer_by_lambda(report: &Report) -> Drawn<String> {
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

fn transfer_by_scope(report: &Report) -> Drawn<String> {
    let mut columns: Vec<&super::report::Variant> = report
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

fn query_success(report: &Report) -> Drawn<String> {
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
