//! Results written straight into the host renderer's GPU memory: a CUDA device pointer, or memory
//! (and a semaphore) the host exported from Vulkan or D3D12 and the engine imports with CUDA's
//! external-memory API. The host imports its image once ([`GpuImage::import`]) and has any
//! number of results written into it ([`GpuImage::write`]); the pixels never visit host memory.
//! The same image can be read back ([`GpuImage::read`]), e.g. as a Kontext reference the host
//! rendered.

use std::time::Duration;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::image::RgbImage;

#[cfg(feature = "cuda")]
pub(crate) mod cuda;

/// The host's memory the engine writes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuMemory {
    /// A device pointer on the engine's CUDA device (the host's own CUDA allocation).
    CudaPointer(u64),
    /// A POSIX fd of an allocation of `size` bytes (Vulkan `OPAQUE_FD`); the engine imports a
    /// duplicate, the host keeps and closes its fd. `dedicated`: a Vulkan dedicated allocation.
    OpaqueFd { fd: i32, size: u64, dedicated: bool },
    /// A Win32 NT handle of an allocation (Vulkan `OPAQUE_WIN32`); the host keeps and closes it.
    OpaqueWin32 {
        handle: isize,
        size: u64,
        dedicated: bool,
    },
    /// A D3D12 committed resource's shared handle (`CreateSharedHandle`); the host keeps it.
    D3D12Resource { handle: isize, size: u64 },
}

impl GpuMemory {
    /// The allocation's size when the host states it (imported memory).
    fn declared_size(&self) -> Option<u64> {
        match *self {
            GpuMemory::CudaPointer(_) => None,
            GpuMemory::OpaqueFd { size, .. }
            | GpuMemory::OpaqueWin32 { size, .. }
            | GpuMemory::D3D12Resource { size, .. } => Some(size),
        }
    }
}

/// A semaphore the host exported; the engine signals it on the GPU once the pixels are written,
/// so the host's queue can wait for them without the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuSemaphore {
    /// A Vulkan binary semaphore (`OPAQUE_FD`); the engine imports a duplicate of the fd.
    OpaqueFd(i32),
    /// A Vulkan binary semaphore (`OPAQUE_WIN32`); the host keeps the handle.
    OpaqueWin32(isize),
    /// A Vulkan timeline semaphore (fd), signalled to the value given to `write`.
    TimelineFd(i32),
    /// A Vulkan timeline semaphore (Win32 handle), signalled to the value given to `write`.
    TimelineWin32(isize),
    /// A D3D12 fence's shared handle, signalled to the value given to `write`.
    D3D12Fence(isize),
}

impl GpuSemaphore {
    /// Whether it carries a value (timeline semaphores and fences) rather than a binary state.
    pub fn counts(self) -> bool {
        matches!(
            self,
            GpuSemaphore::TimelineFd(_)
                | GpuSemaphore::TimelineWin32(_)
                | GpuSemaphore::D3D12Fence(_)
        )
    }
}

/// Pixel layout written into GPU memory: 4 channels, alpha opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuPixelFormat {
    /// 8 bits per channel, the same bytes as the host-memory RGBA8 result.
    Rgba8,
    /// Half floats: the RGBA8 values / 255 (sRGB-encoded, like the host's RGBA32F result).
    Rgba16F,
}

impl GpuPixelFormat {
    /// Bytes per pixel.
    pub fn bytes(self) -> u64 {
        match self {
            GpuPixelFormat::Rgba8 => 4,
            GpuPixelFormat::Rgba16F => 8,
        }
    }
}

/// The host's image: where it lives, its size and layout, and how to tell it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuImageDesc {
    pub memory: GpuMemory,
    /// Bytes from the start of the memory to the first pixel.
    pub offset: u64,
    pub width: usize,
    pub height: usize,
    /// Bytes from one row to the next (at least `width · bytes per pixel`).
    pub row_pitch: u64,
    pub format: GpuPixelFormat,
    /// The device the host's memory belongs to (Vulkan's `deviceUUID`); required for imported
    /// memory, checked against the engine's device.
    pub device_uuid: Option<[u8; 16]>,
    pub semaphore: Option<GpuSemaphore>,
}

impl GpuImageDesc {
    /// Bytes from the start of the memory to the end of the last pixel.
    pub fn extent(&self) -> u64 {
        let row = self.width as u64 * self.format.bytes();
        self.offset + (self.height as u64 - 1) * self.row_pitch + row
    }

