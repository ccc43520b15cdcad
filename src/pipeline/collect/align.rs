//! Aligning independently trained MLPs (`collect.align_runs`): a network's hidden units can be
//! permuted without changing what it computes, so two runs from different initialisations hold
//! the same kind of solution in different unit orders, and an autoencoder fed both averages
//! across the orders. Weight matching (Ainsworth, Hayase and Srinivasa, "Git Re-Basin", 2023)
//! permutes each run's hidden units to match a reference's: for one hidden layer at a time, the
//! assignment that maximises the inner product of the matched units' incoming weights, biases
//! and outgoing weights, solved exactly (Hungarian method), repeated over the layers until no
//! permutation changes. The permuted network computes exactly what it did.

use crate::classifier::Classifier;
use crate::error::{G2dError, Result};
use crate::params::Manifest;

/// Rounds over the hidden layers before giving up on a fixed point (each round is cheap).
const MAX_ROUNDS: usize = 100;

/// One linear layer inside a flattened MLP: `weight` is `[inputs, outputs]` row-major (burn's
/// layout), `bias` `[outputs]`, both as offsets into the vector.
struct Layer {
    weight: usize,
    bias: usize,
    inputs: usize,
    outputs: usize,
}

/// The MLP's linear layers, input first, from the manifest's `fc{i}.weight` / `fc{i}.bias`.
fn layers(manifest: &Manifest) -> Result<Vec<Layer>> {
    let find = |name: &str| manifest.tensors.iter().find(|t| t.name == name);
    let mut layers = Vec::new();
    while let (Some(w), Some(b)) = (
        find(&format!("fc{}.weight", layers.len() + 1)),
        find(&format!("fc{}.bias", layers.len() + 1)),
    ) {
        let [inputs, outputs] = w.shape[..] else {
            return Err(G2dError::config(
                "collect.align_runs",
                "expected 2-D weights",
            ));
        };
        if b.shape != [outputs] || layers.last().is_some_and(|l: &Layer| l.outputs != inputs) {
            return Err(G2dError::config(
                "collect.align_runs",
                format!("layer {} does not follow the one before it", layers.len()),
            ));
        }
        layers.push(Layer {
            weight: w.offset,
            bias: b.offset,
            inputs,
            outputs,
        });
    }
    if layers.len() < 2
        || layers
            .iter()
            .map(|l| l.inputs * l.outputs + l.outputs)
            .sum::<usize>()
            != manifest.len()
    {
        return Err(G2dError::config(
            "collect.align_runs",
            "needs the whole MLP (arch mlp, scope all) with at least one hidden layer",
        ));
    }
    Ok(layers)
}

/// `other` with its hidden units permuted to match `reference`'s (same architecture). Returns
/// the aligned network and how many rounds weight matching took.
pub fn align(reference: &Classifier, other: Classifier) -> Result<(Classifier, usize)> {
    let manifest = Manifest::full(reference);
    let layers = layers(&manifest)?;
    let a = manifest.flatten(reference);
    let b = manifest.flatten(&other);
    // A NaN would leave the assignment without a best column.
    manifest.check("the reference run's parameters", &a)?;
    manifest.check("the run to align", &b)?;
    let (perms, rounds) = match_weights(&layers, &a, &b);
    let permuted = permute(&layers, &b, &perms);
    Ok((manifest.unflatten(other, &permuted)?, rounds))
}

/// One permutation per hidden layer (`perm[i]`: the unit of `b` that takes unit i's place).
fn match_weights(layers: &[Layer], a: &[f32], b: &[f32]) -> (Vec<Vec<usize>>, usize) {
    let mut perms: Vec<Vec<usize>> = layers[..layers.len() - 1]
        .iter()
        .map(|l| (0..l.outputs).collect())
        .collect();
    for round in 1..=MAX_ROUNDS {
        let mut changed = false;
        for h in 0..perms.len() {
            let similarity = unit_similarity(layers, a, b, &perms, h);
            let best = assign_max(&similarity, layers[h].outputs);
            if best != perms[h] {
                perms[h] = best;
                changed = true;
            }
        }
        if !changed {
            return (perms, round);
        }
    }
    (perms, MAX_ROUNDS)
}

/// S[i][j] for hidden layer `h` (boundary h + 1): unit i of `a` against unit j of `b`, over
/// their incoming weights (with `b`'s inputs in the order the layer before is matched to),
/// biases and outgoing weights (with the layer after's order).
fn unit_similarity(
    layers: &[Layer],
    a: &[f32],
    b: &[f32],
    perms: &[Vec<usize>],
    h: usize,
) -> Vec<f64> {
    let (into, out) = (&layers[h], &layers[h + 1]);
    let n = into.outputs;
    let mut s = vec![0.0f64; n * n];
    for k in 0..into.inputs {
        let (ra, rb) = (into.weight + k * n, into.weight + source(perms, h, k) * n);
        for i in 0..n {
            let wa = f64::from(a[ra + i]);
            for j in 0..n {
                s[i * n + j] += wa * f64::from(b[rb + j]);
            }
        }
    }
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] += f64::from(a[into.bias + i]) * f64::from(b[into.bias + j]);
            let (ra, rb) = (out.weight + i * out.outputs, out.weight + j * out.outputs);
            s[i * n + j] += (0..out.outputs)
                .map(|m| f64::from(a[ra + m]) * f64::from(b[rb + source(perms, h + 2, m)]))
                .sum::<f64>();
        }
    }
    s
}

