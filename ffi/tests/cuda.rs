//! The CUDA device through the C ABI. Without a usable GPU (a library built without the `cuda`
//! feature, no driver, or the stub driver of `.ci/build-cuda`) asking for CUDA fails cleanly
//! with a message, and the CPU device of the same library keeps working. With a GPU, the tiny
//! pipeline runs on CUDA in f32 and matches the CPU's pixels.

use std::ffi::{CStr, CString};
use std::mem::size_of;
use std::ptr;

use flux_engine::types::*;
use flux_engine::*;

#[path = "../../tests/support/mod.rs"]
mod support;
use support::{reference_rgb, tiny_dev_model, Scratch};

fn last_error() -> String {
    unsafe { CStr::from_ptr(flux_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn engine(device: FluxDevice) -> Result<*mut FluxEngine, (FluxResult, String)> {
    let mut desc = std::mem::MaybeUninit::<FluxEngineDesc>::uninit();
    let mut out = ptr::null_mut();
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

/// Loads the tiny model (f32) and renders the reference request; returns its RGB8 pixels.
fn render(e: *mut FluxEngine, model: &CString) -> Vec<u8> {
    let req = support::reference_request();
    let prompt = CString::new(req.prompt.clone()).unwrap();
    let mut state = -1;
    unsafe {
        let mut md = std::mem::MaybeUninit::<FluxModelDesc>::uninit();
        flux_model_desc_defaults(md.as_mut_ptr(), size_of::<FluxModelDesc>() as u32);
        let mut md = md.assume_init();
        md.folder = model.as_ptr();
        md.dtype = FluxDType::F32 as i32;
        let mut job = 0;
        assert_eq!(flux_engine_load_model(e, &md, &mut job), FluxResult::Ok);
        assert_eq!(flux_job_wait(e, job, 600_000, &mut state), FluxResult::Ok);
        assert_eq!(state, FluxJobState::Succeeded as i32, "{}", last_error());
        let mut td = std::mem::MaybeUninit::<FluxTextToImageDesc>::uninit();
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
        assert_eq!(state, FluxJobState::Succeeded as i32);
        let mut rgb = vec![0u8; req.width * req.height * 3];
        let r = flux_job_copy_image(
            e,
            job,
            FluxPixelFormat::Rgb8 as i32,
            rgb.as_mut_ptr(),
            req.width * 3,
            rgb.len(),
        );
        assert_eq!(r, FluxResult::Ok);
        rgb
    }
}

#[test]
fn cuda_runs_the_pipeline_or_fails_cleanly_while_the_cpu_works() {
    let s = Scratch::new("cuda");
    let files = tiny_dev_model(&s.0.join("model"));
    let want = reference_rgb(&files);
    let model = CString::new(s.0.join("model").to_str().unwrap()).unwrap();
    match engine(FluxDevice::Cuda) {
        Err((code, message)) => {
            eprintln!("SKIPPED (GPU part): no usable CUDA device: {message}");
            assert_eq!(code, FluxResult::Compute);
            assert!(
                message.contains("CUDA device 0 is unavailable"),
                "{message}"
            );
        }
        Ok(gpu) => {
            let got = render(gpu, &model);
            assert_eq!(unsafe { flux_engine_destroy(gpu) }, FluxResult::Ok);
            // f32 on both devices; kernels differ in summation order, so a few RGB8 levels
            // may flip at rounding boundaries.
            let diffs: Vec<i32> = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .collect();
            let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
            assert!(mean < 0.5 && diffs.iter().all(|d| *d <= 8), "mean {mean}");
        }
    }
    let cpu = engine(FluxDevice::Cpu).expect("the CPU device always works");
    assert_eq!(render(cpu, &model), want);
    assert_eq!(unsafe { flux_engine_destroy(cpu) }, FluxResult::Ok);
}
