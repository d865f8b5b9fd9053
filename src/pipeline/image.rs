//! Image pre-processing: decode PNG/JPEG, resize, centre-crop, normalise, lay out
//! channels first. Pure over bytes; limits checked before any large allocation.

use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use serde::Deserialize;

use super::PipelineError;

/// `[pipeline.image]` in model.toml.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageParams {
    /// Resize so the short side is this long, keeping the aspect ratio.
    pub resize_short: Option<u32>,
    /// Or resize to exactly [width, height].
    pub resize: Option<[u32; 2]>,
    /// Centre-crop to a square of this side after resizing.
    pub crop: Option<u32>,
    /// 1 (grayscale) or 3 (RGB).
    #[serde(default = "three")]
    pub channels: u32,
    /// Each value becomes (x − mean) / scale, x in 0..=255.
    #[serde(default)]
    pub mean: f32,
    #[serde(default = "one")]
    pub scale: f32,
    /// Largest encoded image accepted, in bytes.
    #[serde(default = "max_bytes")]
    pub max_bytes: usize,
    /// Largest decoded image accepted, in pixels (width × height).
    #[serde(default = "max_pixels")]
    pub max_pixels: u64,
}

fn three() -> u32 {
    3
}
fn one() -> f32 {
    1.0
}
fn max_bytes() -> usize {
    16 << 20
}
fn max_pixels() -> u64 {
    40_000_000
}

impl ImageParams {
    /// Checks the parameters; `Err` names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.resize_short.is_some() == self.resize.is_some() {
            return Err("pipeline.image: give exactly one of `resize_short` or `resize`".into());
        }
        if !matches!(self.channels, 1 | 3) {
            return Err(format!(
                "pipeline.image.channels: expected 1 or 3, got {}",
                self.channels
            ));
        }
        if !(self.scale.is_finite() && self.scale != 0.0 && self.mean.is_finite()) {
            return Err(
                "pipeline.image: `mean` must be finite and `scale` finite and non-zero".into(),
            );
        }
        if self.resize_short == Some(0)
            || self.crop == Some(0)
            || self.resize.is_some_and(|[w, h]| w == 0 || h == 0)
        {
            return Err("pipeline.image: sizes must be positive".into());
        }
        Ok(())
    }

    /// Values per image after pre-processing: channels × height × width.
    pub fn output_len(&self) -> usize {
        let (w, h) = match (self.crop, self.resize, self.resize_short) {
            (Some(c), _, _) => (c, c),
            (None, Some([w, h]), _) => (w, h),
            // Without a crop the size depends on the image: known only per image.
            _ => (0, 0),
        };
        (self.channels * w * h) as usize
    }
}

/// Decodes and transforms one image into `channels × h × w` floats, channels first.
pub fn preprocess(bytes: &[u8], p: &ImageParams, field: &str) -> Result<Vec<f32>, PipelineError> {
    let bad = |msg: String| PipelineError::Input(format!("{field}: {msg}"));
    if bytes.len() > p.max_bytes {
        return Err(PipelineError::TooLarge(format!(
            "{field}: image of {} bytes exceeds the limit of {} bytes",
            bytes.len(),
            p.max_bytes
        )));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("cannot read the image: {e}")))?;
    match reader.format() {
        Some(ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(bad(
                "the JPEG data is cut short (no end-of-image marker after its last scan); \
                 send the whole file"
                    .into(),
            ))
        }
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => {
            return Err(bad(format!(
                "not a PNG or JPEG image (it looks like {other:?})"
            )))
        }
        None => return Err(bad("not a PNG or JPEG image".into())),
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| bad(format!("cannot read the image header: {e}")))?;
    if (w as u64) * (h as u64) > p.max_pixels {
        return Err(PipelineError::TooLarge(format!(
            "{field}: image of {w}×{h} pixels exceeds the limit of {} pixels",
            p.max_pixels
        )));
    }
    check_resized(w, h, p, field)?;
    reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("cannot read the image: {e}")))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(p.max_pixels.saturating_mul(16));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot decode the image: {e}")))?;
    transform(img, p)
}

