//! The threat study's trade-off: clean accuracy against T1 and T2 success, every method and
//! baseline on one chart.

use plotters::prelude::*;

use super::{color, padded, svg_chart, Drawn};
use crate::defense::study::{ThreatStudy, HEADLINE_EPSILON};

/// Circles are T1 (leaked original), triangles T2 (cross-session), both at ε = 0.1 on test
/// images; a line joins a method's two points.
pub fn pareto(study: &ThreatStudy) -> Drawn<String> {
    let points: Vec<(String, f64, f64, f64)> = study
        .methods
        .iter()
        .filter_map(|m| {
            let r = m.test_at(HEADLINE_EPSILON)?;
            Some((
                m.name.clone(),
                m.median_test_accuracy * 100.0,
                r.t1.rate * 100.0,
                r.t2.rate * 100.0,
            ))
        })
        .collect();
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, x, _, _) in &points {
        (x0, x1) = (x0.min(*x), x1.max(*x));
    }
    svg_chart(
        &format!(
            "Clean accuracy vs PGD success (ε = {HEADLINE_EPSILON}, {})",
            study.dataset
        ),
        50,
        (padded(x0, x1), 0.0..105.0),
        SeriesLabelPosition::UpperLeft,
        |chart| {
            chart
                .configure_mesh()
                .x_desc("median clean test accuracy (%)")
                .y_desc("attack success (%): ● T1 leaked θ_orig, ▲ T2 cross-session")
                .draw()?;
            for (i, (name, x, t1, t2)) in points.iter().enumerate() {
                let c = color(i);
                chart.draw_series(LineSeries::new(
                    vec![(*x, *t1), (*x, *t2)],
                    c.mix(0.5).stroke_width(1),
                ))?;
                chart
                    .draw_series(std::iter::once(Circle::new((*x, *t1), 5, c.filled())))?
                    .label(name.clone())
                    .legend(move |(lx, ly)| Circle::new((lx + 9, ly), 4, c.filled()));
                chart.draw_series(std::iter::once(TriangleMarker::new(
                    (*x, *t2),
                    6,
                    c.filled(),
                )))?;
            }
            Ok(())
        },
    )
}
