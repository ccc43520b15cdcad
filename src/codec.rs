//! The one float codec of the crate's files (bundle sections, safetensors artifacts, hashes):
//! little-endian IEEE-754, four bytes a value, or two for half precision (bundles written with
//! `--precision f16`, and PyTorch's float16 tensors); and the hex SHA-256 that names their
//! contents.

/// `values` as little-endian bytes.
pub fn f32_to_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian bytes back to values; a trailing partial value is the caller's to reject
/// (lengths are checked against the file's header before this runs).
pub fn f32_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// IEEE half to single precision, subnormals and specials included.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let mantissa = f32::from(h & 0x3ff);
    sign * match exponent {
        0 => mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + mantissa / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Single to half precision, rounding to nearest (ties to even) as IEEE 754 does; values past
/// f16's range become infinities, NaN stays NaN.
pub fn f32_to_f16(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    if exponent == 0xff {
        return sign | 0x7c00 | if mantissa != 0 { 0x200 } else { 0 };
    }
    // The value's exponent in f16's bias; below 1 it is a subnormal (or rounds to zero).
    let e = exponent - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    // The f16 value as an integer count of its last place (2^(e-25) for normals, 2^-24 for
    // subnormals), before rounding: `full` holds the 24-bit significand, `shift` the bits to drop.
    let (full, shift, base) = if e >= 1 {
        (mantissa | 0x80_0000, 13, ((e as u32) << 10) - 0x400)
    } else if e >= -10 {
        (mantissa | 0x80_0000, (14 - e) as u32, 0)
    } else {
        return sign; // below half the smallest subnormal: ±0
    };
    let kept = full >> shift;
    let rest = full & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    let rounded = kept + u32::from(rest > half || (rest == half && kept & 1 == 1));
    // A carry out of the significand moves into the exponent field, up to infinity: that is
    // what rounding up across a power of two (or past 65504) means in IEEE 754.
    sign | (base + rounded) as u16
}

/// The half nearest `v`, widened back: what an f16 section stores for it.
pub fn round_to_f16(v: f32) -> f32 {
    f16_to_f32(f32_to_f16(v))
}

/// `values` as little-endian half-precision bytes, two a value ([`f32_to_f16`]).
pub fn f16_to_le_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| f32_to_f16(v).to_le_bytes())
        .collect()
}

/// Little-endian half-precision bytes back to single precision.
pub fn f16_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_bit() {
        let values = [0.0, -0.0, 1.5, f32::MIN_POSITIVE, f32::MAX, -3.25e-12];
        let back = f32_from_le_bytes(&f32_to_le_bytes(&values));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));
        assert_eq!(f32_to_le_bytes(&[1.0]), [0x00, 0x00, 0x80, 0x3f]);
    }

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn every_half_survives_the_round_trip() {
        for h in 0..=u16::MAX {
            let v = f16_to_f32(h);
            if v.is_nan() {
                assert!(f16_to_f32(f32_to_f16(v)).is_nan());
            } else {
                assert_eq!(f32_to_f16(v), h, "{h:#06x} ({v})");
            }
        }
    }

    #[test]
    fn single_precision_rounds_to_the_nearest_half() {
        // 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): ties go to even.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11) + 2f32.powi(-20)), 0x3c01);
        assert_eq!(f32_to_f16(0.1), 0x2e66);
        assert_eq!(f32_to_f16(-0.333_333_34), 0xb555);
        // Subnormals, and values too small for one: half the smallest ties to zero (even).
        assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16(3.0 * 2f32.powi(-25)), 0x0002);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000);
        assert_eq!(f32_to_f16(1e-10), 0x0000);
        assert_eq!(f32_to_f16(-1e-10), 0x8000);
        // The largest half, rounding past it, and beyond.
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(1e9), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
        // Rounding up across a power of two carries into the exponent.
        assert_eq!(f32_to_f16(2047.5), 0x6800); // 2048
        assert_eq!(
            f16_from_le_bytes(&f16_to_le_bytes(&[0.5, -2.0])),
            [0.5, -2.0]
        );
    }
}
