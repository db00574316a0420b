//! The Flux Engine C ABI: `extern "C"` wrappers over `flux_core::runtime`, one to one.
//!
//! Conventions (see the header): every fallible function returns a `FluxResult`; on failure
//! `flux_last_error_message()` gives the reason on the calling thread. No function unwinds or
//! aborts: each runs inside `catch_unwind`. Input structs start with `struct_size` and have an
//! `_init` function. Strings are UTF-8 and NUL-terminated. Memory the library allocates stays
//! the library's; results are copied into caller buffers.

mod abi;
mod enums;
mod events;
pub mod gpu;
pub mod install;
mod residency;
pub mod types;

use std::ffi::c_char;
use std::mem::{offset_of, size_of};
use std::sync::Arc;
use std::time::Duration;

use abi::{
    guard, non_null, opt_string, read_desc, string, write_defaults, write_opt, write_out, FfiError,
    FfiResult, Handle,
};
use enums::c_enum;
use flux_core::image::{ImageView, OutputFormat, PixelFormat, RgbImage};
use flux_core::model::ModelFiles;
use flux_core::pipeline::edit::{ImageToImage, KontextEdit, KONTEXT_RESOLUTIONS};
use flux_core::pipeline::TextToImage;
use flux_core::runtime::{CancelOutcome, EngineOptions, JobId, JobOutput, JobRequest, JobState};
use types::*;

/// End offset of a field: the smallest `struct_size` that still covers it.
macro_rules! end_of {
    ($t:ty, $f:ident) => {
        offset_of!($t, $f) + size_of_field(|s: &$t| &s.$f)
    };
}

