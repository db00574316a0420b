//! Helpers for tests that drive the library through its C ABI from Rust: engines, the last
//! error, and the reference render of the tiny model.

use std::ffi::{CStr, CString};
use std::mem::{size_of, MaybeUninit};
use std::ptr;

use flux_engine::types::*;
use flux_engine::*;

use crate::support;

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
    let prompt = CString::new(req.prompt.clone()).unwrap();
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
        let mut td = MaybeUninit::<FluxTextToImageDesc>::uninit();
        flux_text_to_image_desc_defaults(td.as_mut_ptr(), size_of::<FluxTextToImageDesc>() as u32);
        let mut td = td.assume_init();
        td.prompt = prompt.as_ptr();
        (td.width, td.height, td.seed) = (req.width as u32, req.height as u32, req.seed);
        (td.steps, td.t5_len) = (req.steps.unwrap() as u32, req.t5_len.unwrap() as u32);
        assert_eq!(
            flux_engine_submit_text_to_image(e, &td, &mut job),
            FluxResult::Ok
        );
        assert_eq!(flux_job_wait(e, job, 600_000, &mut state), FluxResult::Ok);
        assert_eq!(state, FluxJobState::Succeeded as i32, "{}", last_error());
    }
    job
}

/// A finished job's pixels in `format` (`bpp` bytes per pixel), rows tightly packed.
pub fn copy_pixels(
    e: *mut FluxEngine,
    job: FluxJob,
    format: FluxPixelFormat,
    bpp: usize,
) -> Vec<u8> {
    let req = support::reference_request();
    let mut out = vec![0u8; req.width * req.height * bpp];
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    let r = unsafe {
        flux_job_copy_image(
            e,
            job,
            format as i32,
            out.as_mut_ptr(),
            req.width * bpp,
            out.len(),
        )
    };
    assert_eq!(r, FluxResult::Ok, "{}", last_error());
    out
}
