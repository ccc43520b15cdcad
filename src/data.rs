//! Stage 0, data: IDX files (MNIST, Fashion-MNIST) and the explicit train / validation / test
//! splits. The validation split is carved from the training file; the test split is only ever
//! reported, never used to select anything.

use crate::error::{G2dError, Result};
use crate::rng::G2dRng;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images as `f32` pixels in `[0, 1]`, each image channel by channel, row-major within a
/// channel (PyTorch's `[C, H, W]`), with one label per image.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub pixels: Vec<f32>,
    pub labels: Vec<u8>,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image: channels × rows × columns.
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Images {
        let p = self.pixels_per_image();
        let mut pixels = Vec::with_capacity(indices.len() * p);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * p..(i + 1) * p]);
        }
        Images {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// The first `n` images (all of them when `n` is larger).
    pub fn take(&self, n: usize) -> Images {
        let n = n.min(self.len());
        self.select(&(0..n).collect::<Vec<_>>())
    }

    /// Builds a set from parsed IDX images and labels, checking that the counts agree.
    pub fn from_idx(images: IdxImages, labels: Vec<u8>, name: &str) -> Result<Images> {
        if images.count != labels.len() {
            return Err(G2dError::Idx {
                file: name.to_string(),
                reason: format!(
                    "count mismatch: {} images but {} labels",
                    images.count,
                    labels.len()
                ),
            });
        }
        Ok(Images {
            pixels: images.pixels,
            labels,
            channels: 1,
            rows: images.rows,
            cols: images.cols,
        })
    }
}

/// The three splits every stage works on.
#[derive(Clone, Debug)]
pub struct Splits {
    pub name: String,
    pub train: Images,
    pub validation: Images,
    pub test: Images,
}

impl Splits {
    /// Image height and width.
    pub fn image(&self) -> [usize; 2] {
        [self.train.rows, self.train.cols]
    }

    /// Channels per image: 1 (grey) or 3 (RGB).
    pub fn channels(&self) -> usize {
        self.train.channels
    }

    /// The number of classes: one more than the largest label of any split.
    pub fn classes(&self) -> usize {
        let sets = [&self.train, &self.validation, &self.test];
        let top = sets.iter().flat_map(|s| s.labels.iter()).max();
        top.map_or(0, |&l| usize::from(l) + 1)
    }

    /// Carves `validation_size` images out of `train` (a seeded shuffle), keeps `test` as is.
    pub fn carve(
        name: &str,
        train: Images,
        test: Images,
        validation_size: usize,
        seed: u64,
    ) -> Result<Splits> {
        if validation_size == 0 || validation_size >= train.len() {
            return Err(G2dError::config(
                "validation_size",
                format!(
                    "must be between 1 and {} (the training images), got {validation_size}",
                    train.len().saturating_sub(1)
                ),
            ));
        }
        let mut order: Vec<usize> = (0..train.len()).collect();
        G2dRng::seeded(seed).shuffle(&mut order);
        let (val_idx, train_idx) = order.split_at(validation_size);
        Ok(Splits {
            name: name.to_string(),
            validation: train.select(val_idx),
            train: train.select(train_idx),
            test,
        })
    }
}

/// Parsed IDX image file.
#[derive(Debug)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<f32>,
}

fn idx_error(file: &str, reason: impl Into<String>) -> G2dError {
    G2dError::Idx {
        file: file.to_string(),
        reason: reason.into(),
    }
}

fn read_u32(bytes: &[u8], at: usize, file: &str, field: &str) -> Result<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| {
            idx_error(
                file,
                format!(
                    "truncated header: no {field} at byte {at} (file has {} bytes)",
                    bytes.len()
                ),
            )
        })
}

fn check_magic(bytes: &[u8], expected: u32, file: &str) -> Result<()> {
    let magic = read_u32(bytes, 0, file, "magic number")?;
    if magic != expected {
        return Err(idx_error(
            file,
            format!("bad magic number 0x{magic:08x}, expected 0x{expected:08x}"),
        ));
    }
    Ok(())
}

fn body<'a>(bytes: &'a [u8], header: usize, len: usize, file: &str) -> Result<&'a [u8]> {
    let available = bytes.len().saturating_sub(header);
    if available < len {
        return Err(idx_error(
            file,
            format!("truncated: header promises {len} data bytes, file has {available}"),
        ));
    }
    if available > len {
        return Err(idx_error(
            file,
            format!(
                "{} trailing bytes after the {len} data bytes",
                available - len
            ),
        ));
    }
    Ok(&bytes[header..])
}