/// The size of the field `field` projects to.
fn size_of_field<T, F>(_field: impl Fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version, e.g. "0.1.0" (static string).
#[no_mangle]
pub extern "C" fn flux_version() -> *const c_char {
    VERSION.as_ptr() as *const c_char
}

/// The ABI version the library implements (`FLUX_ABI_VERSION` of its header).
#[no_mangle]
pub extern "C" fn flux_abi_version() -> u32 {
    FLUX_ABI_VERSION
}

/// The message of the calling thread's last call into the library: why it failed, or empty when
/// it succeeded. Valid until the next call on this thread; never NULL.
#[no_mangle]
pub extern "C" fn flux_last_error_message() -> *const c_char {
    abi::last_error()
}

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`: CPU,
/// automatic budget, no previews, 16 cached prompts, INFO logs. Call it through the header's
/// inline `flux_engine_desc_init`, which passes the caller's `sizeof` (so a newer library never
/// writes past an older caller's struct).
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_desc_defaults(desc: *mut FluxEngineDesc, struct_size: u32) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, engine_desc_defaults()) };
}

fn engine_desc_defaults() -> FluxEngineDesc {
    FluxEngineDesc {
        struct_size: size_of::<FluxEngineDesc>() as u32,
        abi_version: FLUX_ABI_VERSION,
        device: FluxDevice::Cpu as i32,
        device_index: 0,
        memory_budget: FLUX_MEMORY_BUDGET_AUTO,
        preview_every: 0,
        embedding_cache: 16,
        log_level: FluxLogLevel::Info as i32,
        callback: None,
        user_data: std::ptr::null_mut(),
        memory_reserve: FLUX_MEMORY_RESERVE_DEFAULT,
    }
}

fn level_filter(v: i32) -> FfiResult<log::LevelFilter> {
    use log::LevelFilter as L;
    Ok(match c_enum(v, "log_level")? {
        FluxLogLevel::Off => L::Off,
        FluxLogLevel::Error => L::Error,
        FluxLogLevel::Warn => L::Warn,
        FluxLogLevel::Info => L::Info,
        FluxLogLevel::Debug => L::Debug,
        FluxLogLevel::Trace => L::Trace,
    })
}

fn device(kind: i32, index: u32) -> FfiResult<candle_core::Device> {
    match c_enum(kind, "device")? {
        FluxDevice::Cpu => Ok(candle_core::Device::Cpu),
        FluxDevice::Cuda => candle_core::Device::new_cuda(index as usize).map_err(|e| {
            let build = if cfg!(feature = "cuda") { "" } else { "not " };
            FfiError::new(
                FluxResult::Compute,
                format!(
                    "CUDA device {index} is unavailable ({e}); this library was {build}built \
                     with CUDA, and the CPU device (FLUX_DEVICE_CPU) always works"
                ),
            )
        }),
    }
}

/// Creates an engine and its worker thread. Fails with ABI_MISMATCH when `desc->abi_version`
/// differs from the library's.
///
/// # Safety
/// `desc` must be NULL or a valid `FluxEngineDesc`; `out_engine` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_create(
    desc: *const FluxEngineDesc,
    out_engine: *mut *mut FluxEngine,
) -> FluxResult {
    guard(|| {
        non_null(out_engine, "out_engine")?;
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let d = unsafe {
            read_desc(
                desc,
                end_of!(FluxEngineDesc, abi_version),
                engine_desc_defaults,
                "desc",
            )
        }?;
        if d.abi_version != FLUX_ABI_VERSION {
            return Err(FfiError::new(
                FluxResult::AbiMismatch,
                format!("the caller was built for ABI {}, this library implements ABI {FLUX_ABI_VERSION}", d.abi_version),
            ));
        }
        let opts = EngineOptions {
            device: device(d.device, d.device_index)?,
            memory_budget: d.memory_budget,
            memory_reserve: d.memory_reserve,
            available_memory: None,
            plan: None,
            preview_every: d.preview_every as usize,
            embedding_cache: d.embedding_cache as usize,
            log_level: level_filter(d.log_level)?,
            callback: events::callback(d.callback, d.user_data),
        };
        let engine = flux_core::runtime::Engine::new(opts)?;
        let handle = abi::register(Handle {
            engine,
            polled: Default::default(),
        });
        // SAFETY: checked not NULL above, and valid for a write (the contract above).
        unsafe { out_engine.write(handle) };
        Ok(())
    })
}

/// Cancels every job, joins the worker (within one denoising step, or one model component of a
/// load) and frees the engine. When it returns no event callback is running or will run, even
/// if another thread is inside a call on this engine (a `flux_job_wait` then returns).
/// NULL is accepted. Returns WRONG_THREAD from inside the event callback, on any thread
/// (nothing is freed).
///
/// # Safety
/// `engine` must be NULL or a handle from `flux_engine_create` (a destroyed one is detected).
#[no_mangle]
pub unsafe extern "C" fn flux_engine_destroy(engine: *mut FluxEngine) -> FluxResult {
    guard(|| {
        if engine.is_null() {
            return Ok(());
        }
        let handle = abi::engine(engine)?;
        if handle.engine.in_callback() {
            return Err(FfiError::new(
                FluxResult::WrongThread,
                "an engine cannot be destroyed from its own event callback",
            ));
        }
        drop(abi::unregister(engine));
        // Stopped here even while another thread is inside a call (a wait) and holds the
        // handle: no callback runs after destroy returns.
        handle.engine.shutdown().map_err(FfiError::from)
    })
}

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`: no
/// paths, default dtype, Kontext detected, normal priority. Call it through the header's inline
/// `flux_model_desc_init`, which passes the caller's `sizeof` (so a newer library never writes
/// past an older caller's struct).
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_model_desc_defaults(desc: *mut FluxModelDesc, struct_size: u32) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, model_desc_defaults()) };
}

fn model_desc_defaults() -> FluxModelDesc {
    let null = std::ptr::null();
    FluxModelDesc {
        struct_size: size_of::<FluxModelDesc>() as u32,
        folder: null,
        transformer: null,
        ae: null,
        t5: null,
        clip: null,
        t5_tokenizer: null,
        clip_tokenizer: null,
        dtype: FluxDtype::Default as i32,
        kontext: -1,
        priority: FLUX_PRIORITY_NORMAL,
        reserved: 0,
    }
}

