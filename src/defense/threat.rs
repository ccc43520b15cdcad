//! The threat model: one measured row per attacker, for every population a defender could
//! deploy ([`super::populations`]). All attacks are PGD L∞ with a random start; success is
//! counted on the (image, model) pairs the attacked model classifies correctly, and every rate
//! carries its 95% Wilson interval (pairs treated as independent: models of one population
//! share images, so the interval is optimistic by up to the number of models).
//!
//! - white box: crafted on the served model itself;
//! - T1, leaked original: crafted on θ_orig, scored on the served models;
//! - T2, cross-session: crafted on one served model, scored on the next (every visitor can
//!   read their own session's weights);
//! - T3, bundle holder: crafted on the mean loss of m fresh models drawn with the public recipe
//!   (EOT), scored on the served models.
//!
//! A static model serves one set of weights to everyone, so its T2 and T3 are its white box.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::populations::Population;
use crate::attacks::{craft, craft_ensemble, LinfAttack};
use crate::classifier::{images_tensor, labels_tensor, Classifier};
use crate::data::Images;
use crate::metrics::Rate;
use crate::rng::G2dRng;

/// One attacker's success at one ε.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackRates {
    pub epsilon: f32,
    pub white_box: Rate,
    pub t1: Rate,
    pub t2: Rate,
    pub t3: Rate,
    /// m, the models T3's attacker averaged over (leave-one-out pools are smaller).
    pub eot_models: usize,
}

/// The attacked images and the examples crafted on θ_orig, per ε.
pub struct AttackSet<'a> {
    pub clean: Images,
    pub attacks: Vec<LinfAttack>,
    /// Crafted on θ_orig, one tensor `[n, 784]` per attack.
    pub from_original: Vec<Tensor<2>>,
    pub device: &'a Device,
}

impl<'a> AttackSet<'a> {
    /// Crafts the T1 examples on `original` from `clean`.
    pub fn new(
        original: &Classifier,
        clean: Images,
        attacks: Vec<LinfAttack>,
        seed: u64,
        device: &'a Device,
    ) -> AttackSet<'a> {
        let mut rng = G2dRng::seeded(seed);
        let from_original = attacks
            .iter()
            .map(|a| craft(original, x(&clean, device), y(&clean, device), a, &mut rng))
            .collect();
        AttackSet {
            clean,
            attacks,
            from_original,
            device,
        }
    }
}

fn x(images: &Images, device: &Device) -> Tensor<2> {
    images_tensor(&images.pixels, images.pixels_per_image(), device)
}

fn y(images: &Images, device: &Device) -> Tensor<1, Int> {
    labels_tensor(&images.labels, device)
}

fn classes(model: &Classifier, images: Tensor<2>) -> Vec<i64> {
    model
        .forward(images)
        .argmax(1)
        .into_data()
        .iter::<i64>()
        .collect()
}

/// (fooled, correctly classified clean) of `model` on `adversarial`.
fn fooled(model: &Classifier, clean_right: &[bool], adversarial: Tensor<2>, labels: &[u8]) -> Rate {
    let adv = classes(model, adversarial);
    let (mut k, mut n) = (0, 0);
    for ((&right, &a), &l) in clean_right.iter().zip(&adv).zip(labels) {
        if right {
            n += 1;
            k += usize::from(a != l as i64);
        }
    }
    Rate::wilson(k, n)
}

/// The four attackers against `population`, at every ε of `set`.
pub fn attack_population(population: &Population, set: &AttackSet, seed: u64) -> Vec<AttackRates> {
    let (clean, device) = (&set.clean, set.device);
    let labels = &clean.labels;
    let targets = &population.targets;
    let right: Vec<Vec<bool>> = targets
        .iter()
        .map(|m| {
            classes(m, x(clean, device))
                .iter()
                .zip(labels)
                .map(|(&p, &l)| p == l as i64)
                .collect()
        })
        .collect();
    let mut rng = G2dRng::seeded(seed);
    let mut rows = Vec::new();
    for (attack, from_original) in set.attacks.iter().zip(&set.from_original) {
        let crafted: Vec<Tensor<2>> = targets
            .iter()
            .map(|m| craft(m, x(clean, device), y(clean, device), attack, &mut rng))
            .collect();
        let (pool_eot, eot_models) = match population.attacker_pool.len() {
            0 => (None, targets.len().saturating_sub(1).max(1)),
            m => (
                Some(craft_ensemble(
                    &population.attacker_pool,
                    x(clean, device),
                    y(clean, device),
                    attack,
                    &mut rng,
                )),
                m,
            ),
        };
        let n = targets.len();
        let (mut wb, mut t1, mut t2, mut t3) = (vec![], vec![], vec![], vec![]);
        for (i, model) in targets.iter().enumerate() {
            let score = |adv: &Tensor<2>| fooled(model, &right[i], adv.clone(), labels);
            wb.push(score(&crafted[i]));
            t1.push(score(from_original));
            t2.push(score(&crafted[(i + n - 1) % n]));
            let eot = match &pool_eot {
                Some(adv) => adv.clone(),
                None if n == 1 => crafted[i].clone(),
                None => {
                    let others: Vec<Classifier> = targets
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .map(|(_, m)| m.clone())
                        .collect();
                    craft_ensemble(
                        &others,
                        x(clean, device),
                        y(clean, device),
                        attack,
                        &mut rng,
                    )
                }
            };
            t3.push(score(&eot));
        }
        rows.push(AttackRates {
            epsilon: attack.epsilon,
            white_box: Rate::pooled(&wb),
            t1: Rate::pooled(&t1),
            t2: Rate::pooled(&t2),
            t3: Rate::pooled(&t3),
            eot_models: if population.is_static() {
                1
            } else {
                eot_models
            },
        });
    }
    rows
}
