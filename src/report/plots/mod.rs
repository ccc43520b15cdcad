//! The report's plots, drawn as SVG with plotters from a [`Report`] alone, so re-rendering
//! never re-runs an experiment.
//!
//! [`accuracy`] draws the generated models' accuracy and distance, [`attacks`] the attack
//! success figures; this file holds the shared look.

mod accuracy;
mod attacks;
mod pareto;

pub use pareto::pareto;

use plotters::coord::ranged1d::AsRangedCoord;
use plotters::prelude::*;

use super::model::Report;
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

pub(super) fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Every plot of the report, as (file name, SVG text), in [`CAPTIONS`] order.
pub fn all(report: &Report) -> Result<Vec<(&'static str, String)>> {
    let plots: [fn(&Report) -> Drawn<String>; 5] = [
        accuracy::accuracy_vs_l1,
        accuracy::accuracy_histogram,
        attacks::transfer_by_lambda,
        attacks::transfer_by_scope,
        attacks::query_success,
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
pub(super) type Drawn<T> = std::result::Result<T, DrawingAreaErrorKind<std::io::Error>>;

pub(super) type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

/// One chart in the report's look: white canvas, caption, margins; `draw` adds the mesh and
/// the series, then the legend goes to `legend`.
pub(super) fn svg_chart<X: AsRangedCoord, Y: AsRangedCoord>(
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
pub(super) fn legend_line<S: Into<ShapeStyle>>(
    style: S,
    length: i32,
) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    let style = style.into();
    move |(x, y)| PathElement::new(vec![(x, y), (x + length, y)], style)
}

/// `lo..hi` widened by 5% (and made non-empty).
pub(super) fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = (hi - lo).max(1e-6);
    (lo - 0.05 * span)..(hi + 0.05 * span)
}
