//! Pillow's 8-bit bicubic resize (`Image.resize(size, Resampling.BICUBIC)`), bit for bit: the
//! SigLIP image processor runs it, so Redux's image tokens depend on its exact integers. A cubic
//! kernel with a = −0.5 whose support widens by the scale when shrinking (antialiasing), weights
//! normalised to sum 1 then rounded to 22-bit fixed point, the horizontal pass first into an 8-bit
//! image, then the vertical one. No crate reproduces it: `fast_image_resize`'s Catmull-Rom, for
//! one, differs on a quarter of the values by up to 3 levels.

use super::RgbImage;

/// Fixed-point bits of the weights (Pillow's `PRECISION_BITS` for 8-bit images).
const PRECISION_BITS: u32 = 22;

/// Pillow's bicubic kernel, a = −0.5.
fn cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output index: the first input index and the fixed-point weights from there.
fn coefficients(input: usize, output: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..output)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(input as i64) as usize;
            let weights: Vec<f64> = (first..end)
                .map(|x| cubic((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let one = f64::from(1u32 << PRECISION_BITS);
            let fixed = weights
                .iter()
                .map(|w| if total != 0.0 { w / total } else { *w })
                .map(|w| match w < 0.0 {
                    true => (w * one - 0.5) as i64,
                    false => (w * one + 0.5) as i64,
                })
                .collect();
            (first, fixed)
        })
        .collect()
}

/// One pass over `lines` lines of `count` samples `stride` apart (3 channels each), resampled to
/// `out_count` samples.
fn pass(
    data: &[u8],
    (lines, count): (usize, usize),
    out_count: usize,
    along_rows: bool,
) -> Vec<u8> {
    let coeffs = coefficients(count, out_count);
    let mut out = vec![0u8; lines * out_count * 3];
    let index = |line: usize, at: usize, per_line: usize, lines: usize| match along_rows {
        true => (line * per_line + at) * 3,
        false => (at * lines + line) * 3,
    };
    for line in 0..lines {
        for (o, (first, weights)) in coeffs.iter().enumerate() {
            for c in 0..3 {
                let mut sum: i64 = 1 << (PRECISION_BITS - 1);
                for (k, w) in weights.iter().enumerate() {
                    sum += i64::from(data[index(line, first + k, count, lines) + c]) * w;
                }
                out[index(line, o, out_count, lines) + c] =
                    (sum >> PRECISION_BITS).clamp(0, 255) as u8;
            }
        }
    }
    out
}

impl RgbImage {
    /// Resized with Pillow's bicubic filter, bit-exact (a copy when the size is unchanged).
    pub fn resized_bicubic(&self, width: usize, height: usize) -> RgbImage {
        let mut data = self.data.clone();
        if width != self.width {
            data = pass(&data, (self.height, self.width), width, true);
        }
        if height != self.height {
            data = pass(&data, (width, self.height), height, false);
        }
        RgbImage {
            width,
            height,
            data,
        }
    }
}
