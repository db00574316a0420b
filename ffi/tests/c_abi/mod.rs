//! Helpers for tests that drive the library through its C ABI from Rust: engines, the last
//! error, and the reference render of the tiny model.
//! Included by several test crates, each using only some of them.
#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::mem::{size_of, MaybeUninit};
use std::ptr;

use flux_engine::types::*;
use flux_engine::*;

use crate::support;

/// A struct of the ABI filled by its `_defaults` function, as the header's `_init` does.
pub fn defaults<T>(fill: unsafe extern "C" fn(*mut T, u32)) -> T {
    let mut d = MaybeUninit::<T>::zeroed();
    // SAFETY: the ABI's structs are integers, floats, pointers and byte arrays, valid when
    // zeroed, and `fill` writes at most the size given, which is the struct's.
    unsafe {
        fill(d.as_mut_ptr(), size_of::<T>() as u32);
        d.assume_init()
    }
}

/// The calling thread's last error message.
pub fn last_error() -> String {
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe { CStr::from_ptr(flux_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// A default engine on `device`, or the code and message of why not.
pub fn engine(device: FluxDevice) -> Result<*mut FluxEngine, (FluxResult, String)> {
    let mut desc = MaybeUninit::<FluxEngineDesc>::uninit();
    let mut out = ptr::null_mut();
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        flux_engine_desc_defaults(desc.as_mut_ptr(), size_of::<FluxEngineDesc>() as u32);
        let mut desc = desc.assume_init();
        desc.device = device as i32;
        match flux_engine_create(&desc, &mut out) {
            FluxResult::Ok => Ok(out),
            r => Err((r, last_error())),
        }
    }
}

/// Loads the model folder `model` (f32) on `e` and renders the reference request; returns the
/// finished job.
pub fn render_reference(e: *mut FluxEngine, model: &CString) -> FluxJob {
    let req = support::reference_request();
    let (mut job, mut state) = (0, -1);
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        let mut md = MaybeUninit::<FluxModelDesc>::uninit();
        flux_model_desc_defaults(md.as_mut_ptr(), size_of::<FluxModelDesc>() as u32);
        let mut md = md.assume_init();
        md.folder = model.as_ptr();
        md.dtype = FluxDtype::F32 as i32;
        assert_eq!(flux_engine_load_model(e, &md, &mut job), FluxResult::Ok);
        assert_eq!(flux_job_wait(e, job, 600_000, &mut state), FluxResult::Ok);
        assert_eq!(state, FluxJobState::Succeeded as i32, "{}", last_error());
        let r = request(&req.prompt);
        assert_eq!(
            flux_request_set_size(r, req.width as u32, req.height as u32),
            FluxResult::Ok
        );
        assert_eq!(flux_request_set_seed(r, req.seed), FluxResult::Ok);
        assert_eq!(
            flux_request_set_steps(r, req.steps.unwrap() as u32),
            FluxResult::Ok
        );
        assert_eq!(
            flux_request_set_t5_length(r, req.t5_len.unwrap() as u32),
            FluxResult::Ok
        );
        assert_eq!(flux_engine_submit(e, r, &mut job), FluxResult::Ok);
        assert_eq!(flux_request_destroy(r), FluxResult::Ok);
        assert_eq!(flux_job_wait(e, job, 600_000, &mut state), FluxResult::Ok);
        assert_eq!(state, FluxJobState::Succeeded as i32, "{}", last_error());
    }
    job
}

/// A request for `prompt` with every other setting at its default.
pub fn request(prompt: &str) -> *mut FluxRequest {
    let prompt = CString::new(prompt).unwrap();
    let mut r = ptr::null_mut();
    // SAFETY: the C ABI as documented: pointers to live locals.
    unsafe {
        assert_eq!(flux_request_create(&mut r), FluxResult::Ok);
        assert_eq!(flux_request_set_prompt(r, prompt.as_ptr()), FluxResult::Ok);
    }
    r
}

/// An image desc of `width` × `height` pixels of `format`, rows `row_pitch` bytes apart.
pub fn image_desc(
    width: u32,
    height: u32,
    format: FluxPixelFormat,
    row_pitch: u64,
) -> FluxImageDesc {
    let mut d = MaybeUninit::<FluxImageDesc>::uninit();
    // SAFETY: the C ABI as documented: a pointer to a live local of the size given.
    unsafe {
        flux_image_desc_defaults(d.as_mut_ptr(), size_of::<FluxImageDesc>() as u32);
        let mut d = d.assume_init();
        (d.width, d.height, d.format, d.row_pitch) = (width, height, format as i32, row_pitch);
        d
    }
}

/// A host image over `data`, laid out as `desc` says, or the code and message of why not.
pub fn host_image(
    desc: &FluxImageDesc,
    data: &mut [u8],
) -> Result<*mut FluxImage, (FluxResult, String)> {
    let mut image = ptr::null_mut();
    // SAFETY: the C ABI as documented: `data` outlives the image (the callers destroy it first).
    let r =
        unsafe { flux_image_create_host(desc, data.as_mut_ptr().cast(), data.len(), &mut image) };
    match r {
        FluxResult::Ok => Ok(image),
        r => Err((r, last_error())),
    }
}

/// A finished job's pixels in `format` (`bpp` bytes per pixel), rows tightly packed, written
/// through a host image.
pub fn copy_pixels(
    e: *mut FluxEngine,
    job: FluxJob,
    format: FluxPixelFormat,
    bpp: usize,
) -> Vec<u8> {
    let req = support::reference_request();
    let mut out = vec![0u8; req.width * req.height * bpp];
    let desc = image_desc(
        req.width as u32,
        req.height as u32,
        format,
        (req.width * bpp) as u64,
    );
    let image = host_image(&desc, &mut out).unwrap();
    // SAFETY: the C ABI as documented: live handles.
    unsafe {
        assert_eq!(
            flux_job_write_image(e, job, image, 0),
            FluxResult::Ok,
            "{}",
            last_error()
        );
        assert_eq!(flux_image_destroy(image), FluxResult::Ok);
    }
    out
}
