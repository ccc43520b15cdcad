//! The bundle file: a round trip is exact, and every kind of damage is rejected with an error
//! that names it, before any weights are built.

mod common;

use common::small_bundle;
use g2d::bundle::{Bundle, Precision};
use g2d::codec::{f16_to_f32, f32_to_f16};
use g2d::generate::Candidates;

fn error_of(bytes: &[u8]) -> String {
    Bundle::from_bytes(bytes).unwrap_err().to_string()
}

fn code_of(bytes: &[u8]) -> &'static str {
    Bundle::from_bytes(bytes).unwrap_err().code()
}

#[test]
fn round_trip_is_exact() {
    let bundle = small_bundle();
    let decoded = Bundle::from_bytes(&bundle.to_bytes()).unwrap();
    assert_eq!(decoded.theta_orig, bundle.theta_orig);
    assert_eq!(decoded.decoder, bundle.decoder);
    assert_eq!(decoded.validation, bundle.validation);
    assert_eq!(decoded.meta.regenerated, bundle.meta.regenerated);
    assert_eq!(decoded.to_bytes(), bundle.to_bytes());
    let mut measured = small_bundle();
    measured.meta.candidates = Some(Candidates::from_check(97, 100));
    let decoded = Bundle::from_bytes(&measured.to_bytes()).unwrap();
    assert_eq!(decoded.meta.candidates, measured.meta.candidates);
}

#[test]
fn truncation_is_reported_as_truncation() {
    let bytes = small_bundle().to_bytes();
    for cut in [1, 100, bytes.len() / 2] {
        let err = error_of(&bytes[..bytes.len() - cut]);
        assert!(err.contains("truncated"), "cut {cut}: {err}");
    }
    assert!(error_of(&bytes[..20]).contains("truncated"));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(error_of(&longer).contains("unexpected bytes after the checksum"));
    assert_eq!(code_of(&longer), "BUNDLE_TRUNCATED");
}

#[test]
fn a_flipped_byte_fails_the_checksum() {
    let bytes = small_bundle().to_bytes();
    for at in [40, bytes.len() / 2, bytes.len() - 40] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        let err = error_of(&damaged);
        assert!(err.contains("checksum mismatch"), "byte {at}: {err}");
        assert_eq!(code_of(&damaged), "BUNDLE_CHECKSUM");
    }
}

#[test]
fn wrong_magic_and_version_are_named() {
    let mut bytes = small_bundle().to_bytes();
    bytes[8] = 2;
    assert!(error_of(&bytes).contains("unsupported format version 2"));
    bytes[0] = b'X';
    assert!(error_of(&bytes).contains("not a G2D bundle"));
    assert_eq!(code_of(&bytes), "BUNDLE_FORMAT");
}

#[test]
fn nan_weights_are_rejected() {
    let mut bundle = small_bundle();
    bundle.denoiser[3] = f32::NAN;
    let err = error_of(&bundle.to_bytes());
    assert!(
        err.contains("section denoiser contains 1 non-finite"),
        "{err}"
    );
    assert_eq!(code_of(&bundle.to_bytes()), "BUNDLE_VALUE");
}

#[test]
fn shape_mismatches_are_rejected() {
    let mut bundle = small_bundle();
    bundle.decoder.pop();
    let err = error_of(&bundle.to_bytes());
    assert!(
        err.contains("section decoder holds") && err.contains("configuration implies"),
        "{err}"
    );
    assert_eq!(code_of(&bundle.to_bytes()), "BUNDLE_SECTION");

    let mut bundle = small_bundle();
    bundle.meta.classifier.arch = g2d::classifier::Arch::Cnn;
    let err = error_of(&bundle.to_bytes());
    assert!(err.contains("manifest does not match a cnn"), "{err}");

    let mut bundle = small_bundle();
    bundle.theta_orig[0] += 1.0;
    let err = error_of(&bundle.to_bytes());
    assert!(err.contains("theta_orig SHA-256"), "{err}");
}

/// Metadata that once crashed the loader (with the checksum recomputed, as anyone can) is
/// refused before a network is built, naming the field.
#[test]
fn out_of_range_metadata_is_refused_naming_the_field() {
    type Edit = fn(&mut g2d::bundle::BundleMeta);
    let cases: [(Edit, &str); 17] = [
        (|m| m.autoencoder.channels.clear(), "autoencoder.channels"),
        (|m| m.autoencoder.fold = 0, "autoencoder.fold"),
        (|m| m.schedule.timesteps = 0, "schedule.timesteps"),
        (|m| m.schedule.beta_end = 2.0, "beta_end"),
        (|m| m.denoiser.channels = 1_000_000, "denoiser.channels"),
        (|m| m.denoiser.blocks = 1_000_000_000, "denoiser.blocks"),
        (|m| m.denoiser.time_dim = 0, "denoiser.time_dim"),
        (
            |m| m.denoiser.latent_channels = 3,
            "denoiser.latent_channels",
        ),
        (
            |m| m.sampler = g2d::diffusion::sampler::SamplerConfig::Ddim { steps: 0, eta: 0.0 },
            "sampler",
        ),
        (
            |m| {
                m.sampler = g2d::diffusion::sampler::SamplerConfig::Ddim {
                    steps: 10,
                    eta: 7.0,
                }
            },
            "sampler",
        ),
        (|m| m.latent_clip = -1.0, "latent_clip"),
        (|m| m.guard_delta = -5.0, "guard_delta"),
        (
            |m| {
                m.candidates = Some(Candidates {
                    count: 0,
                    sampled: 100,
                    accepted: 0,
                })
            },
            "candidates.count",
        ),
        (
            |m| {
                m.candidates = Some(Candidates {
                    count: 2,
                    sampled: 10,
                    accepted: 11,
                })
            },
            "candidates",
        ),
        (|m| m.classifier.hidden = vec![100_000], "hidden"),
        (|m| m.classifier.hidden = vec![4096; 8], "hidden (weights)"),
        (
            |m| m.torch_names = Some([("fc9.weight".into(), "0.weight".into())].into()),
            "torch_names must give each of",
        ),
    ];
    for (edit, field) in cases {
        let mut bundle = small_bundle();
        edit(&mut bundle.meta);
        let bytes = bundle.to_bytes();
        let err = error_of(&bytes);
        assert!(err.contains(field), "expected {field} named: {err}");
        assert_eq!(code_of(&bytes), "BUNDLE_METADATA", "{err}");
    }
}

