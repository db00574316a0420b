//! Requests: one opaque builder for every image job (`flux_core::request::Request`, which checks
//! each setting as it is set), and submitting it.

use std::ffi::c_char;

use flux_core::request::Request;
use parking_lot::Mutex;

use crate::abi::{self, guard, non_null, string, FfiResult, Registry};
use crate::images;
use crate::jobs::submit;
use crate::types::*;

static REQUESTS: Registry<Mutex<Request>> = Registry::new("request", 3);

/// Runs `f` on the live request behind `request`.
fn with(request: *mut FluxRequest, f: impl FnOnce(&mut Request) -> FfiResult) -> FluxResult {
    guard(|| f(&mut REQUESTS.get(request, "request")?.lock()))
}

/// Creates a request with every setting at its default: text-to-image of 1024×1024, seed 0,
/// the model variant's steps, guidance and T5 length, priority `FLUX_PRIORITY_NORMAL`, no
/// images. Its prompt must be set before it is submitted.
///
/// # Safety
/// `out_request` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn flux_request_create(out_request: *mut *mut FluxRequest) -> FluxResult {
    guard(|| {
        non_null(out_request, "out_request")?;
        let handle = REQUESTS.insert(Mutex::new(Request::default()));
        // SAFETY: checked not NULL above, and valid for a write (the contract above).
        unsafe { out_request.write(handle) };
        Ok(())
    })
}

/// Frees a request. Jobs submitted from it are not affected.
///
/// # Safety
/// `request` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_request_destroy(request: *mut FluxRequest) -> FluxResult {
    guard(|| {
        drop(REQUESTS.remove(request, "request")?);
        Ok(())
    })
}

/// Sets the prompt (UTF-8, copied; may be empty). Required.
///
/// # Safety
/// `prompt` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn flux_request_set_prompt(
    request: *mut FluxRequest,
    prompt: *const c_char,
) -> FluxResult {
    with(request, |r| {
        // SAFETY: NULL or NUL-terminated (the contract above).
        r.set_prompt(unsafe { string(prompt, "prompt") }?);
        Ok(())
    })
}

/// Sets the output size: positive multiples of 16, at most 4096 a side and 4 MP in all. Default:
/// 1024 × 1024; an edit takes its first reference's (snapped) size, image-to-image its init
/// image's rounded down to multiples of 16.
#[no_mangle]
pub extern "C" fn flux_request_set_size(
    request: *mut FluxRequest,
    width: u32,
    height: u32,
) -> FluxResult {
    with(
        request,
        |r| Ok(r.set_size(width as usize, height as usize)?),
    )
}

/// Sets the seed of the initial noise (default 0).
#[no_mangle]
pub extern "C" fn flux_request_set_seed(request: *mut FluxRequest, seed: u64) -> FluxResult {
    with(request, |r| {
        r.set_seed(seed);
        Ok(())
    })
}

/// Sets the denoising steps, 1 to 1000. Default: dev 28, schnell 4, Kontext edits 30.
#[no_mangle]
pub extern "C" fn flux_request_set_steps(request: *mut FluxRequest, steps: u32) -> FluxResult {
    with(request, |r| Ok(r.set_steps(steps as usize)?))
}

/// Sets the distilled guidance, finite and ≥ 0. Default: dev 3.5, Kontext edits 2.5; schnell
/// ignores it.
#[no_mangle]
pub extern "C" fn flux_request_set_guidance(
    request: *mut FluxRequest,
    guidance: f32,
) -> FluxResult {
    with(request, |r| Ok(r.set_guidance(guidance)?))
}

/// Sets the T5 sequence length in tokens, 2 to 4096 (longer prompts are cut). Default: dev and
/// Kontext 512, schnell 256.
#[no_mangle]
pub extern "C" fn flux_request_set_t5_length(request: *mut FluxRequest, tokens: u32) -> FluxResult {
    with(request, |r| Ok(r.set_t5_length(tokens as usize)?))
}

/// Sets the queue priority: higher runs first, equal ones in submission order (default
/// `FLUX_PRIORITY_NORMAL`).
#[no_mangle]
pub extern "C" fn flux_request_set_priority(
    request: *mut FluxRequest,
    priority: i32,
) -> FluxResult {
    with(request, |r| {
        r.set_priority(priority);
        Ok(())
    })
}

/// Adds a Kontext reference image (1 to 4 make the request an edit; reference i gets position
/// ids (i+1, row, col)). Host pixels are copied now. A GPU image is read on the GPU when the job
/// starts, after its semaphore reaches `wait_value` (timeline semaphores and fences; ignored
/// otherwise): keep its pixels until the job's first PROGRESS event or its end. A semaphore not
/// signalled within 10 s fails the job with a timeout.
#[no_mangle]
pub extern "C" fn flux_request_add_reference(
    request: *mut FluxRequest,
    image: *mut FluxImage,
    wait_value: u64,
) -> FluxResult {
    with(request, |r| {
        Ok(r.add_reference(images::input(image, wait_value)?)?)
    })
}

/// Whether references snap to the closest Kontext training resolution (default true) or keep
/// their size.
#[no_mangle]
pub extern "C" fn flux_request_set_reference_snap(
    request: *mut FluxRequest,
    snap: bool,
) -> FluxResult {
    with(request, |r| {
        r.set_reference_snap(snap);
        Ok(())
    })
}

