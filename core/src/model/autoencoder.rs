//! The FLUX autoencoder: encode returns the scaled, shifted mean (never a sample), decode undoes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
pub use candle_transformers::models::flux::autoencoder::Config;
use candle_transformers::models::flux::autoencoder::{Decoder, Encoder};

use super::tiles::{self, Blend};
use super::weights::ModelWeights;
use crate::error::{Error, Result};

/// FLUX.1's latent scale factor.
pub const SCALE_FACTOR: f64 = 0.3611;
/// FLUX.1's latent shift factor.
pub const SHIFT_FACTOR: f64 = 0.1159;

/// Infers the AE config from tensor shapes; `scale_shift` overrides (scale, shift).
pub fn infer_config(w: &ModelWeights, scale_shift: Option<(f64, f64)>) -> Result<Config> {
    let conv_in = w.shape("encoder.conv_in.weight")?;
    let ch = conv_in[0];
    let levels = w.count("encoder.down.{}.block.0.conv1.weight");
    if levels == 0 {
        return Err(Error::UnknownLayout(
            "the autoencoder has no encoder.down levels".into(),
        ));
    }
    let ch_mult = (0..levels)
        .map(|l| Ok(w.dim0(&format!("encoder.down.{l}.block.0.conv1.weight"))? / ch))
        .collect::<Result<Vec<_>>>()?;
    let (scale_factor, shift_factor) = scale_shift.unwrap_or((SCALE_FACTOR, SHIFT_FACTOR));
    Ok(Config {
        resolution: 256,
        in_channels: conv_in[1],
        ch,
        out_ch: w.dim0("decoder.conv_out.weight")?,
        ch_mult,
        num_res_blocks: w.count("encoder.down.0.block.{}.conv1.weight"),
        z_channels: w.shape("decoder.conv_in.weight")?[1],
        scale_factor,
        shift_factor,
    })
}

/// Latent cells per side of a tile when tiled (512 pixels for FLUX's 8× autoencoder).
pub const TILE: usize = 64;
/// Latent cells consecutive tiles share, blended across (128 pixels for FLUX).
pub const TILE_OVERLAP: usize = 16;

/// An estimate of the activation bytes a `c` autoencoder keeps alive at once encoding or
/// decoding a `pixels`-pixel image in `dtype` (tiled: a [`TILE`]'s): about 16 full-resolution
/// feature maps of the first level's width (measured: 12 on the CPU, where each 3×3 convolution
/// unfolds 9 copies of its input).
pub fn activation_bytes(c: &Config, dtype: DType, pixels: usize, tiled: bool) -> u64 {
    let side = TILE << (c.ch_mult.len() - 1);
    let pixels = match tiled {
        true => pixels.min(side * side),
        false => pixels,
    };
    16 * pixels as u64 * c.ch as u64 * dtype.size_in_bytes() as u64
}

/// A loaded autoencoder.
pub struct AutoEncoder {
    encoder: Encoder,
    decoder: Decoder,
    config: Config,
    /// Latent cells per side of a tile (0: whole images).
    tile: AtomicUsize,
}

impl AutoEncoder {
    /// Builds encoder and decoder from `weights`.
    pub fn load(
        weights: &Arc<ModelWeights>,
        config: Config,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let (vb, errors) = weights.var_builder(dtype, device);
        let encoder = Encoder::new(&config, vb.pp("encoder")).map_err(|e| errors.take(e))?;
        let decoder = Decoder::new(&config, vb.pp("decoder")).map_err(|e| errors.take(e))?;
        Ok(Self {
            encoder,
            decoder,
            config,
            tile: AtomicUsize::new(0),
        })
    }

    /// The AE config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Pixel size of one latent cell (8 for FLUX).
    pub fn downsample(&self) -> usize {
        1 << (self.config.ch_mult.len() - 1)
    }

    /// An estimate of the activation bytes encoding or decoding a `pixels`-pixel image keeps
    /// alive at once (see [`activation_bytes`]).
    pub fn activation_bytes(&self, pixels: usize, dtype: DType, tiled: bool) -> u64 {
        activation_bytes(&self.config, dtype, pixels, tiled)
    }

    /// Encodes and decodes images larger than a tile ([`TILE`] latent cells a side) tile by tile,
    /// blending [`TILE_OVERLAP`] cells across seams: activations then stay a tile's whatever the
    /// image size. The result differs slightly from the whole image's (the autoencoder's
    /// attention and group norms see one tile at a time).
    pub fn set_tiled(&self, tiled: bool) {
        self.set_tile(if tiled { TILE } else { 0 });
    }

    /// Tiles of `cells` latent cells a side, overlapping by a quarter of that (0: whole images).
    pub fn set_tile(&self, cells: usize) {
        self.tile.store(cells, Ordering::Release);
    }

    /// Whether images are encoded and decoded in tiles.
    pub fn tiled(&self) -> bool {
        self.tile.load(Ordering::Acquire) > 0
    }

    /// Raw encoder output: mean and log-variance channels (B, 2·z, h, w).
    pub fn moments(&self, image: &Tensor) -> Result<Tensor> {
        if !self.tiled() {
            return Ok(self.encoder.forward(image)?);
        }
        let ds = self.downsample();
        let (b, _, h, w) = image.dims4()?;
        self.tiled_map(
            image,
            (b, 2 * self.config.z_channels, h / ds, w / ds),
            ds,
            1,
            |t| Ok(self.encoder.forward(t)?),
        )
    }

    /// Image (B, 3, H, W) in [-1, 1] -> latent `scale · (mean − shift)`.
    pub fn encode(&self, image: &Tensor) -> Result<Tensor> {
        let mean = self.moments(image)?.narrow(1, 0, self.config.z_channels)?;
        Ok(((mean - self.config.shift_factor)? * self.config.scale_factor)?)
    }

    /// Latent -> image (B, 3, H, W), nominally in [-1, 1] (not clamped).
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let z = ((latent / self.config.scale_factor)? + self.config.shift_factor)?;
        if !self.tiled() {
            return Ok(self.decoder.forward(&z)?);
        }
        let ds = self.downsample();
        let (b, _, h, w) = z.dims4()?;
        let out = (b, self.config.out_ch, h * ds, w * ds);
        self.tiled_map(&z, out, 1, ds, |t| Ok(self.decoder.forward(t)?))
    }

    /// `f` applied tile by tile to `x` (B, C, H, W), whose cells are `x_cell` to a latent cell,
    /// into a result of `out` dims whose cells are `out_cell` to a latent cell.
    fn tiled_map(
        &self,
        x: &Tensor,
        out: (usize, usize, usize, usize),
        x_cell: usize,
        out_cell: usize,
        f: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (lh, lw) = (h / x_cell, w / x_cell);
        let tile = self.tile.load(Ordering::Acquire);
        let overlap = tile * TILE_OVERLAP / TILE;
        let mut blend = Blend::new(out, overlap * out_cell);
        let (th, tw) = (tile.min(lh), tile.min(lw));
        for y in tiles::starts(lh, tile, overlap) {
            for x0 in tiles::starts(lw, tile, overlap) {
                let tile = x
                    .narrow(2, y * x_cell, th * x_cell)?
                    .narrow(3, x0 * x_cell, tw * x_cell)?
                    .contiguous()?;
                blend.add(&f(&tile)?, y * out_cell, x0 * out_cell)?;
            }
        }
        blend.finish(x.dtype(), x.device())
    }
}