unsafe fn model_files(d: &FluxModelDesc) -> FfiResult<ModelFiles> {
    // SAFETY: the desc's strings are NULL or NUL-terminated (the contract above).
    if let Some(folder) = unsafe { opt_string(d.folder, "desc.folder") }? {
        return Ok(ModelFiles::from_folder(folder.as_ref())?);
    }
    // SAFETY: as above.
    let path = |p, what| unsafe { string(p, what) }.map(std::path::PathBuf::from);
    Ok(ModelFiles {
        transformer: path(d.transformer, "desc.transformer (or desc.folder)")?,
        ae: path(d.ae, "desc.ae")?,
        t5: path(d.t5, "desc.t5")?,
        clip: path(d.clip, "desc.clip")?,
        t5_tokenizer: path(d.t5_tokenizer, "desc.t5_tokenizer")?,
        clip_tokenizer: path(d.clip_tokenizer, "desc.clip_tokenizer")?,
        model_index: None,
    })
}

fn submit(h: &Handle, request: JobRequest, priority: i32, out_job: *mut FluxJob) -> FfiResult {
    let id = h.engine.submit(request, priority)?;
    // SAFETY: checked non-null by the caller of `submit`.
    unsafe { out_job.write(id.0) };
    Ok(())
}

/// Queues loading a model (replacing the current one). Files are located now (a missing folder
/// or unknown layout fails here); weights load on the worker (watch the job).
///
/// # Safety
/// Pointers must be NULL or valid; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_load_model(
    engine: *mut FluxEngine,
    desc: *const FluxModelDesc,
    out_job: *mut FluxJob,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_job, "out_job")?;
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let d = unsafe {
            read_desc(
                desc,
                end_of!(FluxModelDesc, folder),
                model_desc_defaults,
                "desc",
            )
        }?;
        let dtype = match c_enum(d.dtype, "dtype")? {
            FluxDtype::Default => None,
            FluxDtype::F32 => Some(candle_core::DType::F32),
            FluxDtype::Bf16 => Some(candle_core::DType::BF16),
            FluxDtype::F16 => Some(candle_core::DType::F16),
        };
        let kontext = match d.kontext {
            -1 => None,
            0 => Some(false),
            1 => Some(true),
            v => {
                return Err(FfiError::new(
                    FluxResult::InvalidArgument,
                    format!("kontext must be -1, 0 or 1, got {v}"),
                ))
            }
        };
        // SAFETY: the desc's strings are NULL or NUL-terminated (the contract above).
        let files = unsafe { model_files(&d) }?;
        submit(
            &h,
            JobRequest::LoadModel {
                files,
                dtype,
                kontext,
            },
            d.priority,
            out_job,
        )
    })
}

