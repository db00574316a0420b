//! Pixel buffers and their conversion from decoded tensors.

mod bicubic;
pub mod export;
mod input;

pub use input::{ImageInput, GPU_READ_TIMEOUT};

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

/// Pixel layout of an image in memory: the channels' order and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb8,
    /// Alpha is ignored on input (the RGB values are used as they are) and 255 on output.
    Rgba8,
    /// Blue first (Unreal, D3D swap chains); alpha as for RGBA8.
    Bgra8,
    /// Native-endian half floats in [0, 1] (the 8-bit values / 255); alpha 1 on output.
    Rgba16F,
    /// Native-endian floats in [0, 1] (the 8-bit values / 255); alpha 1 on output.
    Rgba32F,
    /// One byte per pixel: read as grey (masks, depth and edge maps); an image written into it
    /// gets the luma (BT.601) of each pixel.
    R8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes(self) -> usize {
        match self {
            PixelFormat::R8 => 1,
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => 4,
            PixelFormat::Rgba16F => 8,
            PixelFormat::Rgba32F => 16,
        }
    }

    /// The RGB of one pixel in this format (floats clamped to [0, 1], scaled, rounded).
    fn read(self, px: &[u8]) -> [u8; 3] {
        let unit = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        match self {
            PixelFormat::R8 => [px[0]; 3],
            PixelFormat::Rgb8 | PixelFormat::Rgba8 => [px[0], px[1], px[2]],
            PixelFormat::Bgra8 => [px[2], px[1], px[0]],
            PixelFormat::Rgba16F => {
                [0, 2, 4].map(|i| unit(half::f16::from_ne_bytes([px[i], px[i + 1]]).to_f32()))
            }
            PixelFormat::Rgba32F => [0, 4, 8]
                .map(|i| unit(f32::from_ne_bytes([px[i], px[i + 1], px[i + 2], px[i + 3]]))),
        }
    }

    /// Writes one RGB pixel in this format (alpha opaque).
    fn write(self, rgb: &[u8], out: &mut [u8]) {
        match self {
            PixelFormat::R8 => {
                let luma =
                    299 * u32::from(rgb[0]) + 587 * u32::from(rgb[1]) + 114 * u32::from(rgb[2]);
                out[0] = ((luma + 500) / 1000) as u8;
            }
            PixelFormat::Rgb8 => out.copy_from_slice(rgb),
            PixelFormat::Rgba8 => out.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]),
            PixelFormat::Bgra8 => out.copy_from_slice(&[rgb[2], rgb[1], rgb[0], 255]),
            PixelFormat::Rgba16F => {
                let v =
                    [rgb[0], rgb[1], rgb[2], 255].map(|c| half::f16::from_f32(c as f32 / 255.0));
                for (o, c) in out.chunks_exact_mut(2).zip(v) {
                    o.copy_from_slice(&c.to_ne_bytes());
                }
            }
            PixelFormat::Rgba32F => {
                let v = [rgb[0], rgb[1], rgb[2], 255].map(|c| c as f32 / 255.0);
                for (o, c) in out.chunks_exact_mut(4).zip(v) {
                    o.copy_from_slice(&c.to_ne_bytes());
                }
            }
        }
    }
}

/// Largest accepted image side (a larger capture is an error, not an allocation).
pub const MAX_INPUT_SIDE: usize = 16384;

/// Where an image's pixels lie in a buffer: `height` rows `stride` bytes apart, each starting
/// with `width` pixels of `format`; with `bottom_up`, the buffer's first row is the image's
/// last (OpenGL, Unity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub format: PixelFormat,
    pub bottom_up: bool,
}

impl Layout {
    /// Rows top to bottom, tightly packed.
    pub fn packed(width: usize, height: usize, format: PixelFormat) -> Self {
        Self {
            width,
            height,
            stride: width * format.bytes(),
            format,
            bottom_up: false,
        }
    }

    /// Bytes of one row's pixels.
    pub fn row_bytes(&self) -> usize {
        self.width * self.format.bytes()
    }

