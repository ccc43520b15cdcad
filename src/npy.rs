//! NumPy's file formats: `.npy` arrays (format 1.0 to 3.0, little-endian, C order) and `.npz`
//! archives of them (zip, stored or deflated), read for data sets and written for exported
//! parameters. Everything NumPy writes for plain numeric arrays reads back; anything else is
//! an error naming the file and the array.

use std::io::Read;

use crate::error::{G2dError, Result};

/// One array: its shape and its values widened to f64 (exact for every integer type a label
/// or pixel uses, and for f16/f32/f64).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    /// NumPy's type string without the byte order, e.g. `u1`, `i8`, `f4`.
    pub dtype: String,
}

/// The most an archive member may inflate to (full MNIST's training images are 47 MB).
const MAX_MEMBER: u64 = 1 << 30;

fn fail(file: &str, reason: impl Into<String>) -> G2dError {
    G2dError::Idx {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// Parses one `.npy` array; `file` names it in errors.
pub fn parse_npy(bytes: &[u8], file: &str) -> Result<Array> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err(fail(file, "not a .npy array (no \\x93NUMPY magic)"));
    }
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
            (len as usize, 12)
        }
        v => {
            return Err(fail(
                file,
                format!(".npy format version {v} is not supported"),
            ))
        }
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| fail(file, "truncated or non-text .npy header"))?;
    let field = |key: &str| {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr")
        .and_then(|r| r.strip_prefix('\'')?.split('\'').next())
        .ok_or_else(|| fail(file, "the .npy header has no 'descr'"))?;
    if field("fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(fail(
            file,
            "Fortran-ordered arrays are not supported (save a C-ordered copy)",
        ));
    }
    let shape: Vec<usize> = field("shape")
        .and_then(|r| r.strip_prefix('(')?.split(')').next())
        .ok_or_else(|| fail(file, "the .npy header has no 'shape'"))?
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| fail(file, "the .npy shape is not a tuple of sizes"))?;
    let (order, dtype) = descr.split_at(1);
    if order == ">" && !dtype.ends_with('1') {
        return Err(fail(file, format!("big-endian {descr} is not supported")));
    }
    let data = &bytes[start + len..];
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| fail(file, "the .npy shape overflows"))?;
    let values = decode(dtype, data, count).ok_or_else(|| {
        fail(
            file,
            format!(
                "{descr} data of {} bytes does not hold {count} values of a numeric type",
                data.len()
            ),
        )
    })?;
    Ok(Array {
        shape,
        values,
        dtype: dtype.to_string(),
    })
}

/// `count` little-endian values of NumPy type `dtype` (`u1`, `i8`, `f4`, …), or `None`.
fn decode(dtype: &str, data: &[u8], count: usize) -> Option<Vec<f64>> {
    let size: usize = dtype.get(1..)?.parse().ok()?;
    if data.len() != count.checked_mul(size)? {
        return None;
    }
    let chunks = data.chunks_exact(size);
    fn le<const N: usize>(c: &[u8]) -> [u8; N] {
        c.try_into().expect("chunks_exact gives N bytes")
    }
    let values = match (dtype.as_bytes()[0], size) {
        (b'u' | b'b', 1) => chunks.map(|c| f64::from(c[0])).collect(),
        (b'i', 1) => chunks.map(|c| f64::from(c[0] as i8)).collect(),
        (b'u', 2) => chunks
            .map(|c| f64::from(u16::from_le_bytes(le(c))))
            .collect(),
        (b'i', 2) => chunks
            .map(|c| f64::from(i16::from_le_bytes(le(c))))
            .collect(),
        (b'u', 4) => chunks
            .map(|c| f64::from(u32::from_le_bytes(le(c))))
            .collect(),
        (b'i', 4) => chunks
            .map(|c| f64::from(i32::from_le_bytes(le(c))))
            .collect(),
        (b'u', 8) => chunks.map(|c| u64::from_le_bytes(le(c)) as f64).collect(),
        (b'i', 8) => chunks.map(|c| i64::from_le_bytes(le(c)) as f64).collect(),
        (b'f', 2) => chunks
            .map(|c| f64::from(crate::codec::f16_to_f32(u16::from_le_bytes(le(c)))))
            .collect(),
        (b'f', 4) => chunks
            .map(|c| f64::from(f32::from_le_bytes(le(c))))
            .collect(),
        (b'f', 8) => chunks.map(|c| f64::from_le_bytes(le(c))).collect(),
        _ => return None,
    };
    Some(values)
}

/// An f32 array as `.npy` bytes.
pub fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    npy_bytes("<f4", shape, &crate::codec::f32_to_le_bytes(values))
}