    /// Checks what can be checked without a device: sizes, pitch, the range inside the memory.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.width > 16384 || self.height > 16384 {
            return Err(Error::invalid(format!(
                "GPU image size {}×{} is not within 1..=16384",
                self.width, self.height
            )));
        }
        let row = self.width as u64 * self.format.bytes();
        if self.row_pitch < row {
            return Err(Error::invalid(format!(
                "row_pitch {} is smaller than a row ({row} bytes)",
                self.row_pitch
            )));
        }
        if let Some(size) = self.memory.declared_size() {
            if self.extent() > size {
                return Err(Error::invalid(format!(
                    "the image needs {} bytes from the memory's start but the allocation has {size}",
                    self.extent()
                )));
            }
            if self.device_uuid.is_none() {
                return Err(Error::invalid(
                    "imported memory needs the device UUID it was allocated on",
                ));
            }
        }
        if let GpuMemory::CudaPointer(0) = self.memory {
            return Err(Error::invalid("the CUDA device pointer is NULL"));
        }
        Ok(())
    }
}

/// A finished image's pixels kept on the GPU, ready to be copied into host memory: RGBA8 and
/// RGBA16F, each (H, W, 4) contiguous (12 bytes per pixel in all).
#[derive(Debug, Clone)]
pub struct GpuPixels {
    pub rgba8: Tensor,
    pub rgba16f: Tensor,
}

impl GpuPixels {
    /// On a CUDA device, converts a decoded image (1, 3, H, W) in [-1, 1] exactly as the host
    /// result is converted (clamp, `127.5·(x + 1)`, truncate); `None` on other devices.
    pub fn keep(decoded: &Tensor) -> Result<Option<Self>> {
        if !decoded.device().is_cuda() {
            return Ok(None);
        }
        let (_, _, h, w) = decoded.dims4()?;
        let rgb = decoded
            .squeeze(0)?
            .to_dtype(DType::F32)?
            .clamp(-1f32, 1f32)?
            .affine(1.0, 1.0)?
            .affine(127.5, 0.0)?
            .to_dtype(DType::U8)?
            .to_dtype(DType::F32)?;
        let alpha = Tensor::full(255f32, (1, h, w), decoded.device())?;
        let rgba = Tensor::cat(&[rgb, alpha], 0)?.permute((1, 2, 0))?;
        Ok(Some(Self {
            rgba8: rgba.to_dtype(DType::U8)?.contiguous()?,
            rgba16f: (rgba / 255.0)?.to_dtype(DType::F16)?.contiguous()?,
        }))
    }

    /// The host copy of the same pixels (RGB of the RGBA8 tensor): one transfer of the already
    /// converted bytes instead of converting the decoded floats again on the CPU.
    pub fn to_rgb(&self) -> Result<RgbImage> {
        let (height, width, _) = self.rgba8.dims3()?;
        let data = self
            .rgba8
            .narrow(2, 0, 3)?
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }

    fn get(&self, format: GpuPixelFormat) -> &Tensor {
        match format {
            GpuPixelFormat::Rgba8 => &self.rgba8,
            GpuPixelFormat::Rgba16F => &self.rgba16f,
        }
    }
}

/// The host's image imported into the engine's CUDA context; dropping it releases the import.
pub struct GpuImage {
    desc: GpuImageDesc,
    /// The engine's device it was imported on (its context).
    device: Device,
    #[cfg(feature = "cuda")]
    target: cuda::Target,
}

impl GpuImage {
    /// Imports the host's memory (and semaphore) on `device`, the engine's device. Fails with
    /// `Unsupported` on the CPU or in a build without CUDA, `InvalidArgument` on a bad desc or
    /// another device's memory.
    pub fn import(device: &Device, desc: GpuImageDesc) -> Result<Self> {
        desc.validate()?;
        let cuda = cuda_device(device)?;
        #[cfg(feature = "cuda")]
        return Ok(Self {
            target: cuda::Target::import(cuda, &desc)?,
            desc,
            device: device.clone(),
        });
        #[cfg(not(feature = "cuda"))]
        match cuda {}
    }

    /// The description it was imported with.
    pub fn desc(&self) -> &GpuImageDesc {
        &self.desc
    }

