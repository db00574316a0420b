//! Submitting jobs: text-to-image, Kontext edits and image-to-image, their descs and the checks
//! made at submit.

use std::mem::{offset_of, size_of};
use std::sync::Arc;

use flux_core::image::{ImageView, PixelFormat, RgbImage};
use flux_core::pipeline::edit::{ImageToImage, KontextEdit, KONTEXT_RESOLUTIONS};
use flux_core::pipeline::TextToImage;
use flux_core::runtime::JobRequest;

use crate::abi::{
    self, guard, non_null, read_desc, string, write_defaults, FfiError, FfiResult, Handle,
};
use crate::enums::c_enum;
use crate::gpu;
use crate::types::*;

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
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let (h, d) = unsafe {
            submission(
                engine,
                desc,
                end_of!(FluxTextToImageDesc, prompt),
                text_to_image_desc_defaults,
                out_job,
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
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let (h, d) = unsafe {
            submission(
                engine,
                desc,
                end_of!(FluxEditDesc, image_count),
                edit_desc_defaults,
                out_job,
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
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let (h, d) = unsafe {
            submission(
                engine,
                desc,
                end_of!(FluxImageToImageDesc, strength),
                image_to_image_desc_defaults,
                out_job,
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

pub(crate) fn submit(
    h: &Handle,
    request: JobRequest,
    priority: i32,
    out_job: *mut FluxJob,
) -> FfiResult {
    let id = h.engine.submit(request, priority)?;
    // SAFETY: checked non-null by the caller of `submit`.
    unsafe { out_job.write(id.0) };
    Ok(())
}

/// The start every submit shares: the live engine, `out_job` checked, and the caller's desc read
/// over its defaults (`min`: the smallest `struct_size` accepted).
///
/// # Safety
/// `desc` must be NULL or a struct whose `struct_size` is set.
pub(crate) unsafe fn submission<T>(
    engine: *mut FluxEngine,
    desc: *const T,
    min: usize,
    defaults: fn() -> T,
    out_job: *mut FluxJob,
) -> FfiResult<(Arc<Handle>, T)> {
    let h = abi::engine(engine)?;
    non_null(out_job, "out_job")?;
    // SAFETY: the caller's promise, which is `read_desc`'s.
    let d = unsafe { read_desc(desc, min, defaults, "desc") }?;
    Ok((h, d))
}
