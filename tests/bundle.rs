//! The bundle file: a round trip is exact, and every kind of damage is rejected with an error
//! that names it, before any weights are built.

mod common;

use common::small_bundle;
use g2d::bundle::{Bundle, Precision, HALF_SECTIONS};
use g2d::codec::{f16_to_f32, f32_to_f16, round_to_f16};
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

/// `bytes` with its metadata edited and the checksum recomputed, as an editor of the file could.
fn reframed(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let (mut meta, data) = common::unframe(bytes);
    edit(&mut meta);
    common::frame(&meta, &data)
}

#[test]
fn a_half_precision_bundle_holds_its_networks_in_two_bytes_a_value() {
    let mut full = small_bundle();
    // Two runs' means, the largest section of a real bundle.
    let n = full.theta_orig.len();
    full.param_centres = full
        .theta_orig
        .iter()
        .chain(&full.theta_orig)
        .map(|v| v * 1.001)
        .collect();
    assert_eq!(full.param_centres.len(), 2 * n);
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
    assert_ne!(full.param_centres, half.param_centres);
    assert!(half.param_centres.iter().all(|&v| v == round_to_f16(v)));

    let bytes = half.to_bytes();
    let halves = (half.decoder.len() + half.denoiser.len() + 2 * n + 2 * n) * 2;
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
    for name in HALF_SECTIONS {
        assert!(dtypes.contains(&(name, "f16")), "{name}: {dtypes:?}");
    }
    assert!(dtypes.contains(&("theta_orig", "f32")));
    // Its values are halves already: rounding them again, as an f32 bundle, changes nothing.
    let mut widened = decoded.clone();
    widened.precision = Precision::F32;
    let again = widened.at_precision(Precision::F16).unwrap();
    assert!(again == decoded, "rounding halves again changed them");
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
    // A standard deviation below half f16's smallest step would become 0, which no bundle may
    // hold; one just above it survives as a subnormal.
    let mut bundle = small_bundle();
    bundle.param_norm.std[4] = 1e-8;
    let err = bundle.at_precision(Precision::F16).unwrap_err();
    assert!(
        err.to_string()
            .contains("param_std: 0.00000001 rounds to 0 in f16"),
        "{err}"
    );
    let mut bundle = small_bundle();
    bundle.param_norm.std[4] = 1e-7;
    let half = bundle.at_precision(Precision::F16).unwrap();
    assert_eq!(half.param_norm.std[4], 2f32.powi(-23)); // 1.19e-7, the nearest half
    Bundle::from_bytes(&half.to_bytes()).unwrap();
}

/// Half precision changed nothing for bundles in f32: the committed fixtures' sections, and
/// their section table, write back byte for byte (their metadata gains the fields added since).
#[test]
fn full_precision_bundles_read_and_write_as_before() {
    for bytes in [
        &include_bytes!("fixtures/tiny.g2d")[..],
        &include_bytes!("fixtures/colours-cnn.g2d")[..],
    ] {
        let bundle = Bundle::from_bytes(bytes).unwrap();
        assert_eq!(bundle.precision, Precision::F32);
        let (meta, data) = common::unframe(bytes);
        let (meta_again, data_again) = common::unframe(&bundle.to_bytes());
        assert_eq!(meta_again["sections"], meta["sections"]);
        assert!(
            data_again == data,
            "a fixture's sections did not write back byte for byte"
        );
    }
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
