//! Images: the host's pixels in host memory, in CUDA memory or in imported Vulkan / D3D12
//! memory, one kind of object for job inputs and for the results written out. GPU images need a
//! CUDA engine; builds without CUDA, and CPU engines, answer `UNSUPPORTED`.

use std::ffi::c_void;
use std::mem::{offset_of, size_of};
use std::sync::Arc;

use flux_core::image::{ImageInput, ImageView, Layout, PixelFormat};
use flux_core::interop::{self, GpuImage, GpuImageDesc, GpuMemory, GpuPixelFormat, GpuSemaphore};
use flux_core::pipeline::tools::Mask;

use crate::abi::{self, guard, non_null, read_desc, write_defaults, FfiError, FfiResult, Registry};
use crate::enums::c_enum;
use crate::types::*;

/// What a `FluxImage` handle stands for.
enum Image {
    /// The host's memory, borrowed until the image is destroyed (the caller's promise).
    Host {
        data: *mut u8,
        size: usize,
        layout: Layout,
    },
    Gpu(Arc<GpuImage>),
}

// SAFETY: `data` is only an address of the host's memory, which the host promises stays valid
// while the image lives; the library reads or writes it only inside calls the host makes.
unsafe impl Send for Image {}
// SAFETY: as above.
unsafe impl Sync for Image {}

static IMAGES: Registry<Image> = Registry::new("image", 2);