    /// The device it was imported on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Copies `pixels` (the same size) into the host's image on the GPU, then signals the
    /// semaphore (to `signal_value` for timeline semaphores and fences). Returns once written.
    pub fn write(&self, pixels: &GpuPixels, signal_value: u64) -> Result<()> {
        let src = pixels.get(self.desc.format);
        let (h, w, _) = src.dims3()?;
        if (w, h) != (self.desc.width, self.desc.height) {
            return Err(Error::invalid(format!(
                "the result is {w}×{h} but the GPU image is {}×{}",
                self.desc.width, self.desc.height
            )));
        }
        #[cfg(feature = "cuda")]
        return self.target.write(src, &self.desc, signal_value);
        #[cfg(not(feature = "cuda"))]
        {
            let _ = signal_value;
            Err(no_cuda_build())
        }
    }

    /// Reads the host's image (a Kontext reference it rendered, say): waits on the GPU for the
    /// image's semaphore (a binary one's pending signal; timeline semaphores and fences until they
    /// reach `wait_value`), copies the pixels out and returns their RGB (RGBA16F values are
    /// [0, 1], scaled by 255 and rounded). Returns once read, so the host may reuse its image; a
    /// semaphore not signalled within `timeout` gives `Timeout` instead of a hang.
    pub fn read(&self, wait_value: u64, timeout: Duration) -> Result<RgbImage> {
        #[cfg(feature = "cuda")]
        {
            let pixels = self.target.read(&self.desc, wait_value, timeout)?;
            rgb_of(&pixels, &self.desc)
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (wait_value, timeout);
            Err(no_cuda_build())
        }
    }
}

/// The RGB of `desc`-sized pixels in its format, rows tightly packed: RGBA8 drops alpha, RGBA16F
/// maps [0, 1] to 0..=255 (rounded, clamped).
#[cfg(any(feature = "cuda", test))]
fn rgb_of(pixels: &[u8], desc: &GpuImageDesc) -> Result<RgbImage> {
    let bpp = desc.format.bytes() as usize;
    let count = desc.width * desc.height;
    if pixels.len() != count * bpp {
        return Err(Error::invalid(format!(
            "{} bytes of pixels for a {}×{} image",
            pixels.len(),
            desc.width,
            desc.height
        )));
    }
    let mut data = Vec::with_capacity(count * 3);
    for px in pixels.chunks_exact(bpp) {
        match desc.format {
            GpuPixelFormat::Rgba8 => data.extend_from_slice(&px[..3]),
            GpuPixelFormat::Rgba16F => data.extend(px[..6].chunks_exact(2).map(|c| {
                let v = half::f16::from_ne_bytes([c[0], c[1]]).to_f32();
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            })),
        }
    }
    Ok(RgbImage {
        width: desc.width,
        height: desc.height,
        data,
    })
}

/// Host memory page-locked for copies to a CUDA device (streamed transformer blocks); never made
/// for other devices or in a build without CUDA.
#[cfg(feature = "cuda")]
pub(crate) use cuda::Pinned;
#[cfg(not(feature = "cuda"))]
pub(crate) enum Pinned {}

/// The work a thread has queued on a device, for another thread's work to wait for (a streamed
/// block uploaded by the prefetch thread); nothing to wait for on the CPU or without CUDA.
#[cfg(feature = "cuda")]
pub(crate) use cuda::Fence;

/// Without CUDA every device computes in order: nothing to wait for.
#[cfg(not(feature = "cuda"))]
pub(crate) struct Fence;

#[cfg(not(feature = "cuda"))]
impl Fence {
    pub(crate) fn record(_: &Device) -> Result<Fence> {
        Ok(Fence)
    }

    pub(crate) fn wait(self, _: &Device) -> Result<()> {
        Ok(())
    }
}

/// Page-locks `bytes` for copies to `device` when it is a CUDA device and the driver agrees.
///
/// # Safety
/// `bytes` must stay allocated, and not move, until the guard is dropped.
pub(crate) unsafe fn pin(device: &Device, bytes: &[u8]) -> Option<Pinned> {
    match device {
        #[cfg(feature = "cuda")]
        // SAFETY: the caller's promise, which is `Pinned::new`'s.
        Device::Cuda(d) => unsafe { Pinned::new(d, bytes) },
        _ => {
            let _ = bytes;
            None
        }
    }
}

