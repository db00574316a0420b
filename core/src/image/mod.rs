//! Pixel buffers and their conversion from decoded tensors.

pub mod export;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// Maps a decoded value in [-1, 1] to 8 bits as the reference CLI does: clamp, `127.5·(x + 1)`,
/// truncate.
pub fn to_u8(x: f32) -> u8 {
    (127.5 * (x.clamp(-1.0, 1.0) + 1.0)) as u8
}

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
            .map(to_u8)
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

/// Pixel layout of a caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb8,
    /// RGBA with straight alpha; alpha is ignored (the RGB values are used as they are).
    Rgba8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes(self) -> usize {
        match self {
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
        }
    }
}

/// Pixel layouts a result can be copied out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Rgb8,
    /// Alpha 255.
    Rgba8,
    /// Native-endian floats in [0, 1] (the RGB8 values / 255), alpha 1.
    Rgba32F,
}

impl OutputFormat {
    /// Bytes per pixel.
    pub fn bytes(self) -> usize {
        match self {
            OutputFormat::Rgb8 => 3,
            OutputFormat::Rgba8 => 4,
            OutputFormat::Rgba32F => 16,
        }
    }
}

/// Largest accepted input image side (a larger capture is an error, not an allocation).
pub const MAX_INPUT_SIDE: usize = 16384;

/// A caller's image buffer: `height` rows of `stride` bytes, each starting with `width` pixels.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub format: PixelFormat,
    pub data: &'a [u8],
}

/// Bytes `height` rows of `row` bytes take at `stride` bytes apart (the last row unpadded);
/// `None` when that overflows, which no real buffer can hold.
pub fn strided_len(stride: usize, height: usize, row: usize) -> Option<usize> {
    stride
        .checked_mul(height.saturating_sub(1))?
        .checked_add(row)
}

impl ImageView<'_> {
    /// Validates the buffer and copies it to tightly packed RGB8 (alpha dropped).
    pub fn to_rgb(&self) -> Result<RgbImage> {
        let (w, h, bpp) = (self.width, self.height, self.format.bytes());
        if w == 0 || h == 0 {
            return Err(Error::invalid(format!(
                "the input image is empty ({w}x{h})"
            )));
        }
        if w > MAX_INPUT_SIDE || h > MAX_INPUT_SIDE {
            return Err(Error::invalid(format!(
                "the input image {w}x{h} is larger than {MAX_INPUT_SIDE} px a side"
            )));
        }
        let row = w * bpp;
        if self.stride < row {
            return Err(Error::invalid(format!(
                "stride {} is smaller than a row of {w} pixels ({row} bytes)",
                self.stride
            )));
        }
        let needed = strided_len(self.stride, h, row).unwrap_or(usize::MAX);
        if self.data.len() < needed {
            return Err(Error::invalid(format!(
                "the image buffer holds {} bytes but {h} rows of stride {} need {needed}",
                self.data.len(),
                self.stride
            )));
        }
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            let line = &self.data[y * self.stride..y * self.stride + row];
            for px in line.chunks_exact(bpp) {
                data.extend_from_slice(&px[..3]);
            }
        }
        Ok(RgbImage {
            width: w,
            height: h,
            data,
        })
    }
}

impl RgbImage {
    /// Copies the pixels into `dst` as `format`, rows `stride` bytes apart, top row first; bytes
    /// between rows are left as they are. Refuses a stride shorter than a row or one whose rows
    /// overflow, and a `dst` too small ([`Error::BufferTooSmall`]).
    pub fn copy_to(&self, format: OutputFormat, dst: &mut [u8], stride: usize) -> Result<()> {
        let row = self.width * format.bytes();
        if stride < row {
            return Err(Error::invalid(format!(
                "stride {stride} is smaller than a row ({row} bytes)"
            )));
        }
        let needed = strided_len(stride, self.height, row).ok_or_else(|| {
            Error::invalid(format!("stride {stride} × {} rows overflows", self.height))
        })?;
        if dst.len() < needed {
            return Err(Error::BufferTooSmall {
                needed,
                given: dst.len(),
            });
        }
        let rows = self.data.chunks_exact(self.width * 3);
        for (src, line) in rows.zip(dst.chunks_mut(stride)) {
            let pixels = src
                .chunks_exact(3)
                .zip(line[..row].chunks_exact_mut(format.bytes()));
            for (px, d) in pixels {
                match format {
                    OutputFormat::Rgb8 => d.copy_from_slice(px),
                    OutputFormat::Rgba8 => d.copy_from_slice(&[px[0], px[1], px[2], 255]),
                    OutputFormat::Rgba32F => {
                        let f = [px[0], px[1], px[2], 255].map(|v| v as f32 / 255.0);
                        for (c, v) in d.chunks_exact_mut(4).zip(f) {
                            c.copy_from_slice(&v.to_ne_bytes());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A view of this image for the APIs that take caller buffers.
    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            width: self.width,
            height: self.height,
            stride: self.width * 3,
            format: PixelFormat::Rgb8,
            data: &self.data,
        }
    }

    /// Resized with a Lanczos-3 filter (no-op when the size is unchanged).
    pub fn resized(&self, width: usize, height: usize) -> Result<RgbImage> {
        if (width, height) == (self.width, self.height) {
            return Ok(self.clone());
        }
        let buf =
            ::image::RgbImage::from_raw(self.width as u32, self.height as u32, self.data.clone())
                .ok_or_else(|| Error::invalid("image buffer size does not match its dimensions"))?;
        let out = ::image::imageops::resize(
            &buf,
            width as u32,
            height as u32,
            ::image::imageops::FilterType::Lanczos3,
        );
        Ok(RgbImage {
            width,
            height,
            data: out.into_raw(),
        })
    }
}
