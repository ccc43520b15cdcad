//! Bad input never panics: thousands of mutated bundles and IDX files each get an error (or, when
//! the mutation left a valid file, load), and none brings the process down. Mutations with the
//! checksum recomputed reach past the checksum to the metadata and section checks, as a crafted
//! file would.

use std::panic::{catch_unwind, AssertUnwindSafe};

mod common;

use common::{frame, reseal, unframe};

use g2d::backend::cpu_device;
use g2d::bundle::Bundle;
use g2d::data::{encode_idx_images, encode_idx_labels, parse_idx_images, parse_idx_labels, Images};
use g2d::diffusion::sampler::SamplerConfig;
use g2d::generate::G2dModel;
use g2d::rng::G2dRng;
use serde_json::Value;

const BUNDLE: &[u8] = include_bytes!("fixtures/tiny.g2d");
const HEADER_LEN: usize = 28;

/// Loads `bytes`; a bundle that loads must also build and regenerate. Returns whether it
/// loaded; a panic fails the test naming the case.
fn load_without_panic(bytes: &[u8], case: &str) -> bool {
    let outcome = catch_unwind(AssertUnwindSafe(|| match Bundle::from_bytes(bytes) {
        Ok(bundle) => {
            let model = G2dModel::from_bundle(&bundle, &cpu_device()).map_err(|e| e.code())?;
            let sampler = SamplerConfig::Ddim { steps: 2, eta: 0.0 };
            let mut rng = G2dRng::seeded(1);
            let centres = model.draw_centres(1, &mut rng);
            let z0 = model.sample(1, &sampler, rng).run();
            model.decode(z0, &centres);
            Ok(())
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            Err(e.code())
        }
    }));
    match outcome {
        Ok(result) => result.is_ok(),
        Err(_) => panic!("{case}: the loader panicked"),
    }
}

/// Every JSON pointer to a value inside `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, child)| pointers(child, format!("{at}/{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, child)| pointers(child, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// A hostile replacement for a metadata value.
fn hostile(rng: &mut G2dRng, old: &Value) -> Value {
    let numbers = [
        0.0,
        -1.0,
        1.0,
        2.0,
        7.0,
        0.5,
        -0.5,
        1e-30,
        1e9,
        4294967295.0,
        1e30,
        1.8e19,
    ];
    match rng.below(6) {
        0 => Value::Null,
        1 => Value::String(["", "x", "ddim", "f32", "f16", "u8", "mlp"][rng.below(7)].into()),
        2 => serde_json::json!(numbers[rng.below(numbers.len())]),
        3 => match old {
            Value::Array(items) if !items.is_empty() => {
                let mut items = items.clone();
                match rng.below(3) {
                    0 => items.clear(),
                    1 => {
                        items.pop();
                    }
                    _ => items.push(items[0].clone()),
                }
                Value::Array(items)
            }
            Value::Object(map) if !map.is_empty() => {
                let mut map = map.clone();
                let key = map.keys().nth(rng.below(map.len())).unwrap().clone();
                map.remove(&key);
                Value::Object(map)
            }
            _ => serde_json::json!([]),
        },
        4 => match old.as_f64() {
            Some(x) => serde_json::json!(x * [10.0, 1e6, -1.0, 0.5][rng.below(4)]),
            None => Value::Bool(true),
        },
        _ => serde_json::json!(rng.below(1 << 20)),
    }
}

