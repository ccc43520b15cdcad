//! Accuracy and distance of the generated models.

use plotters::prelude::*;

use super::{color, legend_line, padded, svg_chart, Drawn};
use crate::pipeline::run::lambda_tag;
use crate::report::model::{scores, Report};

/// Per λ of the base, each generated model as (L1 to θ_orig, test accuracy %); the
/// checkpoints' mean L1; and the axis extent (largest L1, lowest and highest accuracy).
#[allow(clippy::type_complexity)]
fn l1_points(report: &Report) -> (Vec<(f32, Vec<(f64, f64)>)>, Option<f64>, (f64, f64, f64)) {
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
    (points, checkpoint_l1, (x1, y0, y1))
}

pub(super) fn accuracy_vs_l1(report: &Report) -> Drawn<String> {
    let base = report.base();
    let original = report.original_test_accuracy() * 100.0;
    let (points, checkpoint_l1, (x1, y0, y1)) = l1_points(report);
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

/// Per compared λ, the generated models' test accuracy (%).
fn accuracy_series(report: &Report) -> Vec<(f32, Vec<f64>)> {
    report
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
        .collect()
}

/// Bins [k·w, (k+1)·w) on multiples of the width `w` covering every value and θ_orig − 1 pt:
/// the first bin's start, the number of bins, and each series' counts.
fn bin_counts(
    series: &[(f32, Vec<f64>)],
    original: f64,
    width: f64,
) -> (f64, usize, Vec<Vec<usize>>) {
    let values = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = values.fold((original - 1.0, original), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    // The nudge keeps an accuracy that is an exact multiple (in decimal) in the bin it starts.
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
    (start, bins, counts)
}

pub(super) fn accuracy_histogram(report: &Report) -> Drawn<String> {
    let original = report.original_test_accuracy() * 100.0;
    let series = accuracy_series(report);
    let width = 0.1;
    let (start, bins, counts) = bin_counts(&series, original, width);
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