/// Whether a JPEG stream ends its last scan: an end-of-image marker (`FF D9`) after the
/// last start-of-scan (`FF DA`). The decoder fills a cut-short scan with grey and calls
/// it a success, so a truncated upload would otherwise be classified as a half-grey
/// image. Inside entropy-coded data `FF` is always followed by `00` or a restart marker,
/// so `FF D9` there is the real end; an embedded thumbnail's markers come before the
/// main scan.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

/// The size an image of `w`×`h` pixels is resized to before the crop: exact for
/// `resize`, aspect-preserving for `resize_short`. Pure, saturating (never overflows).
pub fn resized_dims(w: u32, h: u32, p: &ImageParams) -> (u32, u32) {
    let (w, h) = (w.max(1) as u64, h.max(1) as u64);
    let scale = |long: u64, short_side: u64, short: u32| -> u32 {
        // round(long × short / short_side), at least 1, saturating at u32::MAX.
        let n = (long * short as u64 + short_side / 2) / short_side;
        n.clamp(1, u32::MAX as u64) as u32
    };
    match (p.resize, p.resize_short) {
        (Some([rw, rh]), _) => (rw, rh),
        (None, Some(short)) if w <= h => (short, scale(h, w, short)),
        (None, Some(short)) => (scale(w, h, short), short),
        (None, None) => (w as u32, h as u32),
    }
}

/// Refuses an image whose resized size (before the crop) would exceed `max_pixels`: an
/// extreme aspect ratio (1×1,000,000) passes the decoded-size limit, yet resizing its
/// short side up would allocate without bound.
fn check_resized(w: u32, h: u32, p: &ImageParams, field: &str) -> Result<(), PipelineError> {
    let (nw, nh) = resized_dims(w, h, p);
    if nw as u64 * nh as u64 > p.max_pixels {
        return Err(PipelineError::TooLarge(format!(
            "{field}: image of {w}×{h} pixels would resize to {nw}×{nh}, over the limit of {} \
             pixels (aspect ratio too extreme)",
            p.max_pixels
        )));
    }
    Ok(())
}