/// Queues unloading the model.
///
/// # Safety
/// Pointers must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_unload_model(
    engine: *mut FluxEngine,
    priority: i32,
    out_job: *mut FluxJob,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_job, "out_job")?;
        submit(&h, JobRequest::UnloadModel, priority, out_job)
    })
}

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`:
/// 1024×1024, seed 0, the variant's steps/guidance/T5 length. Call it through the header's inline
/// `flux_text_to_image_desc_init`, which passes the caller's `sizeof` (so a newer library never
/// writes past an older caller's struct).
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_text_to_image_desc_defaults(
    desc: *mut FluxTextToImageDesc,
    struct_size: u32,
) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, text_to_image_desc_defaults()) };
}

fn text_to_image_desc_defaults() -> FluxTextToImageDesc {
    FluxTextToImageDesc {
        struct_size: size_of::<FluxTextToImageDesc>() as u32,
        prompt: std::ptr::null(),
        width: 1024,
        height: 1024,
        seed: 0,
        steps: 0,
        guidance: -1.0,
        t5_len: 0,
        priority: FLUX_PRIORITY_NORMAL,
    }
}

fn opt_u(v: u32) -> Option<usize> {
    (v > 0).then_some(v as usize)
}

/// Checks step count and T5 length at submit (0 = default).
fn check_counts(steps: u32, t5_len: u32) -> FfiResult {
    let max = flux_core::pipeline::MAX_STEPS as u32;
    if steps > max {
        return Err(FfiError::new(
            FluxResult::InvalidArgument,
            format!("steps {steps} is more than {max}"),
        ));
    }
    if t5_len == 1 || t5_len > 4096 {
        return Err(FfiError::new(
            FluxResult::InvalidArgument,
            format!("t5_len {t5_len} must be 0 (default) or 2..=4096"),
        ));
    }
    Ok(())
}

/// A guidance from a desc: negative is the default; NaN and infinity are refused.
fn opt_guidance(g: f32) -> FfiResult<Option<f32>> {
    match g.is_finite() {
        true => Ok((g >= 0.0).then_some(g)),
        false => Err(FfiError::new(
            FluxResult::InvalidArgument,
            format!("guidance {g} is not a finite number (negative: the default)"),
        )),
    }
}

/// Validates sizes early (so the caller gets the error at submit, naming the nearest valid size).
fn size(w: u32, h: u32) -> FfiResult<(usize, usize)> {
    let (w, h) = (w as usize, h as usize);
    flux_core::pipeline::validate_size(w, h)?;
    Ok((w, h))
}

/// Queues a text-to-image job.
///
/// # Safety
/// Pointers must be NULL or valid; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_submit_text_to_image(
    engine: *mut FluxEngine,
    desc: *const FluxTextToImageDesc,
    out_job: *mut FluxJob,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_job, "out_job")?;
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let d = unsafe {
            read_desc(
                desc,
                end_of!(FluxTextToImageDesc, prompt),
                text_to_image_desc_defaults,
                "desc",
            )
        }?;
        // SAFETY: NULL or NUL-terminated (the contract above).
        let prompt = unsafe { string(d.prompt, "desc.prompt") }?;
        let (width, height) = size(d.width, d.height)?;
        check_counts(d.steps, d.t5_len)?;
        let req = TextToImage {
            prompt,
            width,
            height,
            seed: d.seed,
            steps: opt_u(d.steps),
            guidance: opt_guidance(d.guidance)?,
            t5_len: opt_u(d.t5_len),
        };
        submit(&h, JobRequest::TextToImage(req), d.priority, out_job)
    })
}

/// Copies a caller image (validating size, stride and buffer length).
unsafe fn image(v: &FluxImageView, what: &str) -> FfiResult<RgbImage> {
    let format = match c_enum(v.format, &format!("{what}.format"))? {
        FluxPixelFormat::Rgb8 => PixelFormat::Rgb8,
        FluxPixelFormat::Rgba8 => PixelFormat::Rgba8,
        FluxPixelFormat::Rgba32f | FluxPixelFormat::Rgba16f => {
            return Err(FfiError::new(
                FluxResult::InvalidArgument,
                format!("{what}.format {} is not RGB8 or RGBA8", v.format),
            ))
        }
    };
    non_null(v.data, &format!("{what}.data"))?;
    let bpp = format.bytes();
    let (w, h, stride) = (v.width as usize, v.height as usize, v.stride as usize);
    let max = flux_core::image::MAX_INPUT_SIDE;
    // Checked before any slice is formed over the caller's buffer.
    if w == 0 || h == 0 || w > max || h > max || stride < w * bpp || stride > max * 16 {
        return Err(flux_core::Error::InvalidArgument(format!(
            "{what}: {w}x{h} with stride {stride} is not a valid image"
        ))
        .into());
    }
    // Bounded by the checks above (at most 4096 rows of 64 KiB).
    let len = flux_core::image::strided_len(stride, h, w * bpp).unwrap_or(usize::MAX);
    // SAFETY: `data` (not NULL) holds `stride × (height − 1) + row` bytes (the contract above).
    let data = unsafe { std::slice::from_raw_parts(v.data, len) };
    Ok(ImageView {
        width: w,
        height: h,
        stride,
        format,
        data,
    }
    .to_rgb()?)
}

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`: snap
/// on, size from the first image, 30 steps, guidance 2.5. Call it through the header's inline
/// `flux_edit_desc_init`, which passes the caller's `sizeof` (so a newer library never writes past
/// an older caller's struct).
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_edit_desc_defaults(desc: *mut FluxEditDesc, struct_size: u32) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, edit_desc_defaults()) };
}

