//! Out of memory is an error, not an abort: in a child process whose memory is limited
//! (`setrlimit(RLIMIT_DATA)`, the in-process allocation limit: heap and anonymous maps count, a
//! mapped weight file does not), a model larger than the limit, a 2048² request (4096² is past
//! the largest image) and a Kontext edit with four 4096² references each fail their job with a
//! message, and the same engine then makes an image. Linux only (it reads `/proc`).
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use flux_core::image::RgbImage;
use flux_core::model::{ModelFiles, Variant};
use flux_core::pipeline::edit::KontextEdit;
use flux_core::pipeline::TextToImage;
use flux_core::runtime::job::PRIORITY_NORMAL;
use flux_core::runtime::{Engine, EngineOptions, JobRequest, JobState};
use flux_core::tiny::Layout;

const WAIT: Duration = Duration::from_secs(120);
/// Set in the child, which runs the scenarios under the limit.
const CHILD: &str = "FLUX_TEST_OUT_OF_MEMORY_CHILD";
/// What the child may allocate beyond what it has when the limit is set.
const HEADROOM: u64 = 1536 << 20;
/// An explicit budget no plan exceeds: the engine plans as if memory were endless, so only the
/// allocation limit stops it.
const UNLIMITED: u64 = u64::MAX - 1;

#[test]
fn jobs_too_large_for_the_memory_fail_and_the_engine_goes_on() {
    if std::env::var_os(CHILD).is_none() {
        let name = "jobs_too_large_for_the_memory_fail_and_the_engine_goes_on";
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the limited child failed:\n{text}");
        assert!(text.contains("every scenario ended as an error"), "{text}");
        return;
    }
    let (s, tiny) = tiny_model("oom", Variant::Dev, Layout::SingleFiles);
    let mut full = tiny.clone();
    full.transformer = s.0.join("flux1-dev.safetensors");
    flux_core::sparse::write_flux1_dev(&full.transformer, flux_core::sparse::Storage::Bf16)
        .unwrap();
    limit_data(HEADROOM);
    let available = flux_core::memory::available();
    assert!(available <= HEADROOM, "{available}");

    // A host buffer past the limit is an error naming what it was for.
    let e = flux_core::memory::read_exact_at(&full.transformer, 0, 3 << 30, || {
        "the test's buffer".into()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("out of memory") && e.contains("the test's buffer"),
        "{e}"
    );

    let engine = engine_with(UNLIMITED);
    // A model larger than the limit (11.9 G parameters, 47.6 GB in f32).
    let e = failure(&engine, load(&full, false));
    assert!(e.contains("out of memory") && e.contains("model"), "{e}");
    make_an_image(&engine, &tiny);
    // 4096² is past the largest image (4 MP); 2048², the largest, needs more than the limit.
    let e = failure(&engine, text_to_image(4096));
    assert!(e.contains("too large") && e.contains("4194304 px"), "{e}");
    let e = failure(&engine, text_to_image(2048));
    assert!(
        e.contains("out of memory") && e.contains("activations"),
        "{e}"
    );
    make_an_image(&engine, &tiny);
    // A Kontext edit with four 4096² references (not snapped: 327,000 image tokens).
    assert_eq!(run(&engine, load(&tiny, true)), JobState::Succeeded);
    let e = failure(&engine, four_reference_edit());
    assert!(
        e.contains("out of memory") && e.contains("activations"),
        "{e}"
    );
    make_an_image(&engine, &tiny);

    // The automatic budget follows the limit: the full-size model is refused by the planner,
    // before anything is allocated.
    let engine = engine_with(flux_core::runtime::MEMORY_BUDGET_AUTO);
    let e = failure(&engine, load(&full, false));
    assert!(
        e.contains("cannot load the model") && e.contains("less the reserve"),
        "{e}"
    );
    make_an_image(&engine, &tiny);
    println!("every scenario ended as an error");
}

/// Limits this process's data (heap and anonymous maps) to what it has now plus `headroom`.
fn limit_data(headroom: u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmData:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let limit = kib * 1024 + headroom;
    let rlim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `rlim` is a valid, initialised rlimit that setrlimit only reads.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_DATA, &rlim) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

fn engine_with(memory_budget: u64) -> Engine {
    Engine::new(EngineOptions {
        memory_budget,
        available_memory: None,
        ..EngineOptions::default()
    })
    .unwrap()
}

fn load(files: &ModelFiles, kontext: bool) -> JobRequest {
    JobRequest::LoadModel {
        files: files.clone(),
        dtype: None,
        kontext: Some(kontext),
    }
}

fn text_to_image(size: usize) -> JobRequest {
    JobRequest::TextToImage(TextToImage {
        width: size,
        height: size,
        steps: Some(1),
        t5_len: Some(16),
        ..TextToImage::new("a harbour at night", 7)
    })
}

fn four_reference_edit() -> JobRequest {
    let side = 4096;
    let image = RgbImage {
        width: side,
        height: side,
        data: vec![128; side * side * 3],
    };
    let mut edit = KontextEdit::new("make it winter", image.clone(), 3);
    edit.references = vec![image.into(); 4];
    edit.resolutions = vec![];
    edit.steps = Some(1);
    edit.t5_len = Some(16);
    JobRequest::Edit(edit)
}

fn run(engine: &Engine, request: JobRequest) -> JobState {
    let id = engine.submit(request, PRIORITY_NORMAL).unwrap();
    engine.wait(id, WAIT).unwrap()
}

/// The error of `request`, which must fail.
fn failure(engine: &Engine, request: JobRequest) -> String {
    let id = engine.submit(request, PRIORITY_NORMAL).unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Failed);
    engine.status(id).unwrap().error.unwrap()
}

/// Loads the tiny model (unless it is loaded) and makes a 64² image on `engine`.
fn make_an_image(engine: &Engine, tiny: &ModelFiles) {
    if engine.residency().total() == 0 {
        assert_eq!(run(engine, load(tiny, false)), JobState::Succeeded);
    }
    assert_eq!(run(engine, text_to_image(64)), JobState::Succeeded);
}
