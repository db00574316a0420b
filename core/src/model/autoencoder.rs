//! The FLUX autoencoder: encode returns the scaled, shifted mean (never a sample), decode undoes it.

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::models::flux::autoencoder::{Config, Decoder, Encoder};

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

/// A loaded autoencoder.
pub struct AutoEncoder {
    encoder: Encoder,
    decoder: Decoder,
    config: Config,
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

    /// An estimate of the activation bytes decoding or encoding a `pixels`-pixel image keeps
    /// alive at once: about 6 full-resolution feature maps of the first level's width.
    pub fn activation_bytes(&self, pixels: usize, dtype: DType) -> u64 {
        6 * pixels as u64 * self.config.ch as u64 * dtype.size_in_bytes() as u64
    }

    /// Raw encoder output: mean and log-variance channels (B, 2·z, h, w).
    pub fn moments(&self, image: &Tensor) -> Result<Tensor> {
        Ok(self.encoder.forward(image)?)
    }

    /// Image (B, 3, H, W) in [-1, 1] -> latent `scale · (mean − shift)`.
    pub fn encode(&self, image: &Tensor) -> Result<Tensor> {
        let mean = self.moments(image)?.narrow(1, 0, self.config.z_channels)?;
        Ok(((mean - self.config.shift_factor)? * self.config.scale_factor)?)
    }

    /// Latent -> image (B, 3, H, W), nominally in [-1, 1] (not clamped).
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let z = ((latent / self.config.scale_factor)? + self.config.shift_factor)?;
        Ok(self.decoder.forward(&z)?)
    }
}