#[test]
fn mutated_bundles_never_panic() {
    let mut rng = G2dRng::seeded(2026);
    let (meta, data) = unframe(BUNDLE);
    let mut paths = Vec::new();
    pointers(&meta, String::new(), &mut paths);
    let mut loaded = 0;

    // Raw bytes: flips, overwrites and cuts anywhere, half of them resealed.
    for case in 0..6000 {
        let mut bytes = BUNDLE.to_vec();
        match rng.below(4) {
            0 => bytes.truncate(rng.below(BUNDLE.len())),
            1 => {
                let at = rng.below(HEADER_LEN);
                bytes[at] = rng.below(256) as u8;
            }
            _ => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
        }
        let unchanged = bytes == BUNDLE; // an overwrite with the same byte, a flip undone
        let resealed = case % 2 == 1;
        if resealed {
            bytes = reseal(bytes);
        }
        let ok = load_without_panic(&bytes, &format!("byte case {case}"));
        assert!(
            !ok || resealed || unchanged,
            "byte case {case}: a damaged file loaded"
        );
        loaded += ok as usize;
    }

    // Metadata fields, resealed: 1 to 3 values replaced by hostile ones.
    for case in 0..4000 {
        let mut m = meta.clone();
        let mut edits = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let path = &paths[rng.below(paths.len())];
            if let Some(slot) = m.pointer_mut(path) {
                *slot = hostile(&mut rng, slot);
                edits.push(format!("{path} = {slot}"));
            }
        }
        let case = format!("metadata case {case}: {}", edits.join(", "));
        loaded += load_without_panic(&frame(&m, &data), &case) as usize;
    }
    // What may load: resealed flips inside weights or pixels, and metadata edits that stay in
    // range (the run's `training` record, the dataset name, another valid sampler or λ). The
    // mutations must still mostly hit something the loader refuses.
    assert!(loaded < 5000, "{loaded} of 10,000 mutated bundles loaded");
}

#[test]
fn mutated_idx_files_never_panic() {
    let mut rng = G2dRng::seeded(7);
    let images = Images {
        pixels: (0..3 * 784).map(|i| (i % 256) as f32 / 255.0).collect(),
        labels: vec![1, 2, 3],
        channels: 1,
        rows: 28,
        cols: 28,
    };
    let (idx, labels) = (
        encode_idx_images(&images),
        encode_idx_labels(&images.labels),
    );
    let extremes = [0u32, 1, 3, 28, 255, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF];
    for case in 0..10_000 {
        let (mut img, mut lbl) = (idx.clone(), labels.clone());
        let target = if case % 2 == 0 { &mut img } else { &mut lbl };
        let header = if case % 2 == 0 { 16 } else { 8 };
        match rng.below(3) {
            0 => {
                let field = 4 * rng.below(header / 4);
                let v = extremes[rng.below(extremes.len())];
                target[field..field + 4].copy_from_slice(&v.to_be_bytes());
            }
            1 => target.truncate(rng.below(target.len())),
            _ => {
                let at = rng.below(target.len().min(header + 8));
                target[at] = rng.below(256) as u8;
            }
        }
        let outcome = catch_unwind(|| {
            let parsed = parse_idx_images(&img, "images")?;
            let l = parse_idx_labels(&lbl, "labels")?;
            Images::from_idx(parsed, l, "images")
        });
        assert!(outcome.is_ok(), "IDX case {case}: the parser panicked");
    }
}

/// Run centres the section table lists wrongly are refused, naming the section: empty, listed
/// twice, not whole vectors of θ, more than a bundle may hold, or not finite.
#[test]
fn bad_run_centre_sections_are_refused() {
    let (meta, data) = unframe(BUNDLE);
    let n = meta["regenerated"]["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product::<u64>()
        })
        .sum::<u64>() as usize;
    let with_centres = |values: &[f32], twice: bool| {
        let mut m = meta.clone();
        let mut d = data.clone();
        let sections = m["sections"].as_array_mut().unwrap();
        for _ in 0..if twice { 2 } else { 1 } {
            sections.push(
                serde_json::json!({"name": "param_centres", "dtype": "f32", "len": values.len()}),
            );
            d.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        }
        frame(&m, &d)
    };
    let loads = Bundle::from_bytes(&with_centres(&vec![0.5; 2 * n], false)).unwrap();
    assert_eq!(loads.param_centres.len(), 2 * n, "two whole centres load");
    let mut nan = vec![0.5; n];
    nan[3] = f32::NAN;
    for (values, twice, names) in [
        (vec![], false, "empty"),
        (vec![0.5; n], true, "listed twice"),
        (vec![0.5; n + 1], false, "whole vectors"),
        (vec![0.5; 65 * n], false, "at most 64"),
        (nan, false, "param_centres"),
    ] {
        let err = Bundle::from_bytes(&with_centres(&values, twice))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("param_centres") && err.contains(names),
            "{names}: {err}"
        );
        assert!(!load_without_panic(&with_centres(&values, twice), names));
    }
}