/// An array of NumPy type `descr` (`<f4`, `|u1`, `<i8`) over its raw little-endian `data`,
/// as `.npy` bytes: format 1.0, the header padded to 64 bytes as NumPy pads it.
pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    let pad = 64 - (10 + header.len() + 1) % 64;
    header.push_str(&" ".repeat(pad % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// The members of a zip archive (`.npz`) by name, inflated; `file` names it in errors.
pub fn read_zip(bytes: &[u8], file: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let bad = |what: &str| fail(file, format!("not a readable .npz (zip): {what}"));
    let end = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&at| u32_at(at) == Some(0x0605_4b50))
        .ok_or_else(|| bad("no end of central directory"))?;
    let count = usize::from(u16_at(end + 10).ok_or_else(|| bad("truncated"))?);
    let mut at = u32_at(end + 16).ok_or_else(|| bad("truncated"))? as usize;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        if u32_at(at) != Some(0x0201_4b50) {
            return Err(bad(
                "damaged central directory (ZIP64 archives are not supported)",
            ));
        }
        let field = |off: usize| {
            u16_at(at + off)
                .map(usize::from)
                .ok_or_else(|| bad("truncated"))
        };
        let method = field(10)?;
        let compressed = u32_at(at + 20).ok_or_else(|| bad("truncated"))? as usize;
        let (name_len, extra, comment) = (field(28)?, field(30)?, field(32)?);
        let local = u32_at(at + 42).ok_or_else(|| bad("truncated"))? as usize;
        let name = bytes
            .get(at + 46..at + 46 + name_len)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .ok_or_else(|| bad("truncated"))?;
        at += 46 + name_len + extra + comment;
        let skip = 30
            + usize::from(u16_at(local + 26).ok_or_else(|| bad("truncated"))?)
            + usize::from(u16_at(local + 28).ok_or_else(|| bad("truncated"))?);
        let data = bytes
            .get(local + skip..local + skip + compressed)
            .ok_or_else(|| bad(&format!("member {name} is truncated")))?;
        let data = match method {
            0 => data.to_vec(),
            8 => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(data)
                    .take(MAX_MEMBER + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| bad(&format!("member {name}: {e}")))?;
                if out.len() as u64 > MAX_MEMBER {
                    return Err(bad(&format!(
                        "member {name} inflates past {MAX_MEMBER} bytes"
                    )));
                }
                out
            }
            m => return Err(bad(&format!("member {name} uses compression method {m}"))),
        };
        members.push((name, data));
    }
    Ok(members)
}

/// A zip archive of `(name, bytes)` members, stored uncompressed (what `np.savez` writes).
pub fn write_zip(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        // version 2.0, no flags, stored, 1980-01-01 00:00, crc, sizes, name length, no extra
        let fields = |head: &mut Vec<u8>| {
            head.extend(20u16.to_le_bytes());
            head.extend([0, 0, 0, 0, 0, 0]);
            head.extend(0x21u16.to_le_bytes());
            head.extend(crc.sum().to_le_bytes());
            head.extend((data.len() as u32).to_le_bytes());
            head.extend((data.len() as u32).to_le_bytes());
            head.extend((name.len() as u16).to_le_bytes());
            head.extend(0u16.to_le_bytes());
        };
        out.extend(0x0403_4b50u32.to_le_bytes());
        fields(&mut out);
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        fields(&mut central);
        central.extend([0; 10]); // comment length, disk, internal and external attributes
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let (start, size) = (out.len() as u32, central.len() as u32);
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0; 4]);
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend(size.to_le_bytes());
    out.extend(start.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// The arrays of an `.npz` by name (`x_train` for member `x_train.npy`).
pub fn read_npz(bytes: &[u8], file: &str) -> Result<Vec<(String, Array)>> {
    read_zip(bytes, file)?
        .into_iter()
        .map(|(name, data)| {
            let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
            parse_npy(&data, &format!("{file}: {name}")).map(|a| (key, a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip_through_npy_and_npz() {
        let npy = npy_f32(&[2, 3], &[1.0, -2.5, 3.0, 0.0, 1e-3, 7.0]);
        assert_eq!((npy.len() - 6 * 4) % 64, 0, "header padded to 64 bytes");
        let a = parse_npy(&npy, "a.npy").unwrap();
        assert_eq!(
            (a.shape.as_slice(), a.dtype.as_str()),
            ([2, 3].as_slice(), "f4")
        );
        assert_eq!(a.values[1], -2.5);
        let zip = write_zip(&[
            ("a.npy".into(), npy),
            ("b.npy".into(), npy_f32(&[1], &[4.0])),
        ]);
        let arrays = read_npz(&zip, "t.npz").unwrap();
        assert_eq!(arrays[0].0, "a");
        assert_eq!(arrays[1].1.shape, [1]);
        assert_eq!(arrays[1].1.values, [4.0]);
    }

    /// `np.save` of a 2×2 uint8 array, in Fortran order when `order` is `True`.
    fn npy_u8(order: &str, values: &[u8]) -> Vec<u8> {
        let mut npy = npy_bytes("|u1", &[2, 2], values);
        if order == "True" {
            let at = npy.windows(5).position(|w| w == b"False").unwrap();
            npy[at..at + 5].copy_from_slice(b"True ");
        }
        npy
    }

    #[test]
    fn what_numpy_writes_in_other_types_reads() {
        let a = parse_npy(&npy_u8("False", &[1, 2, 3, 250]), "u8.npy").unwrap();
        assert_eq!(a.values, [1.0, 2.0, 3.0, 250.0]);
        let short = parse_npy(&npy_u8("False", &[1, 2, 3]), "u8.npy").unwrap_err();
        let err = short.to_string();
        assert!(
            err.contains("u8.npy") && err.contains("does not hold 4 values"),
            "{err}"
        );
        let fortran = parse_npy(&npy_u8("True", &[1, 2, 3, 4]), "f.npy").unwrap_err();
        assert!(fortran.to_string().contains("Fortran"), "{fortran}");
        let err = read_zip(b"not a zip at all, not even close", "x.npz").unwrap_err();
        assert!(err.to_string().contains("x.npz"), "{err}");
    }
}
