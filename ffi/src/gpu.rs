//! Exports for writing results into the host's GPU memory (CUDA pointers, Vulkan / D3D12
//! memory and semaphores), and reading Kontext references from it. Builds without CUDA, and CPU
//! engines, answer `UNSUPPORTED`.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use flux_core::image::RgbImage;
use flux_core::interop::{self, GpuImage, GpuImageDesc, GpuMemory, GpuPixelFormat, GpuSemaphore};
use parking_lot::Mutex;

use crate::abi::{self, guard, non_null, read_desc, write_defaults, FfiError, FfiResult};
use crate::enums::c_enum;
use crate::types::*;

/// An imported image and the engine it was imported on (its device's context).
struct Registered {
    image: GpuImage,
    engine: usize,
}

static IMAGES: LazyLock<Mutex<HashMap<usize, Arc<Registered>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// Tokens are never reused, so a destroyed image's handle is always detected.
static NEXT_IMAGE: AtomicUsize = AtomicUsize::new(0x2000);

fn invalid(msg: String) -> FfiError {
    FfiError::new(FluxResult::InvalidArgument, msg)
}

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`: a CUDA
/// pointer (NULL), RGBA8, no semaphore. Call it through the header's `flux_gpu_image_desc_init`.
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_gpu_image_desc_defaults(
    desc: *mut FluxGpuImageDesc,
    struct_size: u32,
) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, desc_defaults()) };
}

fn desc_defaults() -> FluxGpuImageDesc {
    FluxGpuImageDesc {
        struct_size: size_of::<FluxGpuImageDesc>() as u32,
        memory_type: FluxGpuMemoryType::CudaPointer as i32,
        cuda_pointer: 0,
        memory_handle: -1,
        memory_size: 0,
        dedicated: 0,
        offset: 0,
        width: 0,
        height: 0,
        row_pitch: 0,
        format: FluxPixelFormat::Rgba8 as i32,
        device_uuid: [0; 16],
        semaphore_type: FluxGpuSemaphoreType::None as i32,
        semaphore_handle: -1,
    }
}

fn core_desc(d: &FluxGpuImageDesc) -> FfiResult<GpuImageDesc> {
    let handle = d.memory_handle;
    let fd = |h: i64, what: &str| {
        i32::try_from(h).map_err(|_| invalid(format!("{what} {h} is not a file descriptor")))
    };
    let (size, dedicated) = (d.memory_size, d.dedicated != 0);
    let memory = match c_enum(d.memory_type, "memory_type")? {
        FluxGpuMemoryType::CudaPointer => GpuMemory::CudaPointer(d.cuda_pointer),
        FluxGpuMemoryType::OpaqueFd => GpuMemory::OpaqueFd {
            fd: fd(handle, "memory_handle")?,
            size,
            dedicated,
        },
        FluxGpuMemoryType::OpaqueWin32 => GpuMemory::OpaqueWin32 {
            handle: handle as isize,
            size,
            dedicated,
        },
        FluxGpuMemoryType::D3D12Resource => GpuMemory::D3D12Resource {
            handle: handle as isize,
            size,
        },
    };
    let sem = d.semaphore_handle;
    let semaphore = match c_enum(d.semaphore_type, "semaphore_type")? {
        FluxGpuSemaphoreType::None => None,
        FluxGpuSemaphoreType::OpaqueFd => {
            Some(GpuSemaphore::OpaqueFd(fd(sem, "semaphore_handle")?))
        }
        FluxGpuSemaphoreType::OpaqueWin32 => Some(GpuSemaphore::OpaqueWin32(sem as isize)),
        FluxGpuSemaphoreType::TimelineFd => {
            Some(GpuSemaphore::TimelineFd(fd(sem, "semaphore_handle")?))
        }
        FluxGpuSemaphoreType::TimelineWin32 => Some(GpuSemaphore::TimelineWin32(sem as isize)),
        FluxGpuSemaphoreType::D3D12Fence => Some(GpuSemaphore::D3D12Fence(sem as isize)),
    };
    let format = match c_enum(d.format, "format")? {
        FluxPixelFormat::Rgba8 => GpuPixelFormat::Rgba8,
        FluxPixelFormat::Rgba16f => GpuPixelFormat::Rgba16F,
        FluxPixelFormat::Rgb8 | FluxPixelFormat::Rgba32f => {
            return Err(invalid(format!(
                "format {}: GPU images are FLUX_PIXEL_FORMAT_RGBA8 or FLUX_PIXEL_FORMAT_RGBA16F",
                d.format
            )))
        }
    };
    Ok(GpuImageDesc {
        memory,
        offset: d.offset,
        width: d.width as usize,
        height: d.height as usize,
        row_pitch: d.row_pitch,
        format,
        device_uuid: (d.device_uuid != [0; 16]).then_some(d.device_uuid),
        semaphore,
    })
}

/// Writes the 16-byte UUID of the engine's CUDA device to `out_uuid`, to pick the same device in
/// Vulkan (`VkPhysicalDeviceIDProperties::deviceUUID`). UNSUPPORTED on CPU engines.
///
/// # Safety
/// `out_uuid` must be NULL or writable for 16 bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_device_uuid(
    engine: *mut FluxEngine,
    out_uuid: *mut u8,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_uuid, "out_uuid")?;
        let uuid = interop::device_uuid(h.engine.device())?;
        // SAFETY: not NULL, so writable for 16 bytes (the contract above).
        unsafe { std::ptr::copy_nonoverlapping(uuid.as_ptr(), out_uuid, 16) };
        Ok(())
    })
}

/// Imports the host's GPU memory (and semaphore) described by `desc` into `engine`'s CUDA
/// context, checking the device UUID and that the image fits its memory. Import once, then
/// write any number of results with `flux_job_write_gpu_image`.
///
/// # Safety
/// Pointers must be NULL or valid; `desc->struct_size` must be set.
#[no_mangle]
pub unsafe extern "C" fn flux_gpu_image_create(
    engine: *mut FluxEngine,
    desc: *const FluxGpuImageDesc,
    out_image: *mut *mut FluxGpuImage,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_image, "out_image")?;
        let min = offset_of!(FluxGpuImageDesc, semaphore_handle) + size_of::<i64>();
        // SAFETY: `desc` is NULL or a struct whose `struct_size` is set (the contract above).
        let d = unsafe { read_desc(desc, min, desc_defaults, "desc") }?;
        let image = GpuImage::import(h.engine.device(), core_desc(&d)?)?;
        let token = NEXT_IMAGE.fetch_add(16, Ordering::Relaxed);
        let entry = Registered {
            image,
            engine: engine as usize,
        };
        IMAGES.lock().insert(token, Arc::new(entry));
        // SAFETY: checked not NULL above, and valid for a write (the contract above).
        unsafe { out_image.write(token as *mut FluxGpuImage) };
        Ok(())
    })
}

/// Copies a finished job's image into `image` on the GPU (same width and height), then
/// signals the image's semaphore (timeline semaphores and fences to `signal_value`). Returns
/// once the pixels are written; the engine keeps the result until `flux_job_release`.
///
/// # Safety
/// Pointers must be NULL or handles.
#[no_mangle]
pub unsafe extern "C" fn flux_job_write_gpu_image(
    engine: *mut FluxEngine,
    job: FluxJob,
    image: *mut FluxGpuImage,
    signal_value: u64,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        let target = registered(image, engine, "image")?;
        let g = crate::jobs::finished(&h, job)?;
        let pixels = g.gpu_pixels.as_ref().ok_or_else(|| {
            FfiError::new(
                FluxResult::Unsupported,
                format!("job {job}'s image is not on a GPU (the engine runs on the CPU)"),
            )
        })?;
        Ok(target.image.write(pixels, signal_value)?)
    })
}

/// Reads `image` (of `engine`) as a Kontext reference once its semaphore allows (`wait_value`).
pub(crate) fn read(
    engine: *mut FluxEngine,
    image: *mut FluxGpuImage,
    wait_value: u64,
    what: &str,
) -> FfiResult<RgbImage> {
    let source = registered(image, engine, what)?;
    Ok(source.image.read(wait_value, READ_TIMEOUT)?)
}

/// How long reading a GPU image waits for the host's semaphore.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Releases an imported image (the host's memory and handles are untouched).
///
/// # Safety
/// `image` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_gpu_image_destroy(image: *mut FluxGpuImage) -> FluxResult {
    guard(|| {
        non_null(image, "image")?;
        // Taken out under the lock, torn down (CUDA calls) after it is released.
        let removed = IMAGES.lock().remove(&(image as usize));
        match removed {
            Some(image) => {
                drop(image);
                Ok(())
            }
            None => Err(not_live("image")),
        }
    })
}

/// The live image behind `image`, which must have been created on `engine`.
fn registered(
    image: *mut FluxGpuImage,
    engine: *mut FluxEngine,
    what: &str,
) -> FfiResult<Arc<Registered>> {
    non_null(image, what)?;
    let found = IMAGES.lock().get(&(image as usize)).cloned();
    let found = found.ok_or_else(|| not_live(what))?;
    if found.engine != engine as usize {
        return Err(invalid(format!("{what} was created on another engine")));
    }
    Ok(found)
}

fn not_live(what: &str) -> FfiError {
    FfiError::new(
        FluxResult::InvalidHandle,
        format!("{what} is not a live GPU image (destroyed or never created)"),
    )
}
