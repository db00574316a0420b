//! Cheap previews: a linear projection of the 16 latent channels to RGB (one matrix product per
//! latent pixel, far less than a denoising step).

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::image::RgbImage;
use crate::pipeline::packing;

/// Latent-channel -> RGB factors for the FLUX.1 autoencoder (as used by common FLUX previewers).
const FACTORS: [[f32; 3]; 16] = [
    [-0.0346, 0.0244, 0.0681],
    [0.0034, 0.0210, 0.0687],
    [0.0275, -0.0668, -0.0433],
    [-0.0174, 0.0160, 0.0617],
    [0.0859, 0.0721, 0.0329],
    [0.0004, 0.0383, 0.0115],
    [0.0405, 0.0861, 0.0915],
    [-0.0236, -0.0185, -0.0259],
    [-0.0245, 0.0250, 0.1180],
    [0.1008, 0.0755, -0.0421],
    [-0.0515, 0.0201, 0.0011],
    [0.0428, -0.0012, -0.0036],
    [0.0817, 0.0765, 0.0749],
    [-0.1264, -0.0522, -0.1103],
    [-0.0280, -0.0881, -0.0499],
    [-0.1262, -0.0982, -0.0778],
];
const BIAS: [f32; 3] = [-0.0329, -0.0718, -0.0851];

/// Preview of a packed latent (1, rows·cols, 64): an RGB image of (2·cols) × (2·rows) pixels.
pub fn preview(packed: &Tensor, rows: usize, cols: usize) -> Result<RgbImage> {
    let z = packing::unpack(
        &packed.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
        rows,
        cols,
    )?;
    let (_, c, h, w) = z.dims4()?;
    let factors = Tensor::new(&FACTORS, &Device::Cpu)?.narrow(0, 0, c.min(16))?; // (c, 3)
    let rgb = z.squeeze(0)?.flatten_from(1)?.t()?.matmul(&factors)?; // (h·w, 3)
    let rgb = rgb.broadcast_add(&Tensor::new(&BIAS, &Device::Cpu)?)?;
    let data = rgb
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(crate::image::to_u8)
        .collect();
    Ok(RgbImage {
        width: w,
        height: h,
        data,
    })
}
