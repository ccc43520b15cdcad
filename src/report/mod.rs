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

mod build;
pub(crate) mod model;
pub mod plan;
pub mod plots;
mod rank;
mod render;
pub mod threat;

pub use build::build;
pub use model::{scores, Ablation, Report, Variant};
pub use plan::{compared_lambdas, ReportPlan, TransferPlan};
pub use rank::{meets_accuracy_targets, Recommendation};
pub use render::{headline, targets, write};