    /// Checks the size (1..=[`MAX_INPUT_SIDE`] a side) and the stride, and returns the bytes a
    /// buffer needs (the last row unpadded).
    pub fn needed_bytes(&self) -> Result<usize> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 {
            return Err(Error::invalid(format!("the image is empty ({w}x{h})")));
        }
        if w > MAX_INPUT_SIDE || h > MAX_INPUT_SIDE {
            return Err(Error::invalid(format!(
                "the image {w}x{h} is larger than {MAX_INPUT_SIDE} px a side"
            )));
        }
        let row = self.row_bytes();
        if self.stride < row {
            return Err(Error::invalid(format!(
                "stride {} is smaller than a row of {w} pixels ({row} bytes)",
                self.stride
            )));
        }
        strided_len(self.stride, h, row)
            .ok_or_else(|| Error::invalid(format!("stride {} × {h} rows overflows", self.stride)))
    }

    /// Checks the layout against a buffer of `len` bytes.
    pub fn check(&self, len: usize) -> Result<()> {
        let needed = self.needed_bytes()?;
        if len < needed {
            return Err(Error::BufferTooSmall { needed, given: len });
        }
        Ok(())
    }

    /// Offset of image row `y` (0 = top) in the buffer.
    fn row_start(&self, y: usize) -> usize {
        let line = if self.bottom_up {
            self.height - 1 - y
        } else {
            y
        };
        line * self.stride
    }
}

/// A caller's image buffer and where its pixels lie in it.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    pub layout: Layout,
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
    /// Validates the buffer and copies it to tightly packed RGB8, top row first (alpha dropped).
    pub fn to_rgb(&self) -> Result<RgbImage> {
        let l = self.layout;
        l.check(self.data.len())?;
        let (bpp, row) = (l.format.bytes(), l.row_bytes());
        let mut data = Vec::with_capacity(l.width * l.height * 3);
        for y in 0..l.height {
            let start = l.row_start(y);
            for px in self.data[start..start + row].chunks_exact(bpp) {
                data.extend_from_slice(&l.format.read(px));
            }
        }
        Ok(RgbImage {
            width: l.width,
            height: l.height,
            data,
        })
    }
}

impl RgbImage {
    /// Copies the pixels into `dst` laid out as `layout`, which must have this image's size;
    /// bytes between rows are left as they are. A `dst` too small is [`Error::BufferTooSmall`].
    pub fn copy_to(&self, layout: &Layout, dst: &mut [u8]) -> Result<()> {
        if (layout.width, layout.height) != (self.width, self.height) {
            return Err(Error::invalid(format!(
                "the result is {}x{} but the destination image is {}x{}",
                self.width, self.height, layout.width, layout.height
            )));
        }
        layout.check(dst.len())?;
        let (bpp, row) = (layout.format.bytes(), layout.row_bytes());
        for (y, src) in self.data.chunks_exact(self.width * 3).enumerate() {
            let start = layout.row_start(y);
            let line = dst[start..start + row].chunks_exact_mut(bpp);
            for (px, d) in src.chunks_exact(3).zip(line) {
                layout.format.write(px, d);
            }
        }
        Ok(())
    }

    /// A view of this image for the APIs that take caller buffers.
    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            layout: Layout::packed(self.width, self.height, PixelFormat::Rgb8),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r8_reads_as_grey_with_any_stride_and_receives_the_luma() {
        // 2 × 2 pixels, rows 3 bytes apart (one byte of padding), bottom row first.
        let data = [10, 20, 0, 30, 40, 0];
        let layout = Layout {
            stride: 3,
            bottom_up: true,
            ..Layout::packed(2, 2, PixelFormat::R8)
        };
        let rgb = ImageView {
            layout,
            data: &data,
        }
        .to_rgb()
        .unwrap();
        assert_eq!(rgb.data, [30, 30, 30, 40, 40, 40, 10, 10, 10, 20, 20, 20]);

        let colour = RgbImage {
            width: 2,
            height: 1,
            data: vec![255, 0, 0, 10, 200, 30],
        };
        let mut out = [0u8; 2];
        colour
            .copy_to(&Layout::packed(2, 1, PixelFormat::R8), &mut out)
            .unwrap();
        // BT.601: 0.299 R + 0.587 G + 0.114 B, rounded.
        assert_eq!(out, [76, 124]);
    }
}