fn invalid(msg: String) -> FfiError {
    FfiError::new(FluxResult::InvalidArgument, msg)
}

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`:
/// RGBA8, top row first; no size or row pitch (they must be set). Call it through the header's
/// inline `flux_image_desc_init`.
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_image_desc_defaults(desc: *mut FluxImageDesc, struct_size: u32) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, image_desc_defaults()) };
}

fn image_desc_defaults() -> FluxImageDesc {
    FluxImageDesc {
        struct_size: size_of::<FluxImageDesc>() as u32,
        width: 0,
        height: 0,
        format: FluxPixelFormat::Rgba8 as i32,
        row_pitch: 0,
        bottom_up: 0,
        reserved: 0,
    }
}

/// Writes defaults into the first `struct_size` bytes of `memory` and sets its `struct_size`:
/// an opaque fd, offset 0, not dedicated; no handle, size or device UUID (they must be set).
/// Call it through the header's inline `flux_external_memory_init`.
///
/// # Safety
/// `memory` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_external_memory_defaults(
    memory: *mut FluxExternalMemory,
    struct_size: u32,
) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(memory, struct_size, external_memory_defaults()) };
}

fn external_memory_defaults() -> FluxExternalMemory {
    FluxExternalMemory {
        struct_size: size_of::<FluxExternalMemory>() as u32,
        handle_type: FluxExternalMemoryType::OpaqueFd as i32,
        handle: -1,
        size: 0,
        offset: 0,
        device_uuid: [0; 16],
        dedicated: 0,
        reserved: 0,
    }
}

/// Writes defaults into the first `struct_size` bytes of `semaphore` and sets its
/// `struct_size`: an opaque fd, no handle (it must be set). Call it through the header's inline
/// `flux_semaphore_init`.
///
/// # Safety
/// `semaphore` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_semaphore_defaults(semaphore: *mut FluxSemaphore, struct_size: u32) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(semaphore, struct_size, semaphore_defaults()) };
}

fn semaphore_defaults() -> FluxSemaphore {
    FluxSemaphore {
        struct_size: size_of::<FluxSemaphore>() as u32,
        handle_type: FluxSemaphoreType::OpaqueFd as i32,
        handle: -1,
    }
}

/// The caller's image desc as a core layout (its values are checked where it is used).
///
/// # Safety
/// `desc` must be NULL or a struct whose `struct_size` is set.
unsafe fn layout(desc: *const FluxImageDesc) -> FfiResult<Layout> {
    let min = offset_of!(FluxImageDesc, bottom_up) + size_of::<u32>();
    // SAFETY: the caller's promise, which is `read_desc`'s.
    let d = unsafe { read_desc(desc, min, image_desc_defaults, "desc") }?;
    let format = match c_enum(d.format, "desc.format")? {
        FluxPixelFormat::Rgb8 => PixelFormat::Rgb8,
        FluxPixelFormat::Rgba8 => PixelFormat::Rgba8,
        FluxPixelFormat::Bgra8 => PixelFormat::Bgra8,
        FluxPixelFormat::Rgba16f => PixelFormat::Rgba16F,
        FluxPixelFormat::Rgba32f => PixelFormat::Rgba32F,
        FluxPixelFormat::R8 => PixelFormat::R8,
    };
    let stride = usize::try_from(d.row_pitch)
        .map_err(|_| invalid(format!("desc.row_pitch {} is too large", d.row_pitch)))?;
    Ok(Layout {
        width: d.width as usize,
        height: d.height as usize,
        stride,
        format,
        bottom_up: d.bottom_up != 0,
    })
}

/// Wraps `data_size` bytes of host memory at `data` holding pixels laid out as `desc` says
/// (checked: the rows must fit in `data_size`). The memory stays the caller's and must stay
/// valid until `flux_image_destroy`; it is read when the image is added to a request and
/// written by `flux_job_write_image` (memory only ever read may be `const`, cast).
///
/// # Safety
/// `desc` must be NULL or a struct whose `struct_size` is set; `data` must be NULL or valid for
/// reads and writes of `data_size` bytes until the image is destroyed.
#[no_mangle]
pub unsafe extern "C" fn flux_image_create_host(
    desc: *const FluxImageDesc,
    data: *mut c_void,
    data_size: usize,
    out_image: *mut *mut FluxImage,
) -> FluxResult {
    guard(|| {
        non_null(out_image, "out_image")?;
        // SAFETY: the contract above.
        let layout = unsafe { layout(desc) }?;
        non_null(data, "data")?;
        layout.check(data_size)?;
        let image = Image::Host {
            data: data as *mut u8,
            size: data_size,
            layout,
        };
        // SAFETY: checked not NULL above, and valid for a write (the contract above).
        unsafe { out_image.write(IMAGES.insert(image)) };
        Ok(())
    })
}

/// Wraps CUDA device memory of `engine`'s device: `device_pointer` (a `CUdeviceptr`) is the
/// first pixel, laid out as `desc` says (RGBA8 or RGBA16F, top row first; checked against the
/// allocation). `semaphore` (NULL: none) is waited for before reads and signalled after writes.
///
/// # Safety
/// Pointers must be NULL or valid; struct sizes set.
#[no_mangle]
pub unsafe extern "C" fn flux_image_create_cuda(
    engine: *mut FluxEngine,
    desc: *const FluxImageDesc,
    device_pointer: u64,
    semaphore: *const FluxSemaphore,
    out_image: *mut *mut FluxImage,
) -> FluxResult {
    guard(|| {
        // SAFETY: the contract above.
        unsafe {
            import(
                engine,
                desc,
                GpuMemory::CudaPointer(device_pointer),
                None,
                semaphore,
                out_image,
            )
        }
    })
}

/// Imports Vulkan or D3D12 memory into `engine`'s CUDA context (its device UUID checked against
/// the engine's), holding pixels laid out as `desc` says (RGBA8 or RGBA16F, top row first;
/// checked against the allocation's size). `semaphore` (NULL: none) is waited for before reads
/// and signalled after writes. Import once, use many times.
///
/// # Safety
/// Pointers must be NULL or valid; struct sizes set.
#[no_mangle]
pub unsafe extern "C" fn flux_image_import_memory(
    engine: *mut FluxEngine,
    desc: *const FluxImageDesc,
    memory: *const FluxExternalMemory,
    semaphore: *const FluxSemaphore,
    out_image: *mut *mut FluxImage,
) -> FluxResult {
    guard(|| {
        abi::engine(engine)?;
        non_null(out_image, "out_image")?;
        let min = offset_of!(FluxExternalMemory, dedicated) + size_of::<u32>();
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let m = unsafe { read_desc(memory, min, external_memory_defaults, "memory") }?;
        let fd = fd(m.handle, "memory.handle");
        let (size, dedicated) = (m.size, m.dedicated != 0);
        let gpu = match c_enum(m.handle_type, "memory.handle_type")? {
            FluxExternalMemoryType::OpaqueFd => GpuMemory::OpaqueFd {
                fd: fd?,
                size,
                dedicated,
            },
            FluxExternalMemoryType::OpaqueWin32 => GpuMemory::OpaqueWin32 {
                handle: m.handle as isize,
                size,
                dedicated,
            },
            FluxExternalMemoryType::D3D12Resource => GpuMemory::D3D12Resource {
                handle: m.handle as isize,
                size,
            },
        };
        let placement = Some((
            m.offset,
            (m.device_uuid != [0; 16]).then_some(m.device_uuid),
        ));
        // SAFETY: the contract above.
        unsafe { import(engine, desc, gpu, placement, semaphore, out_image) }
    })
}

fn fd(handle: i64, what: &str) -> FfiResult<i32> {
    i32::try_from(handle)
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| invalid(format!("{what} {handle} is not a file descriptor")))
}

/// The import both GPU constructors share; `placement` is the offset and device UUID of
/// imported memory.
///
/// # Safety
/// As the exports that call it.
unsafe fn import(
    engine: *mut FluxEngine,
    desc: *const FluxImageDesc,
    memory: GpuMemory,
    placement: Option<(u64, Option<[u8; 16]>)>,
    semaphore: *const FluxSemaphore,
    out_image: *mut *mut FluxImage,
) -> FfiResult {
    let h = abi::engine(engine)?;
    non_null(out_image, "out_image")?;
    // SAFETY: the caller's promise.
    let layout = unsafe { layout(desc) }?;
    let format =
        match layout.format {
            PixelFormat::Rgba8 => GpuPixelFormat::Rgba8,
            PixelFormat::Rgba16F => GpuPixelFormat::Rgba16F,
            _ => return Err(invalid(
                "desc.format: GPU images are FLUX_PIXEL_FORMAT_RGBA8 or FLUX_PIXEL_FORMAT_RGBA16F"
                    .into(),
            )),
        };
    if layout.bottom_up {
        return Err(invalid(
            "desc.bottom_up: GPU images are top row first".into(),
        ));
    }
    let semaphore = match semaphore.is_null() {
        true => None,
        // SAFETY: not NULL, so a struct whose `struct_size` is set (the caller's promise).
        false => Some(unsafe { gpu_semaphore(semaphore) }?),
    };
    let (offset, device_uuid) = placement.unwrap_or((0, None));
    let desc = GpuImageDesc {
        memory,
        offset,
        width: layout.width,
        height: layout.height,
        row_pitch: layout.stride as u64,
        format,
        device_uuid,
        semaphore,
    };
    let image = GpuImage::import(h.engine.device(), desc)?;
    // SAFETY: checked not NULL above, and valid for a write (the caller's promise).
    unsafe { out_image.write(IMAGES.insert(Image::Gpu(Arc::new(image)))) };
    Ok(())
}

/// # Safety
/// `s` must point to a struct whose `struct_size` is set.
unsafe fn gpu_semaphore(s: *const FluxSemaphore) -> FfiResult<GpuSemaphore> {
    let min = offset_of!(FluxSemaphore, handle) + size_of::<i64>();
    // SAFETY: the caller's promise, which is `read_desc`'s.
    let s = unsafe { read_desc(s, min, semaphore_defaults, "semaphore") }?;
    let h = s.handle;
    Ok(match c_enum(s.handle_type, "semaphore.handle_type")? {
        FluxSemaphoreType::OpaqueFd => GpuSemaphore::OpaqueFd(fd(h, "semaphore.handle")?),
        FluxSemaphoreType::OpaqueWin32 => GpuSemaphore::OpaqueWin32(h as isize),
        FluxSemaphoreType::TimelineFd => GpuSemaphore::TimelineFd(fd(h, "semaphore.handle")?),
        FluxSemaphoreType::TimelineWin32 => GpuSemaphore::TimelineWin32(h as isize),
        FluxSemaphoreType::D3D12Fence => GpuSemaphore::D3D12Fence(h as isize),
    })
}

/// Frees an image handle. The host's memory and handles are untouched; a request holding the
/// image as an input keeps what it needs (host pixels were copied when added).
///
/// # Safety
/// `image` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_image_destroy(image: *mut FluxImage) -> FluxResult {
    guard(|| {
        // Torn down (CUDA calls for a GPU image) after the registry's lock is released.
        drop(IMAGES.remove(image, "image")?);
        Ok(())
    })
}

/// `image` as a job input: host pixels are copied now; a GPU image is read when the job starts,
/// once its semaphore reaches `wait_value`.
pub(crate) fn input(image: *mut FluxImage, wait_value: u64) -> FfiResult<ImageInput> {
    Ok(match &*IMAGES.get(image, "image")? {
        Image::Host { data, size, layout } => {
            // SAFETY: the host keeps `size` bytes at `data` valid while the image lives
            // (`flux_image_create_host`'s contract), and the image is live.
            let data = unsafe { std::slice::from_raw_parts(*data, *size) };
            let view = ImageView {
                layout: *layout,
                data,
            };
            ImageInput::Pixels(view.to_rgb()?)
        }
        Image::Gpu(g) => ImageInput::Gpu {
            image: g.clone(),
            wait_value,
        },
    })
}

/// A host `image`'s first channel as a mask.
pub(crate) fn mask(image: *mut FluxImage) -> FfiResult<Mask> {
    match input(image, 0)? {
        ImageInput::Pixels(pixels) => Ok(Mask::from_first_channel(&pixels)),
        ImageInput::Gpu { .. } => Err(invalid("a mask must be a host image".into())),
    }
}

/// Writes a finished job's image into `image`, which must have the result's size. A host image
/// gets the pixels in its format; a GPU image (of this engine's device) is written on the GPU,
/// then its semaphore is signalled (timeline semaphores and fences to `signal_value`). Returns
/// once the pixels are written; the engine keeps the result until `flux_job_release`.
///
/// # Safety
/// Pointers must be NULL or handles.
#[no_mangle]
pub unsafe extern "C" fn flux_job_write_image(
    engine: *mut FluxEngine,
    job: FluxJob,
    image: *mut FluxImage,
    signal_value: u64,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        let target = IMAGES.get(image, "image")?;
        let g = crate::jobs::finished(&h, job)?;
        match &*target {
            Image::Host { data, size, layout } => {
                // SAFETY: as in `input`; the host does not use the memory during this call.
                let dst = unsafe { std::slice::from_raw_parts_mut(*data, *size) };
                Ok(g.image.copy_to(layout, dst)?)
            }
            Image::Gpu(target) => {
                if !target.device().same_device(h.engine.device()) {
                    return Err(invalid(
                        "image was imported on another engine's device".into(),
                    ));
                }
                let pixels = g.gpu_pixels.as_ref().ok_or_else(|| {
                    FfiError::new(
                        FluxResult::Unsupported,
                        format!("job {job}'s image is not on a GPU (the engine runs on the CPU)"),
                    )
                })?;
                Ok(target.write(pixels, signal_value)?)
            }
        }
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