fn edit_desc_defaults() -> FluxEditDesc {
    FluxEditDesc {
        struct_size: size_of::<FluxEditDesc>() as u32,
        prompt: std::ptr::null(),
        images: std::ptr::null(),
        image_count: 0,
        snap: 1,
        width: 0,
        height: 0,
        seed: 0,
        steps: 0,
        guidance: -1.0,
        t5_len: 0,
        priority: FLUX_PRIORITY_NORMAL,
        gpu_images: std::ptr::null(),
        gpu_wait_values: std::ptr::null(),
        gpu_image_count: 0,
        reserved: 0,
    }
}

/// Queues a Kontext edit of 1 to 4 reference images (copied now), from host memory and/or GPU
/// images.
///
/// # Safety
/// Pointers must be NULL or valid; `images` must hold `image_count` views whose buffers hold
/// `stride × (height − 1) + width × bytes-per-pixel` bytes; `gpu_images` (and
/// `gpu_wait_values` unless NULL) must hold `gpu_image_count` entries.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_submit_edit(
    engine: *mut FluxEngine,
    desc: *const FluxEditDesc,
    out_job: *mut FluxJob,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_job, "out_job")?;
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let d = unsafe {
            read_desc(
                desc,
                end_of!(FluxEditDesc, image_count),
                edit_desc_defaults,
                "desc",
            )
        }?;
        // SAFETY: NULL or NUL-terminated (the contract above).
        let prompt = unsafe { string(d.prompt, "desc.prompt") }?;
        check_counts(d.steps, d.t5_len)?;
        let max = flux_core::pipeline::edit::MAX_REFERENCES;
        let (hosts, gpus) = (d.image_count as usize, d.gpu_image_count as usize);
        if hosts + gpus == 0 || hosts + gpus > max {
            return Err(FfiError::new(
                FluxResult::InvalidArgument,
                format!("image_count + gpu_image_count must be 1..={max}, got {hosts} + {gpus}"),
            ));
        }
        let mut references = Vec::with_capacity(hosts + gpus);
        if hosts > 0 {
            non_null(d.images, "desc.images")?;
            // SAFETY: `images` (not NULL) holds `image_count` views (the contract above).
            for (i, v) in unsafe { std::slice::from_raw_parts(d.images, hosts) }
                .iter()
                .enumerate()
            {
                // SAFETY: each view's data holds its rows (the contract above).
                references.push(unsafe { image(v, &format!("desc.images[{i}]")) }?);
            }
        }
        if gpus > 0 {
            non_null(d.gpu_images, "desc.gpu_images")?;
            // SAFETY: `gpu_images` (not NULL) holds `gpu_image_count` handles (the contract).
            let images = unsafe { std::slice::from_raw_parts(d.gpu_images, gpus) };
            for (i, &g) in images.iter().enumerate() {
                let wait = match d.gpu_wait_values.is_null() {
                    true => 0,
                    // SAFETY: `gpu_wait_values`, when not NULL, holds one value per GPU image.
                    false => unsafe { *d.gpu_wait_values.add(i) },
                };
                references.push(gpu::read(
                    engine,
                    g,
                    wait,
                    &format!("desc.gpu_images[{i}]"),
                )?);
            }
        }
        let size = match (d.width, d.height) {
            (0, 0) => None,
            (w, hh) => Some(size(w, hh)?),
        };
        let req = KontextEdit {
            prompt,
            references,
            size,
            resolutions: if d.snap != 0 {
                KONTEXT_RESOLUTIONS.to_vec()
            } else {
                Vec::new()
            },
            seed: d.seed,
            steps: opt_u(d.steps),
            guidance: opt_guidance(d.guidance)?,
            t5_len: opt_u(d.t5_len),
        };
        submit(&h, JobRequest::Edit(req), d.priority, out_job)
    })
}

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`:
/// strength 0.8, size from the init image. Call it through the header's inline
/// `flux_image_to_image_desc_init`, which passes the caller's `sizeof` (so a newer library never
/// writes past an older caller's struct).
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_image_to_image_desc_defaults(
    desc: *mut FluxImageToImageDesc,
    struct_size: u32,
) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, image_to_image_desc_defaults()) };
}

fn image_to_image_desc_defaults() -> FluxImageToImageDesc {
    FluxImageToImageDesc {
        struct_size: size_of::<FluxImageToImageDesc>() as u32,
        prompt: std::ptr::null(),
        init: FluxImageView {
            width: 0,
            height: 0,
            stride: 0,
            format: FluxPixelFormat::Rgb8 as i32,
            data: std::ptr::null(),
        },
        strength: 0.8,
        width: 0,
        height: 0,
        seed: 0,
        steps: 0,
        guidance: -1.0,
        t5_len: 0,
        priority: FLUX_PRIORITY_NORMAL,
    }
}

/// Queues an image-to-image job (the init image is copied now).
///
/// # Safety
/// As `flux_engine_submit_edit`.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_submit_image_to_image(
    engine: *mut FluxEngine,
    desc: *const FluxImageToImageDesc,
    out_job: *mut FluxJob,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_job, "out_job")?;
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let d = unsafe {
            read_desc(
                desc,
                end_of!(FluxImageToImageDesc, strength),
                image_to_image_desc_defaults,
                "desc",
            )
        }?;
        // SAFETY: NULL or NUL-terminated (the contract above).
        let prompt = unsafe { string(d.prompt, "desc.prompt") }?;
        check_counts(d.steps, d.t5_len)?;
        // SAFETY: the view's data holds its rows (the contract above).
        let init = unsafe { image(&d.init, "desc.init") }?;
        flux_core::pipeline::edit::img2img_start(1, d.strength)?;
        let (w, hh) = match (d.width, d.height) {
            (0, 0) => (
                (init.width / 16 * 16) as u32,
                (init.height / 16 * 16) as u32,
            ),
            s => s,
        };
        let (width, height) = size(w, hh)?;
        let base = TextToImage {
            prompt,
            width,
            height,
            seed: d.seed,
            steps: opt_u(d.steps),
            guidance: opt_guidance(d.guidance)?,
            t5_len: opt_u(d.t5_len),
        };
        submit(
            &h,
            JobRequest::ImageToImage(ImageToImage {
                base,
                init,
                strength: d.strength,
            }),
            d.priority,
            out_job,
        )
    })
}

fn state_code(s: JobState) -> i32 {
    (match s {
        JobState::Queued => FluxJobState::Queued,
        JobState::Running => FluxJobState::Running,
        JobState::Succeeded => FluxJobState::Succeeded,
        JobState::Failed => FluxJobState::Failed,
        JobState::Cancelled => FluxJobState::Cancelled,
    }) as i32
}

/// Cancels a job: a queued one never starts, a running one stops within one step (a model load:
/// after the component it is reading). Cancelling a finished job is harmless
/// (`FLUX_CANCEL_OUTCOME_ALREADY_FINISHED`). `out_outcome` may be NULL.
///
/// # Safety
/// Pointers must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn flux_job_cancel(
    engine: *mut FluxEngine,
    job: FluxJob,
    out_outcome: *mut i32,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        let outcome = h.engine.cancel(JobId(job))?;
        let code = match outcome {
            CancelOutcome::Dequeued => FluxCancelOutcome::Dequeued,
            CancelOutcome::Requested => FluxCancelOutcome::Requested,
            CancelOutcome::AlreadyFinished => FluxCancelOutcome::AlreadyFinished,
        };
        // SAFETY: NULL or valid for a write (the contract above).
        unsafe { write_opt(out_outcome, code as i32) };
        Ok(())
    })
}

/// A job's state and progress.
///
/// # Safety
/// `out` must point to a `FluxJobStatus` whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn flux_job_status(
    engine: *mut FluxEngine,
    job: FluxJob,
    out: *mut FluxJobStatus,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out, "out")?;
        let s = h.engine.status(JobId(job))?;
        let v = FluxJobStatus {
            struct_size: 0,
            state: state_code(s.state),
            step: s.step as u32,
            total: s.total as u32,
            has_result: u32::from(s.has_result),
        };
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        unsafe { write_out(out, &v, "out") }
    })
}

/// Blocks until the job ends or `timeout_ms` passes (TIMEOUT; the job goes on). `out_state`
/// (may be NULL) then holds the job's `FluxJobState`: the terminal one on success, QUEUED or
/// RUNNING on TIMEOUT. WRONG_THREAD in the callback.
///
/// # Safety
/// Pointers must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn flux_job_wait(
    engine: *mut FluxEngine,
    job: FluxJob,
    timeout_ms: u32,
    out_state: *mut i32,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        if h.engine.on_worker_thread() {
            return Err(FfiError::new(
                FluxResult::WrongThread,
                "flux_job_wait cannot be called from the event callback",
            ));
        }
        let state = h
            .engine
            .wait(JobId(job), Duration::from_millis(timeout_ms as u64))?;
        // SAFETY: NULL or valid for a write (the contract above).
        unsafe { write_opt(out_state, state_code(state)) };
        if !state.is_terminal() {
            return Err(FfiError::new(
                FluxResult::Timeout,
                format!("job {job} still {state:?} after {timeout_ms} ms"),
            ));
        }
        Ok(())
    })
}

/// OK for a job that has not failed; JOB_FAILED (with its error as the last error message) for
/// one that has.
///
/// # Safety
/// `engine` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_job_error(engine: *mut FluxEngine, job: FluxJob) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        match h.engine.status(JobId(job))?.error {
            Some(e) => Err(FfiError::new(FluxResult::JobFailed, e)),
            None => Ok(()),
        }
    })
}

/// A finished image job's result (image and generation parameters), or the code saying why not.
pub(crate) fn finished(h: &Handle, job: FluxJob) -> FfiResult<Arc<flux_core::pipeline::Generated>> {
    match h.engine.result(JobId(job)) {
        Ok(JobOutput::Image(g)) => Ok(g),
        Ok(_) => Err(FfiError::new(
            FluxResult::NotReady,
            format!("job {job} did not produce an image"),
        )),
        Err(e) => match h.engine.status(JobId(job)) {
            Err(_) => Err(e.into()),
            Ok(_) => Err(FfiError::new(FluxResult::NotReady, e.to_string())),
        },
    }
}

/// Size of a finished job's image.
///
/// # Safety
/// Pointers must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn flux_job_image_size(
    engine: *mut FluxEngine,
    job: FluxJob,
    out_width: *mut u32,
    out_height: *mut u32,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_width, "out_width")?;
        non_null(out_height, "out_height")?;
        let g = finished(&h, job)?;
        let img = &g.image;
        // SAFETY: both checked not NULL above, and valid for writes (the contract above).
        unsafe {
            out_width.write(img.width as u32);
            out_height.write(img.height as u32);
        }
        Ok(())
    })
}

/// Copies a finished job's image into `dst` as `format` (a `FluxPixelFormat`), rows `dst_stride`
/// bytes apart; `dst_size` is the buffer's length. The engine keeps the result until
/// `flux_job_release`.
///
/// # Safety
/// `dst` must be NULL or writable for `dst_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_job_copy_image(
    engine: *mut FluxEngine,
    job: FluxJob,
    format: i32,
    dst: *mut u8,
    dst_stride: usize,
    dst_size: usize,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        let format = match c_enum(format, "format")? {
            FluxPixelFormat::Rgb8 => OutputFormat::Rgb8,
            FluxPixelFormat::Rgba8 => OutputFormat::Rgba8,
            FluxPixelFormat::Rgba32f => OutputFormat::Rgba32F,
            FluxPixelFormat::Rgba16f => {
                return Err(FfiError::new(
                    FluxResult::InvalidArgument,
                    "format 3: RGBA16F is for GPU images (flux_job_write_gpu_image); use RGBA32F",
                ));
            }
        };
        non_null(dst, "dst")?;
        let g = finished(&h, job)?;
        // SAFETY: `dst` (not NULL) is writable for `dst_size` bytes (the contract above).
        let out = unsafe { std::slice::from_raw_parts_mut(dst, dst_size) };
        g.image.copy_to(format, out, dst_stride)?;
        Ok(())
    })
}

