//! Transformer blocks streamed from host memory in their stored form, or read from the files for
//! every pass, give the same outputs as resident blocks, bit for bit on the CPU (both run the same kernels on the same expanded
//! weights): the small GGUF models' forward at every window, the tiny model's whole generation
//! from f32 and Q8_0 files, an engine whose budget (or forced plan) keeps one block at a time, and
//! a budget lowered in the middle of a job.

mod common;

use std::sync::Arc;
use std::time::Duration;

use candle_core::quantized::GgmlDType;
use common::*;
use flux_core::model::{self, BlockResidency, FluxModel, LoadOptions, ModelFiles, Variant};
use flux_core::pipeline::{self, TextToImage};
use flux_core::runtime::job::PRIORITY_NORMAL;
use flux_core::runtime::{
    Engine, EngineOptions, Event, JobOutput, JobRequest, JobState, Plan, TextPlacement,
};
use flux_core::tiny::Layout;

const WAIT: Duration = Duration::from_secs(120);

fn residencies() -> [BlockResidency; 7] {
    [
        BlockResidency::Resident,
        BlockResidency::streamed(1),
        BlockResidency::streamed(2),
        BlockResidency::streamed(3),
        BlockResidency::Streamed {
            window: 2,
            resident: 1,
        },
        BlockResidency::from_files(1),
        BlockResidency::FromFiles {
            window: 2,
            resident: 2,
        },
    ]
}

fn options(blocks: BlockResidency) -> LoadOptions {
    LoadOptions {
        blocks,
        ..LoadOptions::default()
    }
}

#[test]
fn small_models_streamed_at_every_window_give_the_resident_forward_bit_for_bit() {
    let fx = load(
        &fixtures()
            .join("flux-gguf")
            .join("small_dev.expected.safetensors"),
    );
    for ty in ["BF16", "Q8_0", "Q4_K"] {
        let path = fixtures()
            .join("flux-gguf")
            .join(format!("small_dev-{ty}.gguf"));
        let files = ModelFiles::transformer_only(path);
        let mut outputs = vec![];
        for blocks in residencies() {
            let m = model::load_transformer(&files, &options(blocks)).unwrap();
            assert_eq!(m.residency(), blocks);
            outputs.push(values(&forward_fixture(&m, &fx, "img", "img_ids")));
        }
        for (blocks, out) in residencies().iter().zip(&outputs) {
            assert_eq!(out, &outputs[0], "{ty} {blocks:?}");
        }
    }
}

fn generate(files: &ModelFiles, blocks: BlockResidency) -> (Vec<u8>, Vec<f32>) {
    let mut m = FluxModel::load(files, &options(blocks)).unwrap();
    let r = TextToImage {
        width: 32,
        height: 48,
        steps: Some(2),
        t5_len: Some(16),
        ..TextToImage::new("a lighthouse at dusk", 5)
    };
    let g = pipeline::generate(&mut m, &r, &mut pipeline::no_hook()).unwrap();
    (g.image.data, values(&g.latent))
}

/// The tiny model with its transformer written again as Q8_0.
fn tiny_q8(name: &str) -> (Scratch, ModelFiles) {
    let (s, mut files) = tiny_model(name, Variant::Dev, Layout::SingleFiles);
    let q8 = s.0.join("tiny-Q8_0.gguf");
    model::quantize_transformer(&files.transformer, &q8, GgmlDType::Q8_0).unwrap();
    files.transformer = q8;
    (s, files)
}

#[test]
fn tiny_generation_streamed_equals_resident_from_f32_and_q8_0_files() {
    let (_s, f32_files) = tiny_model("stream-tiny", Variant::Dev, Layout::SingleFiles);
    let (_q, q8_files) = tiny_q8("stream-tiny-q8");
    for (what, files) in [("f32", &f32_files), ("Q8_0", &q8_files)] {
        let want = generate(files, BlockResidency::Resident);
        for blocks in &residencies()[1..] {
            assert!(generate(files, *blocks) == want, "{what} {blocks:?}");
        }
    }
}

/// Loads `files` into `engine` and generates one image.
fn engine_image(engine: &Engine, files: &ModelFiles, seed: u64) -> Vec<u8> {
    let load = JobRequest::LoadModel {
        files: files.clone(),
        dtype: None,
        kontext: None,
    };
    let id = engine.submit(load, PRIORITY_NORMAL).unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Succeeded);
    image(engine, seed)
}

fn fox(seed: u64) -> TextToImage {
    TextToImage {
        width: 32,
        height: 32,
        steps: Some(3),
        t5_len: Some(16),
        ..TextToImage::new("a red fox", seed)
    }
}

