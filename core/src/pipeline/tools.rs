//! The conditioning of the FLUX.1 tools (BFL `prepare_fill`, `prepare_control`): features that
//! enter beside the noisy latent at every step, one row per target token.
//!
//! Fill: `[masked-image latent (64) | mask (256)]`, where the masked image is `image · (1 − mask)`
//! (repainted pixels become 0, mid-grey) and the mask keeps every pixel: 8×8 pixels per latent
//! cell, then the usual 2×2 token packing. Mask values are in [0, 1], **1 = repaint**, not
//! thresholded (the reference rounds to bf16 only). Canny/Depth: the control image's latent (64);
//! the host supplies the ready edge or depth map, the engine runs no detector.

use candle_core::{DType, Device, Tensor};

use super::{packing, VariantDefaults};
use crate::error::{Error, Result};
use crate::image::{ImageInput, RgbImage};
use crate::model::autoencoder::AutoEncoder;
use crate::model::transformer::Tool;

impl Tool {
    /// The BFL reference's defaults: Fill 50 steps, guidance 30, 128 T5 tokens; Canny/Depth 50
    /// steps, guidance 30 (Canny's; Depth models want 10), 512 T5 tokens; both shifted.
    pub fn defaults(self) -> VariantDefaults {
        VariantDefaults {
            steps: 50,
            guidance: 30.0,
            t5_len: match self {
                Tool::Fill => 128,
                Tool::Control => 512,
            },
            shift: true,
        }
    }

    /// What a job on this tool's model must give.
    fn needs(self) -> &'static str {
        match self {
            Tool::Fill => "an image and a mask (FLUX.1 Fill)",
            Tool::Control => "a control image (FLUX.1 Canny or Depth)",
        }
    }
}

/// The input of a FLUX.1 tool's model, resized to the output size when the job runs.
#[derive(Debug, Clone)]
pub enum ToolInput {
    /// Inpainting or outpainting: the image and its mask (255 = repaint), the same size.
    Fill { image: ImageInput, mask: Mask },
    /// A ready edge map (Canny) or depth map (Depth); the engine runs no detector.
    Control(ImageInput),
}

impl ToolInput {
    /// The tool whose model takes this input.
    pub fn tool(&self) -> Tool {
        match self {
            ToolInput::Fill { .. } => Tool::Fill,
            ToolInput::Control(_) => Tool::Control,
        }
    }

    /// The conditioning features (1, N, F) for an output of `size` (width, height).
    pub fn features(
        &self,
        ae: &AutoEncoder,
        size: (usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        match self {
            ToolInput::Fill { image, mask } => {
                let pixels = image.pixels()?;
                fill_from_pixels(ae, &pixels, mask, size, dtype, device)
            }
            ToolInput::Control(image) => {
                let pixels = image.pixels()?;
                control_from_pixels(ae, &pixels, size, dtype, device)
            }
        }
    }
}

/// Checks that a job's tool input is what the model takes: a Fill model needs a Fill input, a
/// Canny/Depth model a control image, and a plain model neither.
pub fn check_input(model: Option<Tool>, input: Option<&ToolInput>) -> Result<()> {
    match (model, input.map(ToolInput::tool)) {
        (a, b) if a == b => Ok(()),
        (Some(tool), _) => Err(Error::invalid(format!(
            "the loaded model is a FLUX.1 {} model: the job needs {}",
            tool.name(),
            tool.needs()
        ))),
        (None, Some(tool)) => Err(Error::invalid(format!(
            "the job gives {}, but the loaded model is not a FLUX.1 {} model",
            tool.needs(),
            tool.name()
        ))),
        (None, None) => Ok(()),
    }
}

/// A single-channel mask, one byte per pixel, row-major: 255 = repaint, 0 = keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Mask {
    /// A mask from `width × height` bytes; fails when `data` has another length.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if width.checked_mul(height) != Some(data.len()) {
            return Err(Error::invalid(format!(
                "a {width}x{height} mask needs {} bytes, got {}",
                width.saturating_mul(height),
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// The first channel of an image as a mask (a grey mask has R = G = B).
    pub fn from_first_channel(image: &RgbImage) -> Self {
        Self {
            width: image.width,
            height: image.height,
            data: image.data.iter().step_by(3).copied().collect(),
        }
    }

    /// The mask as (1, 1, H, W) values in [0, 1].
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let v: Vec<f32> = self.data.iter().map(|&m| f32::from(m) / 255.0).collect();
        Ok(Tensor::from_vec(
            v,
            (1, 1, self.height, self.width),
            device,
        )?)
    }
}

/// Fill's mask features (B, N, 256) from a mask (B, 1, H, W): token `r·(W/16) + c`, feature
/// `(py·8 + px)·4 + dy·2 + dx` = mask pixel `((2r + dy)·8 + py, (2c + dx)·8 + px)`.
pub fn mask_features(mask: &Tensor) -> Result<Tensor> {
    let (b, _, h, w) = mask.dims4()?;
    let cells = mask
        .reshape((b, h / 8, 8, w / 8, 8))?
        .permute((0, 2, 4, 1, 3))?
        .reshape((b, 64, h / 8, w / 8))?;
    packing::pack(&cells)
}

/// Fill's conditioning (B, N, 320) from an image (B, 3, H, W) in [-1, 1] and its mask
/// (B, 1, H, W) in [0, 1], both the output's size.
pub fn fill_features(ae: &AutoEncoder, image: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(image.dtype())?;
    let keep = mask.affine(-1.0, 1.0)?;
    let masked = image.broadcast_mul(&keep)?;
    let latent = packing::pack(&ae.encode(&masked)?)?;
    Ok(Tensor::cat(&[latent, mask_features(&mask)?], 2)?)
}

/// Canny/Depth conditioning (B, N, 64) from a control image (B, 3, H, W) in [-1, 1].
pub fn control_features(ae: &AutoEncoder, control: &Tensor) -> Result<Tensor> {
    packing::pack(&ae.encode(control)?)
}

/// An image and a mask resized to the output size and turned into Fill's conditioning.
pub fn fill_from_pixels(
    ae: &AutoEncoder,
    image: &RgbImage,
    mask: &Mask,
    (width, height): (usize, usize),
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    if (mask.width, mask.height) != (image.width, image.height) {
        return Err(Error::invalid(format!(
            "the mask is {}x{} and the image {}x{}: they must have the same size",
            mask.width, mask.height, image.width, image.height
        )));
    }
    let image = image.resized(width, height)?.to_tensor(device)?;
    let mask = match (mask.width, mask.height) == (width, height) {
        true => mask.to_tensor(device)?,
        false => resized_mask(mask, width, height, device)?,
    };
    fill_features(ae, &image.to_dtype(dtype)?, &mask)
}

/// A control image resized to the output size and turned into Canny/Depth conditioning.
pub fn control_from_pixels(
    ae: &AutoEncoder,
    control: &RgbImage,
    (width, height): (usize, usize),
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let control = control.resized(width, height)?.to_tensor(device)?;
    control_features(ae, &control.to_dtype(dtype)?)
}

/// A mask resized as a grey image (the same filter as colour inputs).
fn resized_mask(mask: &Mask, width: usize, height: usize, device: &Device) -> Result<Tensor> {
    let grey = RgbImage {
        width: mask.width,
        height: mask.height,
        data: mask.data.iter().flat_map(|&m| [m, m, m]).collect(),
    };
    let resized = grey.resized(width, height)?;
    let data = resized.data.chunks_exact(3).map(|p| p[0]).collect();
    Mask::new(width, height, data)?.to_tensor(device)
}