/// Writes a finished job's image to `path`: JPEG for `.jpg`/`.jpeg` (quality 95), otherwise
/// PNG carrying the generation parameters (prompt, seed, steps, guidance, size, variant).
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn flux_job_save_image(
    engine: *mut FluxEngine,
    job: FluxJob,
    path: *const c_char,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        // SAFETY: NULL or NUL-terminated (the contract above).
        let path = unsafe { string(path, "path") }?;
        let g = finished(&h, job)?;
        Ok(flux_core::image::export::save(
            path.as_ref(),
            &g.image,
            Some(&g.meta),
        )?)
    })
}

/// Forgets a job (cancelling it if it is still queued or running); its handle becomes invalid.
///
/// # Safety
/// `engine` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_job_release(engine: *mut FluxEngine, job: FluxJob) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        Ok(h.engine.release(JobId(job))?)
    })
}

/// The next event, or NO_EVENT (always, for an engine with a callback). Never blocks.
/// `out->struct_size` must be set; its pointers stay valid until the next poll on this engine.
/// The engine keeps the latest `FLUX_EVENT_QUEUE_CAPACITY` unread events: poll every frame, or
/// pass a callback.
///
/// # Safety
/// `out` must point to a `FluxEvent` whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_poll_event(
    engine: *mut FluxEngine,
    out: *mut FluxEvent,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        // SAFETY: a struct whose `struct_size` is set (the contract above). Checked before the
        // event is taken, so a bad size loses nothing.
        unsafe { abi::out_size(out, "out") }?;
        let Some(e) = h.engine.poll_event() else {
            return Err(FfiError::new(FluxResult::NoEvent, "no event"));
        };
        let mut store = h.polled.lock();
        let fe = store.convert(&e);
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        unsafe { write_out(out, &fe, "out") }
    })
}

