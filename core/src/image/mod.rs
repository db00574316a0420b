//! Pixel buffers and their conversion from decoded tensors.

pub mod export;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// An 8-bit RGB image, rows top to bottom, tightly packed (stride = 3·width).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Converts a decoded image (1, 3, H, W) in [-1, 1] to RGB8 as the reference CLI does:
    /// clamp to [-1, 1], then `127.5·(x + 1)` truncated to an integer.
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let (b, c, height, width) = t.dims4()?;
        if b != 1 || c != 3 {
            return Err(Error::invalid(format!(
                "expected a (1, 3, H, W) image tensor, got {:?}",
                t.dims()
            )));
        }
        let hwc = t
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .squeeze(0)?
            .permute((1, 2, 0))?;
        let data = hwc
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|x| (127.5 * (x.clamp(-1.0, 1.0) + 1.0)) as u8)
            .collect();
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// The image as a (1, 3, H, W) f32 tensor in [-1, 1] (`u8 / 127.5 − 1`), for VAE encoding.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let v: Vec<f32> = self.data.iter().map(|&p| p as f32 / 127.5 - 1.0).collect();
        let t = Tensor::from_vec(v, (self.height, self.width, 3), &Device::Cpu)?;
        Ok(t.permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()?
            .to_device(device)?)
    }
}
