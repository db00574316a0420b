//! Overlapping tiles and their blending: a large image (or latent) is processed a tile at a time
//! and the tiles are summed with weights that ramp linearly across each overlap, so seams fade
//! instead of showing.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Start offsets of tiles of `tile` cells covering `len` cells, consecutive tiles overlapping by
/// at least `overlap` (the last tile ends at `len`; one tile when it covers everything).
pub fn starts(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let stride = tile.saturating_sub(overlap).max(1);
    let mut out: Vec<usize> = (0..len - tile).step_by(stride).collect();
    out.push(len - tile);
    out
}

/// The weight of cell `i` of a tile of `n` cells starting at `start` in a length of `len`: ramps
/// up over `ramp` cells after an edge shared with a neighbour, and down before one.
fn ramp_weight(i: usize, n: usize, start: usize, len: usize, ramp: usize) -> f32 {
    let ramp_len = (ramp + 1) as f32;
    let up = match start > 0 {
        true => ((i + 1) as f32 / ramp_len).min(1.0),
        false => 1.0,
    };
    let down = match start + n < len {
        true => ((n - i) as f32 / ramp_len).min(1.0),
        false => 1.0,
    };
    up * down
}

/// Sums weighted tiles of a (B, C, H, W) result on the host.
pub struct Blend {
    dims: (usize, usize, usize, usize),
    sum: Vec<f32>,
    weight: Vec<f32>,
    ramp: usize,
}

impl Blend {
    /// An empty (B, C, H, W) result whose tiles ramp over `ramp` cells.
    pub fn new(dims: (usize, usize, usize, usize), ramp: usize) -> Self {
        let (b, c, h, w) = dims;
        Self {
            dims,
            sum: vec![0.0; b * c * h * w],
            weight: vec![0.0; h * w],
            ramp,
        }
    }

    /// Adds a tile (B, C, th, tw) whose top-left cell is (`y0`, `x0`).
    pub fn add(&mut self, tile: &Tensor, y0: usize, x0: usize) -> Result<()> {
        let (b, c, h, w) = self.dims;
        let (_, _, th, tw) = tile.dims4()?;
        let values = tile.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let wy: Vec<f32> = (0..th)
            .map(|i| ramp_weight(i, th, y0, h, self.ramp))
            .collect();
        let wx: Vec<f32> = (0..tw)
            .map(|i| ramp_weight(i, tw, x0, w, self.ramp))
            .collect();
        for plane in 0..b * c {
            for y in 0..th {
                let src = &values[(plane * th + y) * tw..][..tw];
                let dst = &mut self.sum[(plane * h + y0 + y) * w + x0..][..tw];
                for ((d, s), wxi) in dst.iter_mut().zip(src).zip(&wx) {
                    *d += s * wy[y] * wxi;
                }
            }
        }
        for (y, wyi) in wy.iter().enumerate() {
            let dst = &mut self.weight[(y0 + y) * w + x0..][..tw];
            for (d, wxi) in dst.iter_mut().zip(&wx) {
                *d += wyi * wxi;
            }
        }
        Ok(())
    }

    /// The blended result as `dtype` on `device`.
    pub fn finish(mut self, dtype: DType, device: &Device) -> Result<Tensor> {
        let plane = self.weight.len();
        for (i, v) in self.sum.iter_mut().enumerate() {
            *v /= self.weight[i % plane];
        }
        let (b, c, h, w) = self.dims;
        Ok(Tensor::from_vec(self.sum, (b, c, h, w), &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_length_with_the_overlap() {
        assert_eq!(starts(40, 64, 16), vec![0]);
        assert_eq!(starts(64, 64, 16), vec![0]);
        assert_eq!(starts(128, 64, 16), vec![0, 48, 64]);
        assert_eq!(starts(100, 64, 16), vec![0, 36]);
        for len in 65..300 {
            let s = starts(len, 64, 16);
            assert_eq!(s[0], 0);
            assert_eq!(s.last().unwrap() + 64, len);
            assert!(
                s.windows(2).all(|p| p[1] > p[0] && p[0] + 64 - p[1] >= 16),
                "{len}"
            );
        }
    }

    #[test]
    fn blending_a_constant_gives_the_constant_and_weights_ramp() {
        let (h, w) = (20, 30);
        let mut blend = Blend::new((1, 2, h, w), 4);
        for y in starts(h, 12, 4) {
            for x in starts(w, 12, 4) {
                let tile = Tensor::full(3.5f32, (1, 2, 12, 12), &Device::Cpu).unwrap();
                blend.add(&tile, y, x).unwrap();
            }
        }
        let out = blend.finish(DType::F32, &Device::Cpu).unwrap();
        let values = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(values.iter().all(|v| (v - 3.5).abs() < 1e-6));
        assert_eq!(ramp_weight(0, 12, 0, 20, 4), 1.0);
        assert_eq!(ramp_weight(0, 12, 8, 20, 4), 0.2);
        assert_eq!(ramp_weight(11, 12, 0, 20, 4), 0.2);
        assert_eq!(ramp_weight(6, 12, 4, 20, 4), 1.0);
    }
}