/// The UUID of the engine's CUDA device, to match the host's (Vulkan `deviceUUID`).
pub fn device_uuid(device: &Device) -> Result<[u8; 16]> {
    let cuda = cuda_device(device)?;
    #[cfg(feature = "cuda")]
    return cuda::uuid(cuda);
    #[cfg(not(feature = "cuda"))]
    match cuda {}
}

#[cfg(feature = "cuda")]
fn cuda_device(device: &Device) -> Result<&candle_core::CudaDevice> {
    match device {
        Device::Cuda(d) => Ok(d),
        _ => Err(Error::Unsupported(
            "GPU memory interop needs an engine on a CUDA device (this one runs on the CPU)".into(),
        )),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_: &Device) -> Result<std::convert::Infallible> {
    Err(no_cuda_build())
}

#[cfg(not(feature = "cuda"))]
fn no_cuda_build() -> Error {
    Error::Unsupported("GPU memory interop needs a library built with CUDA".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc() -> GpuImageDesc {
        GpuImageDesc {
            memory: GpuMemory::OpaqueFd {
                fd: 3,
                size: 64 * 48 * 4,
                dedicated: false,
            },
            offset: 0,
            width: 64,
            height: 48,
            row_pitch: 64 * 4,
            format: GpuPixelFormat::Rgba8,
            device_uuid: Some([1; 16]),
            semaphore: None,
        }
    }

    #[test]
    fn a_desc_must_fit_its_memory() {
        assert!(desc().validate().is_ok());
        let short_pitch = GpuImageDesc {
            row_pitch: 255,
            ..desc()
        };
        assert!(short_pitch.validate().is_err());
        let too_big = GpuImageDesc {
            format: GpuPixelFormat::Rgba16F,
            row_pitch: 64 * 8,
            ..desc()
        };
        let e = too_big.validate().unwrap_err().to_string();
        assert!(e.contains("needs 24576 bytes"), "{e}");
        let offset = GpuImageDesc {
            offset: 1,
            ..desc()
        };
        assert!(offset.validate().is_err());
        let no_uuid = GpuImageDesc {
            device_uuid: None,
            ..desc()
        };
        assert!(no_uuid.validate().unwrap_err().to_string().contains("UUID"));
        let null = GpuImageDesc {
            memory: GpuMemory::CudaPointer(0),
            ..desc()
        };
        assert!(null.validate().is_err());
        let empty = GpuImageDesc { width: 0, ..desc() };
        assert!(empty.validate().is_err());
    }

    #[test]
    fn the_cpu_cannot_import_gpu_memory() {
        let e = GpuImage::import(&Device::Cpu, desc()).err().unwrap();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(matches!(
            device_uuid(&Device::Cpu),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn the_host_copy_is_the_rgb_of_the_rgba8_pixels() {
        let rgba: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
        let rgba8 = Tensor::from_vec(rgba, (2, 3, 4), &Device::Cpu).unwrap();
        let rgba16f = rgba8.to_dtype(DType::F16).unwrap();
        let rgb = GpuPixels { rgba8, rgba16f }.to_rgb().unwrap();
        assert_eq!((rgb.width, rgb.height), (3, 2));
        let want: Vec<u8> = (0..24u8).filter(|v| v % 4 != 3).collect();
        assert_eq!(rgb.data, want);
    }

    #[test]
    fn read_pixels_become_rgb() {
        let rgba8 = GpuImageDesc {
            width: 2,
            height: 1,
            ..desc()
        };
        let rgb = rgb_of(&[1, 2, 3, 255, 4, 5, 6, 0], &rgba8).unwrap();
        assert_eq!(
            (rgb.width, rgb.height, rgb.data),
            (2, 1, vec![1, 2, 3, 4, 5, 6])
        );
        let rgba16f = GpuImageDesc {
            format: GpuPixelFormat::Rgba16F,
            ..rgba8
        };
        let values = [0.0f32, 0.5, 1.0, 1.0, 2.0, -1.0, 100.0 / 255.0, 1.0];
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_ne_bytes())
            .collect();
        let rgb = rgb_of(&bytes, &rgba16f).unwrap();
        assert_eq!(rgb.data, vec![0, 128, 255, 255, 0, 100]);
        assert!(rgb_of(&bytes[..8], &rgba16f).is_err());
    }

    #[test]
    fn pixels_are_kept_only_on_a_gpu() {
        let decoded = Tensor::zeros((1, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(GpuPixels::keep(&decoded).unwrap().is_none());
    }
}