/// Resize, crop, normalise and lay out one decoded image. Refuses (TooLarge) an image
/// whose resized size would exceed `max_pixels`.
pub fn transform(img: DynamicImage, p: &ImageParams) -> Result<Vec<f32>, PipelineError> {
    check_resized(img.width(), img.height(), p, "image")?;
    let (nw, nh) = resized_dims(img.width(), img.height(), p);
    let resized = if p.channels == 1 {
        DynamicImage::ImageLuma8(imageops::resize(
            &img.to_luma8(),
            nw,
            nh,
            FilterType::Triangle,
        ))
    } else {
        DynamicImage::ImageRgb8(imageops::resize(
            &img.to_rgb8(),
            nw,
            nh,
            FilterType::Triangle,
        ))
    };
    let cropped = match p.crop {
        Some(c) => {
            let (cw, ch) = (c.min(nw), c.min(nh));
            resized.crop_imm((nw - cw) / 2, (nh - ch) / 2, cw, ch)
        }
        None => resized,
    };
    let (cw, ch) = (cropped.width() as usize, cropped.height() as usize);
    let channels = p.channels as usize;
    let raw: Vec<u8> = if channels == 1 {
        cropped.to_luma8().into_raw()
    } else {
        cropped.to_rgb8().into_raw()
    };
    // Interleaved HWC bytes -> planar CHW floats.
    let mut out = vec![0f32; channels * cw * ch];
    for (i, px) in raw.chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * cw * ch + i] = (v as f32 - p.mean) / p.scale;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn params() -> ImageParams {
        ImageParams {
            resize_short: Some(4),
            resize: None,
            crop: Some(2),
            channels: 3,
            mean: 127.0,
            scale: 128.0,
            max_bytes: 1 << 20,
            max_pixels: 1 << 20,
        }
    }

    fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = ImageBuffer::from_fn(w, h, |x, y| Rgb(f(x, y)));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn a_truncated_jpeg_is_refused_and_the_whole_one_accepted() {
        let img = ImageBuffer::from_fn(64, 64, |x, y| Rgb([(x * 4) as u8, (y * 4) as u8, 9]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        let jpeg = out.into_inner();
        assert!(jpeg_is_complete(&jpeg));
        assert!(preprocess(&jpeg, &params(), "image").is_ok());
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        assert!(!jpeg_is_complete(cut));
        let e = preprocess(cut, &params(), "images[0]")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("images[0]: the JPEG data is cut short"),
            "{e}"
        );
    }

    #[test]
    fn uniform_image_becomes_normalised_planes() {
        let bytes = png(8, 16, |_, _| [255, 127, 0]);
        let v = preprocess(&bytes, &params(), "image").unwrap();
        assert_eq!(v.len(), 3 * 2 * 2);
        assert!(v[..4].iter().all(|&x| (x - 1.0).abs() < 1e-6));
        assert!(v[4..8].iter().all(|&x| x.abs() < 1e-6));
        assert!(v[8..].iter().all(|&x| (x + 127.0 / 128.0).abs() < 1e-6));
    }

    #[test]
    fn short_side_resize_keeps_the_aspect_ratio_then_crops_the_centre() {
        // Left half black, right half white: after resize 4×8 and centre crop 2×2 the
        // crop straddles the middle column.
        let bytes = png(16, 32, |x, _| if x < 8 { [0; 3] } else { [255; 3] });
        let mut p = params();
        p.mean = 0.0;
        p.scale = 255.0;
        let v = preprocess(&bytes, &p, "image").unwrap();
        let red = &v[..4];
        assert!(red[0] < 0.5 && red[1] > 0.5, "{red:?}");
    }

    #[test]
    fn garbage_and_oversized_inputs_are_refused_by_name() {
        let e = preprocess(b"definitely not an image", &params(), "inputs[0]").unwrap_err();
        assert!(
            matches!(e, PipelineError::Input(ref m) if m.starts_with("inputs[0]:")),
            "{e:?}"
        );
        let mut p = params();
        p.max_pixels = 100;
        let e = preprocess(&png(20, 20, |_, _| [0; 3]), &p, "image").unwrap_err();
        assert!(
            matches!(e, PipelineError::TooLarge(ref m) if m.contains("20×20")),
            "{e:?}"
        );
        p.max_bytes = 10;
        let e = preprocess(&png(2, 2, |_, _| [0; 3]), &p, "image").unwrap_err();
        assert!(matches!(e, PipelineError::TooLarge(_)), "{e:?}");
    }

    #[test]
    fn resized_size_keeps_the_aspect_ratio_and_saturates() {
        let p = params(); // resize_short 4
        assert_eq!(resized_dims(16, 32, &p), (4, 8));
        assert_eq!(resized_dims(30, 20, &p), (6, 4));
        assert_eq!(resized_dims(0, 0, &p), (4, 4));
        // 1×40,000,000 would be 4×160,000,000: saturates instead of overflowing.
        assert_eq!(resized_dims(1, u32::MAX, &p), (4, u32::MAX));
        let mut exact = params();
        (exact.resize, exact.resize_short) = (Some([7, 5]), None);
        assert_eq!(resized_dims(1, 1_000_000, &exact), (7, 5));
    }

    #[test]
    fn an_extreme_aspect_ratio_is_refused_before_it_is_resized() {
        // 2×400 = 800 pixels is within the limit, but its short side resized to 4 makes
        // 4×800 = 3,200 pixels, over a limit of 1,000.
        let mut p = params();
        p.max_pixels = 1_000;
        let e = preprocess(&png(2, 400, |_, _| [9; 3]), &p, "inputs[1]").unwrap_err();
        assert!(
            matches!(e, PipelineError::TooLarge(ref m)
                if m.starts_with("inputs[1]:") && m.contains("4×800")),
            "{e:?}"
        );
        // The same image through `transform` directly is refused too.
        let img = image::load_from_memory(&png(2, 400, |_, _| [9; 3])).unwrap();
        assert!(matches!(
            transform(img, &p),
            Err(PipelineError::TooLarge(_))
        ));
        // A moderate one still passes.
        assert_eq!(
            preprocess(&png(8, 16, |_, _| [9; 3]), &p, "x")
                .unwrap()
                .len(),
            12
        );
    }

    #[test]
    fn params_are_validated() {
        let mut p = params();
        p.resize = Some([8, 8]);
        assert!(p.validate().unwrap_err().contains("exactly one"));
        let mut p = params();
        p.channels = 2;
        assert!(p.validate().unwrap_err().contains("channels"));
        assert_eq!(params().output_len(), 12);
    }
}
