//! The CUDA device through the C ABI. Without a usable GPU (a library built without the `cuda`
//! feature, no driver, or the stub driver of `.ci/build-cuda`) asking for CUDA fails cleanly
//! with a message, and the CPU device of the same library keeps working. With a GPU, the tiny
//! pipeline runs on CUDA in f32 and matches the CPU's pixels, and streamed blocks (uploaded on
//! another thread's stream) give the resident blocks' image.

use std::ffi::CString;

use flux_engine::types::*;
use flux_engine::*;

#[path = "../../tests/support/mod.rs"]
mod support;
use support::{reference_rgb, skip_without_gpu, tiny_dev_model, Scratch};
mod c_abi;
use c_abi::{copy_pixels, defaults, engine, render_reference};

/// The reference request's RGB8 pixels rendered on `e`.
fn render(e: *mut FluxEngine, model: &CString) -> Vec<u8> {
    let job = render_reference(e, model);
    copy_pixels(e, job, FluxPixelFormat::Rgb8, 3)
}

#[test]
fn cuda_runs_the_pipeline_or_fails_cleanly_while_the_cpu_works() {
    let s = Scratch::new("cuda");
    let files = tiny_dev_model(&s.0.join("model"));
    let want = reference_rgb(&files);
    let model = CString::new(s.0.join("model").to_str().unwrap()).unwrap();
    match engine(FluxDevice::Cuda) {
        Err((code, message)) => {
            skip_without_gpu(&format!("(GPU part) no usable CUDA device: {message}"));
            assert_eq!(code, FluxResult::Compute);
            assert!(
                message.contains("CUDA device 0 is unavailable"),
                "{message}"
            );
        }
        Ok(gpu) => {
            let got = render(gpu, &model);
            // SAFETY: the C ABI as documented: live handles, pointers to live locals.
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
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    assert_eq!(unsafe { flux_engine_destroy(cpu) }, FluxResult::Ok);
}

#[test]
fn cuda_streamed_blocks_give_the_resident_image() {
    let s = Scratch::new("cuda-streamed");
    tiny_dev_model(&s.0.join("model"));
    let model = CString::new(s.0.join("model").to_str().unwrap()).unwrap();
    let gpu = match engine(FluxDevice::Cuda) {
        Ok(e) => e,
        Err((_, message)) => return skip_without_gpu(&format!("no usable CUDA device: {message}")),
    };
    let resident = render(gpu, &model);
    // Two blocks on the device at a time: the next one is uploaded by the prefetch thread, on
    // its own stream, while the current one computes.
    let mut plan = defaults(flux_residency_plan_defaults);
    plan.stream_window = 2;
    // SAFETY: a live handle and a live local plan.
    let set = unsafe { flux_engine_set_residency_plan(gpu, &plan) };
    assert_eq!(set, FluxResult::Ok);
    let streamed = render(gpu, &model);
    // SAFETY: a live handle, destroyed once.
    assert_eq!(unsafe { flux_engine_destroy(gpu) }, FluxResult::Ok);
    // The same kernels on the same weights: only a block read before its upload landed differs.
    assert_eq!(streamed, resident);
}