/// Which unit of `b` stands at position `k` of boundary `boundary` between layers: 0 is the
/// input, 1 to `perms.len()` the hidden layers (in `perms`' order), and after them the output,
/// whose order never changes.
fn source(perms: &[Vec<usize>], boundary: usize, k: usize) -> usize {
    match boundary.checked_sub(1).and_then(|h| perms.get(h)) {
        Some(perm) => perm[k],
        None => k,
    }
}

/// `b` with every hidden layer's units in the order `perms` gives.
fn permute(layers: &[Layer], b: &[f32], perms: &[Vec<usize>]) -> Vec<f32> {
    let mut out = b.to_vec();
    for (l, layer) in layers.iter().enumerate() {
        for k in 0..layer.inputs {
            let src_k = source(perms, l, k);
            for i in 0..layer.outputs {
                out[layer.weight + k * layer.outputs + i] =
                    b[layer.weight + src_k * layer.outputs + source(perms, l + 1, i)];
            }
        }
        for i in 0..layer.outputs {
            out[layer.bias + i] = b[layer.bias + source(perms, l + 1, i)];
        }
    }
    out
}

/// The assignment of rows to columns of the n × n `score` (row-major) with the largest total:
/// `result[i]` is row i's column. The Hungarian method with potentials, O(n³).
fn assign_max(score: &[f64], n: usize) -> Vec<usize> {
    // Minimise the negated scores; rows and columns are 1-based below, 0 is the sentinel.
    let cost = |i: usize, j: usize| -score[(i - 1) * n + (j - 1)];
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; n + 1]);
    let (mut row_of, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=n {
                if !used[j] {
                    let reduced = cost(i0, j) - u[i0] - v[j];
                    if reduced < min_to[j] {
                        min_to[j] = reduced;
                        way[j] = j0;
                    }
                    if min_to[j] < delta {
                        delta = min_to[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut result = vec![0; n];
    for j in 1..=n {
        result[row_of[j] - 1] = j - 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::classifier::{Arch, ClassifierConfig};
    use burn::prelude::*;

    #[test]
    fn a_permuted_copy_computes_the_same_and_is_put_back() {
        let device = cpu_device();
        let reference = ClassifierConfig::new(Arch::Mlp).init(&device);
        let manifest = Manifest::full(&reference);
        let layers = layers(&manifest).unwrap();
        let theta = manifest.flatten(&reference);
        // A permutation of each hidden layer (7 is prime to 64 and 32).
        let perms: Vec<Vec<usize>> = layers[..layers.len() - 1]
            .iter()
            .map(|l| (0..l.outputs).map(|i| (i * 7 + 3) % l.outputs).collect())
            .collect();
        let shuffled = permute(&layers, &theta, &perms);
        assert_ne!(shuffled, theta);
        let other = manifest.unflatten(reference.clone(), &shuffled).unwrap();
        let x = Tensor::<2>::random([5, 784], burn::tensor::Distribution::Default, &device);
        let (y, y_other) = (reference.forward(x.clone()), other.forward(x));
        let gap: f32 = (y - y_other).abs().max().into_scalar();
        assert!(
            gap < 1e-5,
            "the permuted network computes something else ({gap})"
        );
        let (aligned, rounds) = align(&reference, other).unwrap();
        assert_eq!(manifest.flatten(&aligned), theta);
        assert!(rounds <= 3, "{rounds} rounds for an exact copy");
    }

    #[test]
    fn a_cnn_is_refused_with_the_setting_named() {
        let cnn = ClassifierConfig::new(Arch::Cnn).init(&cpu_device());
        let err = align(&cnn, cnn.clone()).unwrap_err().to_string();
        assert!(err.contains("collect.align_runs"), "{err}");
    }

    #[test]
    fn the_assignment_is_the_best_of_all_permutations() {
        // 4 × 4: brute force over the 24 permutations.
        let score = [
            3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0, 8.0, 9.0, 7.0, 9.0, 3.0,
        ];
        let total = |p: &[usize]| {
            p.iter()
                .enumerate()
                .map(|(i, &j)| score[i * 4 + j])
                .sum::<f64>()
        };
        let mut best = f64::MIN;
        let mut p = [0, 1, 2, 3];
        permutations(&mut p, 0, &mut |q| best = best.max(total(q)));
        let got = assign_max(&score, 4);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3]);
        assert_eq!(total(&got), best);
    }

    fn permutations(p: &mut [usize; 4], k: usize, visit: &mut impl FnMut(&[usize])) {
        if k == p.len() {
            return visit(p);
        }
        for i in k..p.len() {
            p.swap(k, i);
            permutations(p, k + 1, visit);
            p.swap(k, i);
        }
    }
}