/// Sets the memory budget in bytes (`FLUX_MEMORY_BUDGET_AUTO`: the memory available at the next
/// load, less the reserve). The residency plan is chosen again before the next denoising step of a
/// running job (which fails, saying why, when no plan fits) and before the next job. A budget no
/// plan fits unloads the model, with a RESIDENCY event naming the budget and the bytes needed,
/// which later jobs' errors repeat until a model is loaded again.
///
/// # Safety
/// `engine` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_set_memory_budget(
    engine: *mut FluxEngine,
    bytes: u64,
) -> FluxResult {
    guard(|| {
        abi::engine(engine)?.engine.set_memory_budget(bytes);
        Ok(())
    })
}

/// Sets the bytes `FLUX_MEMORY_BUDGET_AUTO` leaves free; it applies at the next load.
///
/// # Safety
/// `engine` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_set_memory_reserve(
    engine: *mut FluxEngine,
    bytes: u64,
) -> FluxResult {
    guard(|| {
        abi::engine(engine)?.engine.set_memory_reserve(bytes);
        Ok(())
    })
}

/// Writes the default plan (everything resident) into the first `struct_size` bytes of `plan`.
/// Call it through the header's inline `flux_residency_plan_init`.
///
/// # Safety
/// `plan` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_residency_plan_defaults(
    plan: *mut FluxResidencyPlan,
    struct_size: u32,
) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(plan, struct_size, residency::plan_defaults()) };
}

/// Forces a residency plan (NULL: chosen for the budget again, the default). It applies before
/// the next denoising step or job; a plan that does not fit the budget fails jobs with the bytes
/// needed and available.
///
/// # Safety
/// `engine` must be NULL or a handle; `plan` NULL or a valid `FluxResidencyPlan`.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_set_residency_plan(
    engine: *mut FluxEngine,
    plan: *const FluxResidencyPlan,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        let plan = match plan.is_null() {
            true => None,
            false => {
                let min = end_of!(FluxResidencyPlan, struct_size);
                // SAFETY: a struct whose `struct_size` is set (the contract above).
                let d = unsafe { read_desc(plan, min, residency::plan_defaults, "plan") }?;
                Some(residency::plan_from_c(&d)?)
            }
        };
        h.engine.set_plan(plan);
        Ok(())
    })
}

/// What the engine holds now, per component, and the plan that placed it.
///
/// # Safety
/// `out` must point to a `FluxResidency` whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_get_residency(
    engine: *mut FluxEngine,
    out: *mut FluxResidency,
) -> FluxResult {
    guard(|| {
        let r = abi::engine(engine)?.engine.residency();
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        unsafe { write_out(out, &residency::to_c(&r), "out") }
    })
}
