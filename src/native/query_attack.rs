//! A score-based black-box attack (SimBA, pixel basis: Guo et al. 2019) against a live model
//! that is either static or regenerated every N queries. The attacker sees only the class
//! probabilities; each query counts against a fixed budget.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use super::progress::bar;
use crate::classifier::{images_tensor, Classifier, CLASSES, IMAGE_PIXELS};
use crate::data::Images;
use crate::metrics::Summary;
use crate::rng::G2dRng;

/// When the defender swaps in new weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Policy {
    Static,
    /// A fresh accepted parameter set after every `n` queries.
    EveryN(usize),
}

/// The model an attacker queries.
struct LiveModel<'a> {
    pool: &'a [Classifier],
    policy: Policy,
    current: usize,
    queries: usize,
    device: Device,
}

impl LiveModel<'_> {
    fn probabilities(&mut self, image: &[f32]) -> Vec<f32> {
        if let Policy::EveryN(n) = self.policy {
            if self.queries > 0 && self.queries.is_multiple_of(n) {
                self.current = (self.current + 1) % self.pool.len();
            }
        }
        self.queries += 1;
        let logits = self.pool[self.current].forward(images_tensor(image, &self.device));
        softmax(logits, 1)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32")
    }
}

fn predicted(p: &[f32]) -> usize {
    (0..CLASSES)
        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
        .unwrap_or(0)
}

/// Runs SimBA on one image; returns the queries it took to fool the model, if it did.
fn simba(
    model: &mut LiveModel,
    image: &[f32],
    label: usize,
    epsilon: f32,
    budget: usize,
    rng: &mut G2dRng,
) -> Option<usize> {
    let mut x = image.to_vec();
    let mut best = model.probabilities(&x)[label];
    let mut order: Vec<usize> = (0..IMAGE_PIXELS).collect();
    rng.shuffle(&mut order);
    let start = model.queries - 1;
    for &pixel in order.iter().cycle() {
        for step in [epsilon, -epsilon] {
            if model.queries - start >= budget {
                return None;
            }
            let mut candidate = x.clone();
            candidate[pixel] = (candidate[pixel] + step).clamp(0.0, 1.0);
            if candidate[pixel] == x[pixel] {
                continue;
            }
            let p = model.probabilities(&candidate);
            if predicted(&p) != label {
                return Some(model.queries - start);
            }
            if p[label] < best {
                best = p[label];
                x = candidate;
                break;
            }
        }
    }
    None
}

/// One policy's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryAttackRow {
    pub policy: Policy,
    pub attacked: usize,
    pub success_rate: f64,
    /// Queries to success, over the successful attacks (absent when none succeeded).
    pub queries_to_success: Option<Summary>,
}

/// Attacks every image of `images` (the caller passes images the original classifies
/// correctly) once per policy, with the same pixel orders.
pub fn query_attack(
    pool: &[Classifier],
    images: &Images,
    policies: &[Policy],
    epsilon: f32,
    budget: usize,
    seed: u64,
    device: &Device,
) -> Vec<QueryAttackRow> {
    policies
        .iter()
        .map(|&policy| {
            let mut model = LiveModel {
                pool,
                policy,
                current: 0,
                queries: 0,
                device: device.clone(),
            };
            let mut rng = G2dRng::seeded(seed);
            let pb = bar(images.len() as u64, &format!("SimBA {policy:?}"));
            let mut queries = Vec::new();
            for (i, &label) in images.labels.iter().enumerate() {
                let image = &images.pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS];
                if let Some(q) = simba(&mut model, image, label as usize, epsilon, budget, &mut rng)
                {
                    queries.push(q as f64);
                }
                pb.inc(1);
            }
            pb.finish_and_clear();
            QueryAttackRow {
                policy,
                attacked: images.len(),
                success_rate: queries.len() as f64 / images.len().max(1) as f64,
                queries_to_success: (!queries.is_empty()).then(|| Summary::of(&queries)),
            }
        })
        .collect()
}