/// Sets the init image of an image-to-image job (read as references are) and `strength`, in
/// (0, 1]: how much of the schedule runs (1: all of it, from the seed's noise alone).
#[no_mangle]
pub extern "C" fn flux_request_set_init_image(
    request: *mut FluxRequest,
    image: *mut FluxImage,
    wait_value: u64,
    strength: f32,
) -> FluxResult {
    with(request, |r| {
        Ok(r.set_init_image(images::input(image, wait_value)?, strength)?)
    })
}

/// Sets a FLUX.1 Fill job's image (read as references are) and its mask: a host image of the
/// same size whose first channel is the mask, 255 = repaint, 0 = keep, values between blend (a
/// grey mask has R = G = B). Outpainting is the image on a larger canvas with the new border
/// masked. The model returns the whole image: kept pixels are not pasted back. Needs a Fill
/// model (`flux1-fill-dev`); its defaults: 50 steps, guidance 30, 128 T5 tokens, and the image's
/// size rounded down to multiples of 16.
#[no_mangle]
pub extern "C" fn flux_request_set_fill(
    request: *mut FluxRequest,
    image: *mut FluxImage,
    wait_value: u64,
    mask: *mut FluxImage,
) -> FluxResult {
    with(request, |r| {
        let mask = images::mask(mask)?;
        Ok(r.set_fill(images::input(image, wait_value)?, mask)?)
    })
}

/// Sets a FLUX.1 Canny or Depth job's control image (read as references are): the host's ready
/// edge map or depth map, grey in all three channels (the engine runs no detector). Needs a
/// Canny/Depth model; its defaults: 50 steps, guidance 30 (Canny's; Depth models want 10), 512
/// T5 tokens, and the image's size rounded down to multiples of 16.
#[no_mangle]
pub extern "C" fn flux_request_set_control_image(
    request: *mut FluxRequest,
    image: *mut FluxImage,
    wait_value: u64,
) -> FluxResult {
    with(request, |r| {
        Ok(r.set_control_image(images::input(image, wait_value)?)?)
    })
}

/// Adds a FLUX.1 Redux image (up to 4; read as references are): its SigLIP tokens are appended
/// after the prompt's, so the output takes after it (BFL's Redux runs with the empty prompt).
/// Text-to-image, Fill and Canny/Depth jobs take them; the model folder needs the SigLIP folder
/// (named `siglip…`) and `flux1-redux-dev.safetensors`, or the job fails saying so.
#[no_mangle]
pub extern "C" fn flux_request_add_redux_image(
    request: *mut FluxRequest,
    image: *mut FluxImage,
    wait_value: u64,
) -> FluxResult {
    with(request, |r| {
        Ok(r.add_redux_image(images::input(image, wait_value)?)?)
    })
}

/// Sets a negative prompt (UTF-8, copied) and the true CFG scale, finite and ≥ 1. Above 1, each
/// step also runs the transformer on the negative prompt (twice the time) and takes
/// `neg + scale · (pos − neg)`; 1 turns true CFG off. Default: none.
///
/// # Safety
/// `prompt` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn flux_request_set_negative_prompt(
    request: *mut FluxRequest,
    prompt: *const c_char,
    scale: f32,
) -> FluxResult {
    with(request, |r| {
        // SAFETY: NULL or NUL-terminated (the contract above).
        let prompt = unsafe { string(prompt, "prompt") }?;
        Ok(r.set_negative_prompt(prompt, scale)?)
    })
}

/// Removes the references, the init image, the Fill or control input and the Redux images: the
/// request is text-to-image again.
#[no_mangle]
pub extern "C" fn flux_request_clear_images(request: *mut FluxRequest) -> FluxResult {
    with(request, |r| {
        r.clear_images();
        Ok(())
    })
}

/// Adds a LoRA (a kohya, diffusers/PEFT, XLabs or BFL `.safetensors` file; UTF-8 path) at
/// `strength`, any finite number (1: the file's own scale). Up to 16 per request, applied
/// together. The file must exist; the engine reads it when a job first uses it (keeping it for
/// later jobs) and checks it against the model then: a file that does not fit fails the job,
/// naming the key. Switching LoRAs between jobs does not reload the model.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn flux_request_add_lora(
    request: *mut FluxRequest,
    path: *const c_char,
    strength: f32,
) -> FluxResult {
    with(request, |r| {
        // SAFETY: NULL or NUL-terminated (the contract above).
        let path = unsafe { string(path, "path") }?;
        Ok(r.add_lora(path, strength)?)
    })
}

/// Removes the request's LoRAs: its jobs run the model as loaded.
#[no_mangle]
pub extern "C" fn flux_request_clear_loras(request: *mut FluxRequest) -> FluxResult {
    with(request, |r| {
        r.clear_loras();
        Ok(())
    })
}

/// Queues the job `request` describes; the request is unchanged and may be changed and submitted
/// again.
///
/// # Safety
/// `out_job` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_submit(
    engine: *mut FluxEngine,
    request: *const FluxRequest,
    out_job: *mut FluxJob,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_job, "out_job")?;
        let r = REQUESTS.get(request, "request")?;
        let (job, priority) = {
            let r = r.lock();
            (r.job(h.engine.device())?, r.priority())
        };
        submit(&h, job, priority, out_job)
    })
}