/// Parses an uncompressed IDX image file (magic 0x00000803), pixels scaled to `[0, 1]`.
pub fn parse_idx_images(bytes: &[u8], file: &str) -> Result<IdxImages> {
    check_magic(bytes, IMAGES_MAGIC, file)?;
    let count = read_u32(bytes, 4, file, "image count")? as usize;
    let rows = read_u32(bytes, 8, file, "row count")? as usize;
    let cols = read_u32(bytes, 12, file, "column count")? as usize;
    let len = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .ok_or_else(|| {
            idx_error(
                file,
                format!("header dimensions {count} × {rows} × {cols} overflow"),
            )
        })?;
    let data = body(bytes, 16, len, file)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: data.iter().map(|&b| b as f32 / 255.0).collect(),
    })
}

/// Parses an uncompressed IDX label file (magic 0x00000801); labels must be digits 0–9.
pub fn parse_idx_labels(bytes: &[u8], file: &str) -> Result<Vec<u8>> {
    check_magic(bytes, LABELS_MAGIC, file)?;
    let count = read_u32(bytes, 4, file, "label count")? as usize;
    let data = body(bytes, 8, count, file)?;
    if let Some(pos) = data.iter().position(|&l| l > 9) {
        return Err(idx_error(
            file,
            format!("label {} at index {pos} is not a class 0-9", data[pos]),
        ));
    }
    Ok(data.to_vec())
}

/// Writes grey images as an IDX image file (used to build the embedded slice and test files).
pub fn encode_idx_images(images: &Images) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    for v in [
        IMAGES_MAGIC,
        images.len() as u32,
        images.rows as u32,
        images.cols as u32,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend(images.pixels.iter().map(|&p| (p * 255.0).round() as u8));
    out
}

/// Writes labels as an IDX label file.
pub fn encode_idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Images {
        Images {
            pixels: (0..2 * 4).map(|i| i as f32 / 255.0).collect(),
            labels: vec![3, 7],
            channels: 1,
            rows: 2,
            cols: 2,
        }
    }

    #[test]
    fn idx_round_trip_is_exact() {
        let images = tiny();
        let parsed = parse_idx_images(&encode_idx_images(&images), "x").unwrap();
        let labels = parse_idx_labels(&encode_idx_labels(&images.labels), "y").unwrap();
        assert_eq!(Images::from_idx(parsed, labels, "x").unwrap(), images);
    }

    #[test]
    fn bad_magic_is_named() {
        let mut bytes = encode_idx_images(&tiny());
        bytes[3] = 0x01;
        let err = parse_idx_images(&bytes, "train-images")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images") && err.contains("bad magic number 0x00000801"),
            "{err}"
        );
        let err = parse_idx_labels(&encode_idx_images(&tiny()), "labels")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad magic"), "{err}");
    }

    #[test]
    fn truncated_files_are_rejected() {
        let bytes = encode_idx_images(&tiny());
        let err = parse_idx_images(&bytes[..bytes.len() - 1], "imgs")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("truncated: header promises 8 data bytes, file has 7"),
            "{err}"
        );
        let err = parse_idx_images(&bytes[..10], "imgs")
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated header"), "{err}");
        let err = parse_idx_labels(&encode_idx_labels(&[1, 2])[..9], "lbl")
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn overflowing_header_dimensions_are_rejected() {
        let mut bytes = encode_idx_images(&tiny());
        bytes[4..16].fill(0xFF);
        let err = parse_idx_images(&bytes, "imgs").unwrap_err().to_string();
        assert!(err.contains("imgs") && err.contains("overflow"), "{err}");
    }

    #[test]
    fn trailing_bytes_and_bad_labels_are_rejected() {
        let mut bytes = encode_idx_labels(&[1, 2]);
        bytes.push(0);
        assert!(parse_idx_labels(&bytes, "l")
            .unwrap_err()
            .to_string()
            .contains("trailing"));
        let err = parse_idx_labels(&encode_idx_labels(&[1, 12]), "l")
            .unwrap_err()
            .to_string();
        assert!(err.contains("label 12 at index 1"), "{err}");
    }

    #[test]
    fn count_mismatch_between_images_and_labels_is_rejected() {
        let images = parse_idx_images(&encode_idx_images(&tiny()), "i").unwrap();
        let err = Images::from_idx(images, vec![1], "mnist")
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 images but 1 labels"), "{err}");
    }

    #[test]
    fn validation_is_carved_from_train_without_overlap() {
        let train = Images {
            pixels: (0..10).map(|i| i as f32).collect(),
            labels: (0..10).map(|i| i as u8 % 10).collect(),
            channels: 1,
            rows: 1,
            cols: 1,
        };
        let s = Splits::carve("t", train, tiny(), 3, 1).unwrap();
        assert_eq!((s.train.len(), s.validation.len()), (7, 3));
        let mut all: Vec<f32> = s
            .train
            .pixels
            .iter()
            .chain(&s.validation.pixels)
            .copied()
            .collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, (0..10).map(|i| i as f32).collect::<Vec<_>>());
    }
}
