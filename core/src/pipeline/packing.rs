//! Latent geometry: sizes, 2×2 patch packing to tokens and back, and position ids.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Latent channels of FLUX.1.
pub const LATENT_CHANNELS: usize = 16;

/// Latent (h, w) for an image of `height` × `width` px: `2·ceil(H/16)` × `2·ceil(W/16)`.
pub fn latent_size(height: usize, width: usize) -> (usize, usize) {
    (2 * height.div_ceil(16), 2 * width.div_ceil(16))
}

/// Token grid (rows, cols) for an image of `height` × `width` px.
pub fn token_grid(height: usize, width: usize) -> (usize, usize) {
    (height.div_ceil(16), width.div_ceil(16))
}

/// (B, C, h, w) -> (B, h/2·w/2, 4C): token `r·(w/2)+c`, feature `ch·4 + dy·2 + dx`.
pub fn pack(z: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = z.dims4()?;
    Ok(z.reshape((b, c, h / 2, 2, w / 2, 2))?
        .permute((0, 2, 4, 1, 3, 5))?
        .reshape((b, h / 2 * (w / 2), c * 4))?)
}

/// Inverse of [`pack`] for a `rows` × `cols` token grid.
pub fn unpack(x: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
    let (b, _n, f) = x.dims3()?;
    let c = f / 4;
    Ok(x.reshape((b, rows, cols, c, 2, 2))?
        .permute((0, 3, 1, 4, 2, 5))?
        .reshape((b, c, rows * 2, cols * 2))?)
}

/// Position ids (B, rows·cols, 3) = (`axis0`, row, col), row-major.
pub fn image_ids(
    batch: usize,
    rows: usize,
    cols: usize,
    axis0: f32,
    device: &Device,
) -> Result<Tensor> {
    let mut v = Vec::with_capacity(rows * cols * 3);
    for r in 0..rows {
        for c in 0..cols {
            v.extend_from_slice(&[axis0, r as f32, c as f32]);
        }
    }
    let ids = Tensor::from_vec(v, (1, rows * cols, 3), device)?;
    Ok(ids.repeat((batch, 1, 1))?)
}

/// Text position ids: all zeros (B, len, 3).
pub fn text_ids(batch: usize, len: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::zeros((batch, len, 3), DType::F32, device)?)
}
