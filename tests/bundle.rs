//! The bundle file: a round trip is exact, and every kind of damage is rejected with an error
//! that names it, before any weights are built.

mod common;

use common::small_bundle;
use g2d::bundle::Bundle;

fn error_of(bytes: &[u8]) -> String {
    Bundle::from_bytes(bytes).unwrap_err().to_string()
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
}

#[test]
fn a_flipped_byte_fails_the_checksum() {
    let bytes = small_bundle().to_bytes();
    for at in [40, bytes.len() / 2, bytes.len() - 40] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        let err = error_of(&damaged);
        assert!(err.contains("checksum mismatch"), "byte {at}: {err}");
    }
}

#[test]
fn wrong_magic_and_version_are_named() {
    let mut bytes = small_bundle().to_bytes();
    bytes[8] = 2;
    assert!(error_of(&bytes).contains("unsupported format version 2"));
    bytes[0] = b'X';
    assert!(error_of(&bytes).contains("not a G2D bundle"));
}

#[test]
fn nan_weights_are_rejected() {
    let mut bundle = small_bundle();
    bundle.denoiser[3] = f32::NAN;
    let err = error_of(&bundle.to_bytes());
    assert!(
        err.contains("bundle section denoiser contains 1 non-finite"),
        "{err}"
    );
}

#[test]
fn shape_mismatches_are_rejected() {
    let mut bundle = small_bundle();
    bundle.decoder.pop();
    let err = error_of(&bundle.to_bytes());
    assert!(
        err.contains("bundle section decoder") && err.contains("shape mismatch"),
        "{err}"
    );

    let mut bundle = small_bundle();
    bundle.meta.arch = g2d::classifier::Arch::Cnn;
    let err = error_of(&bundle.to_bytes());
    assert!(err.contains("manifest does not match a cnn"), "{err}");

    let mut bundle = small_bundle();
    bundle.theta_orig[0] += 1.0;
    let err = error_of(&bundle.to_bytes());
    assert!(err.contains("theta_orig SHA-256"), "{err}");
}