/// Re-frames a bundle's metadata and data with a fresh checksum, as an editor of the file could.
fn reframed(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let meta_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let mut meta: serde_json::Value = serde_json::from_slice(&bytes[28..28 + meta_len]).unwrap();
    edit(&mut meta);
    let json = serde_json::to_vec(&meta).unwrap();
    let data = &bytes[28 + meta_len..bytes.len() - 32];
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

#[test]
fn a_half_precision_bundle_holds_its_networks_in_two_bytes_a_value() {
    let full = small_bundle();
    let half = full.clone().at_precision(Precision::F16).unwrap();
    // Rounded to the nearest half, and only where a half cannot hold the value.
    for (a, b) in full.decoder.iter().zip(&half.decoder) {
        assert_eq!(*b, f16_to_f32(f32_to_f16(*a)));
        assert!(
            (a - b).abs() <= a.abs() * 2f32.powi(-11) + 2f32.powi(-25),
            "{a} → {b}"
        );
    }
    assert_ne!(full.denoiser, half.denoiser);
    assert_eq!(full.theta_orig, half.theta_orig);
    assert_eq!(full.latent_norm, half.latent_norm);
    assert_ne!(full.param_norm, half.param_norm);

    let bytes = half.to_bytes();
    let halves = (half.decoder.len() + half.denoiser.len() + 2 * half.param_norm.mean.len()) * 2;
    // Two bytes saved a value; "f16" is as long as "f32" in the section table.
    assert_eq!(full.to_bytes().len() - bytes.len(), halves);
    let decoded = Bundle::from_bytes(&bytes).unwrap();
    let mut expected = half.clone();
    expected.meta.sections = decoded.meta.sections.clone(); // written by to_bytes
    assert!(
        decoded == expected,
        "the decoded bundle differs from what was written"
    );
    assert_eq!(decoded.precision, Precision::F16);
    assert_eq!(decoded.to_bytes(), bytes);
    let dtypes: Vec<_> = decoded
        .meta
        .sections
        .iter()
        .map(|s| (s.name.as_str(), s.dtype.as_str()))
        .collect();
    assert!(dtypes.contains(&("decoder", "f16")) && dtypes.contains(&("denoiser", "f16")));
    assert!(dtypes.contains(&("theta_orig", "f32")));
    // Rounding again changes nothing.
    assert!(decoded.clone().at_precision(Precision::F16).unwrap() == decoded);
}

#[test]
fn half_precision_refuses_what_a_half_cannot_hold() {
    let mut bundle = small_bundle();
    bundle.decoder[2] = 1e6;
    let err = bundle.at_precision(Precision::F16).unwrap_err();
    assert_eq!(err.code(), "BUNDLE_VALUE");
    assert!(
        err.to_string()
            .contains("section decoder: 1000000 is past f16's range"),
        "{err}"
    );
}

#[test]
fn half_precision_sections_are_checked_like_the_rest() {
    let bytes = small_bundle()
        .at_precision(Precision::F16)
        .unwrap()
        .to_bytes();
    // θ_orig may not be stored in halves: the guard and its hash need it exact.
    let err = error_of(&reframed(&bytes, |m| {
        let s = m["sections"].as_array_mut().unwrap();
        let theta = s.iter_mut().find(|s| s["name"] == "theta_orig").unwrap();
        theta["dtype"] = "f16".into();
        theta["len"] = (theta["len"].as_u64().unwrap() * 2).into();
    }));
    assert!(err.contains("section theta_orig has dtype f16"), "{err}");
    // One network in halves and the other not is refused, so a re-export cannot change it.
    let mixed = reframed(&bytes, |m| {
        let s = m["sections"].as_array_mut().unwrap();
        let decoder = s.iter_mut().find(|s| s["name"] == "decoder").unwrap();
        decoder["dtype"] = "f32".into();
        decoder["len"] = (decoder["len"].as_u64().unwrap() / 2).into();
    });
    let err = error_of(&mixed);
    assert!(err.contains("denoiser is f16 but decoder is f32"), "{err}");
    assert_eq!(code_of(&mixed), "BUNDLE_SECTION");
    // A non-finite half (0x7c00, +∞) is named like a non-finite f32.
    let mut bundle = small_bundle().at_precision(Precision::F16).unwrap();
    bundle.denoiser[1] = f32::INFINITY;
    let err = error_of(&bundle.to_bytes());
    assert!(
        err.contains("section denoiser contains 1 non-finite"),
        "{err}"
    );
}