fn image(engine: &Engine, seed: u64) -> Vec<u8> {
    let r = fox(seed);
    let id = engine
        .submit(JobRequest::TextToImage(r), PRIORITY_NORMAL)
        .unwrap();
    let state = engine.wait(id, WAIT).unwrap();
    assert_eq!(state, JobState::Succeeded, "{:?}", engine.status(id));
    match engine.take_result(id).unwrap() {
        JobOutput::Image(g) => g.image.data.clone(),
        other => panic!("not an image: {other:?}"),
    }
}

fn residency_reasons(engine: &Engine) -> Vec<String> {
    std::iter::from_fn(|| engine.poll_event())
        .filter_map(|e| match e {
            Event::Residency { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_budget_that_fits_one_block_streams_and_gives_the_same_image() {
    let (_s, files) = tiny_q8("stream-engine");
    let bytes = model::component_bytes(&files, &LoadOptions::default()).unwrap();
    let resident = Engine::new(EngineOptions::default()).unwrap();
    let want = engine_image(&resident, &files, 4);
    assert_eq!(resident.residency().plan, Plan::RESIDENT);

    // Room for one block at a time (and the job's activations), not two.
    let one_block = Plan {
        text: TextPlacement::Released,
        blocks: BlockResidency::streamed(1),
        tiled_vae: false,
    };
    let work = work_of(&files, &fox(4));
    let budget = one_block.need(&bytes, &work, true).device + bytes.largest_block() / 2;
    let engine = Engine::new(EngineOptions {
        memory_budget: budget,
        ..EngineOptions::default()
    })
    .unwrap();
    assert!(engine_image(&engine, &files, 4) == want);
    let r = engine.residency();
    assert_eq!(r.plan, one_block, "{r:?}");
    assert!(r.total() <= budget, "{r:?}");
    let reasons = residency_reasons(&engine);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("streamed from host memory (1 at a time")),
        "{reasons:?}"
    );

    // The same plan forced by the host on an unlimited budget.
    let forced = Engine::new(EngineOptions {
        plan: Some(one_block),
        ..EngineOptions::default()
    })
    .unwrap();
    assert!(engine_image(&forced, &files, 4) == want);
    assert_eq!(forced.residency().plan, one_block);
    // Released again: chosen for the budget, everything resident.
    forced.set_plan(None);
    assert!(image(&forced, 4) == want);
    assert_eq!(forced.residency().plan, Plan::RESIDENT);
}

#[test]
fn a_budget_lowered_during_a_job_takes_effect_before_the_next_step() {
    let (_s, files) = tiny_q8("stream-midjob");
    let bytes = model::component_bytes(&files, &LoadOptions::default()).unwrap();
    let want = engine_image(&Engine::new(EngineOptions::default()).unwrap(), &files, 6);

    // After the first step the callback lowers the budget to streaming, one block at a time.
    let streamed = Plan {
        text: TextPlacement::Released,
        blocks: BlockResidency::streamed(1),
        tiled_vae: false,
    };
    let work = work_of(&files, &fox(6));
    let budget = streamed.need(&bytes, &work, true).device + bytes.largest_block() / 2;
    let slot: Arc<parking_lot::Mutex<Option<Arc<Engine>>>> = Default::default();
    let hook = slot.clone();
    let lowered = Arc::new(std::sync::atomic::AtomicU64::new(budget));
    let to = lowered.clone();
    let reasons: Arc<parking_lot::Mutex<Vec<String>>> = Default::default();
    let seen = reasons.clone();
    let callback = Box::new(move |e: &Event| match e {
        Event::Progress { step: 1, .. } => {
            if let Some(engine) = hook.lock().as_ref() {
                engine.set_memory_budget(to.load(std::sync::atomic::Ordering::SeqCst));
            }
        }
        Event::Residency { reason, .. } => seen.lock().push(reason.clone()),
        _ => {}
    });
    let engine = Arc::new(
        Engine::new(EngineOptions {
            callback: Some(callback),
            ..EngineOptions::default()
        })
        .unwrap(),
    );
    *slot.lock() = Some(engine.clone());
    assert!(engine_image(&engine, &files, 6) == want);
    assert_eq!(engine.residency().plan, streamed);
    let during: Vec<String> = reasons.lock().clone();
    assert!(
        during
            .iter()
            .any(|r| r.contains("during the job") && r.contains("1 at a time")),
        "{during:?}"
    );

    // Lowered below every plan during a job: the job fails saying so, the engine stays usable.
    engine.set_memory_budget(u64::MAX);
    lowered.store(1, std::sync::atomic::Ordering::SeqCst);
    let id = engine
        .submit(JobRequest::TextToImage(fox(6)), PRIORITY_NORMAL)
        .unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Failed);
    let error = engine.status(id).unwrap().error.unwrap();
    assert!(error.contains("during the job"), "{error}");
    engine.set_memory_budget(u64::MAX);
    *slot.lock() = None;
    assert!(engine_image(&engine, &files, 6) == want);
}
