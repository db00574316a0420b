//! The FLUX.1 tools through the engine: a Fill model loaded from a folder takes its image and
//! mask from a `Request` and gives what the pipeline gives; a job that does not match the model
//! fails with a sentence and the engine goes on; true CFG from a negative prompt, its scale
//! checked, written into the PNG metadata, and off at scale 1; BFL's control LoRA on dev.

mod common;

use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use common::*;
use flux_core::image::export::{encode_png, read_png_text};
use flux_core::image::RgbImage;
use flux_core::model::{FluxModel, LoadOptions, ModelFiles, Variant};
use flux_core::pipeline::tools::{Mask, ToolInput};
use flux_core::pipeline::{self, Generated, TextToImage};
use flux_core::request::Request;
use flux_core::runtime::job::PRIORITY_NORMAL;
use flux_core::runtime::{Engine, EngineOptions, JobOutput, JobRequest, JobState};
use flux_core::tiny::Layout;

const WAIT: Duration = Duration::from_secs(120);

/// The tiny model folder with its transformer replaced by the tiny Fill one.
fn fill_model(name: &str) -> (Scratch, ModelFiles) {
    let (s, files) = tiny_model(name, Variant::Dev, Layout::SingleFiles);
    let fill = fixtures().join("flux-tools/flux_tiny_fill.weights.safetensors");
    std::fs::copy(fill, &files.transformer).unwrap();
    (s, files)
}

fn engine_with(files: &ModelFiles) -> Engine {
    let engine = Engine::new(EngineOptions::default()).unwrap();
    let load = JobRequest::LoadModel {
        files: files.clone(),
        dtype: None,
        kontext: None,
    };
    let id = engine.submit(load, PRIORITY_NORMAL).unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Succeeded);
    engine
}

/// Runs `request`; its image, or its error.
fn run(engine: &Engine, request: &Request) -> Result<Arc<Generated>, String> {
    let job = request.job(&Device::Cpu).map_err(|e| e.to_string())?;
    let id = engine.submit(job, PRIORITY_NORMAL).unwrap();
    match engine.wait(id, WAIT).unwrap() {
        JobState::Succeeded => match engine.take_result(id).unwrap() {
            JobOutput::Image(g) => Ok(g),
            other => panic!("not an image: {other:?}"),
        },
        _ => Err(engine.status(id).unwrap().error.unwrap_or_default()),
    }
}

fn request(prompt: &str) -> Request {
    let mut r = Request::new(prompt);
    r.set_steps(2).unwrap();
    r.set_t5_length(16).unwrap();
    r.set_seed(3);
    r
}

fn picture(width: usize, height: usize) -> RgbImage {
    let data = (0..width * height * 3)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    RgbImage {
        width,
        height,
        data,
    }
}

/// A 48×64 mask repainting a rectangle whose edges do not fall on 8-pixel cells.
fn mask() -> Mask {
    let (w, h) = (48, 64);
    let data = (0..w * h)
        .map(|i| match (i / w, i % w) {
            (13..=41, 6..=33) => 255,
            _ => 0,
        })
        .collect();
    Mask::new(w, h, data).unwrap()
}

fn png_text(g: &Generated) -> Vec<(String, String)> {
    read_png_text(&encode_png(&g.image, Some(&g.meta)).unwrap()).unwrap()
}

#[test]
fn fill_jobs_match_the_pipeline_and_a_mismatched_job_fails_alone() {
    let (_s, files) = fill_model("fill-jobs");
    let engine = engine_with(&files);
    let mut fill = request("a paper cup on a table");
    fill.set_fill(picture(48, 64).into(), mask()).unwrap();
    let got = run(&engine, &fill).unwrap();
    assert_eq!(
        (got.image.width, got.image.height),
        (48, 64),
        "the image's size"
    );
    assert!(png_text(&got).contains(&("variant".into(), "dev-fill".into())));

    let mut model = FluxModel::load(&files, &LoadOptions::default()).unwrap();
    let want = TextToImage {
        width: 48,
        height: 64,
        seed: 3,
        steps: Some(2),
        t5_len: Some(16),
        tool: Some(ToolInput::Fill {
            image: picture(48, 64).into(),
            mask: mask(),
        }),
        ..TextToImage::new("a paper cup on a table", 3)
    };
    let r = want.resolve(Variant::Dev).unwrap();
    assert_eq!((r.guidance, r.shift), (30.0, true), "Fill's defaults");
    let want = pipeline::generate(&mut model, &want, &mut pipeline::no_hook()).unwrap();
    assert_eq!(
        got.image, want.image,
        "the engine runs what the pipeline runs"
    );

    let mut other_mask = mask();
    other_mask.data.iter_mut().for_each(|m| *m = 255 - *m);
    fill.set_fill(picture(48, 64).into(), other_mask).unwrap();
    assert_ne!(
        run(&engine, &fill).unwrap().image,
        got.image,
        "the mask matters"
    );

    let e = run(&engine, &request("no mask")).unwrap_err();
    assert!(e.contains("fill") && e.contains("a mask"), "{e}");
    let mut control = request("edges");
    control.set_control_image(picture(48, 64).into()).unwrap();
    let e = run(&engine, &control).unwrap_err();
    assert!(e.contains("fill"), "{e}");
    fill.set_fill(picture(48, 64).into(), mask()).unwrap();
    assert_eq!(
        run(&engine, &fill).unwrap().image,
        got.image,
        "the engine goes on"
    );
}

#[test]
fn a_control_lora_makes_dev_take_a_control_image_for_its_jobs_only() {
    let (s, files) = tiny_model("control-lora-jobs", Variant::Dev, Layout::SingleFiles);
    let control = fixtures().join("flux-tools/flux_tiny_control.weights.safetensors");
    let lora = s.0.join("flux1-canny-dev-lora.safetensors");
    write_control_lora(&files.transformer, &control, &lora);
    let engine = engine_with(&files);
    let mut edges = request("a house");
    edges.set_control_image(picture(48, 64).into()).unwrap();
    let e = run(&engine, &edges).unwrap_err();
    assert!(e.contains("control"), "{e}");

    edges.add_lora(lora.clone(), 1.0).unwrap();
    let got = run(&engine, &edges).unwrap();
    let text = png_text(&got);
    assert!(
        text.contains(&("variant".into(), "dev-control".into())),
        "{text:?}"
    );
    // The same job on the Control model itself: the LoRA's weights equal its own to float
    // rounding, which may move a pixel by one level.
    let (_c, control_files) = tiny_model("control-model-jobs", Variant::Dev, Layout::SingleFiles);
    std::fs::copy(&control, &control_files.transformer).unwrap();
    let mut direct = request("a house");
    direct.set_control_image(picture(48, 64).into()).unwrap();
    let want = run(&engine_with(&control_files), &direct).unwrap();
    let off = got.image.data.iter().zip(&want.image.data);
    let worst = off.map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "pixels differ by up to {worst}");

    let mut plain = request("a house");
    plain.set_size(32, 32).unwrap();
    let after = run(&engine, &plain).unwrap();
    let fresh = run(&engine_with(&files), &plain).unwrap();
    assert_eq!(after.image, fresh.image, "the LoRA goes with its job");
}

#[test]
fn a_plain_model_refuses_tool_inputs_and_runs_true_cfg() {
    let (_s, files) = tiny_model("true-cfg-jobs", Variant::Dev, Layout::SingleFiles);
    let engine = engine_with(&files);
    let mut r = request("a lighthouse");
    r.set_size(32, 32).unwrap();
    let plain = run(&engine, &r).unwrap();
    assert!(png_text(&plain).iter().all(|(k, _)| k != "negative_prompt"));

    r.set_negative_prompt("fog", 1.0).unwrap();
    assert_eq!(
        run(&engine, &r).unwrap().image,
        plain.image,
        "scale 1 is off"
    );
    r.set_negative_prompt("fog", 4.0).unwrap();
    let cfg = run(&engine, &r).unwrap();
    assert_ne!(cfg.image, plain.image, "true CFG changes the image");
    let text = png_text(&cfg);
    assert!(
        text.contains(&("negative_prompt".into(), "fog".into())),
        "{text:?}"
    );
    assert!(
        text.contains(&("true_cfg_scale".into(), "4".into())),
        "{text:?}"
    );

    let mut fill = request("a cup");
    fill.set_fill(picture(48, 64).into(), mask()).unwrap();
    let e = run(&engine, &fill).unwrap_err();
    assert!(e.contains("not a FLUX.1 fill model"), "{e}");
    assert_eq!(
        run(&engine, &r).unwrap().image,
        cfg.image,
        "the engine goes on"
    );
}

#[test]
fn tool_settings_are_checked_when_set() {
    let mut r = Request::new("x");
    for scale in [f32::NAN, f32::INFINITY, 0.5, -2.0] {
        assert!(r.set_negative_prompt("y", scale).is_err(), "{scale}");
    }
    let e = r
        .set_fill(picture(32, 64).into(), mask())
        .unwrap_err()
        .to_string();
    assert!(e.contains("48x64") && e.contains("32x64"), "{e}");
    r.set_fill(picture(48, 64).into(), mask()).unwrap();
    let e = r
        .add_reference(picture(48, 64).into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Fill image and mask"), "{e}");
    assert!(r.set_control_image(picture(48, 64).into()).is_err());
    assert!(r.set_init_image(picture(48, 64).into(), 0.5).is_err());
    r.clear_images();
    r.set_control_image(picture(48, 64).into()).unwrap();
    r.set_control_image(picture(64, 64).into()).unwrap();
    match r.job(&Device::Cpu).unwrap() {
        JobRequest::TextToImage(t) => {
            assert_eq!((t.width, t.height), (64, 64), "the control image's size");
            assert!(matches!(t.tool, Some(ToolInput::Control(_))));
        }
        other => panic!("{other:?}"),
    }
}

/// The tiny model folder with the tiny SigLIP and Redux projection beside it, as a user would
/// put `siglip-so400m-patch14-384/` and `flux1-redux-dev.safetensors`.
fn redux_model(name: &str) -> (Scratch, ModelFiles) {
    let (s, files) = tiny_model(name, Variant::Dev, Layout::SingleFiles);
    let dir = files.transformer.parent().unwrap().to_path_buf();
    let tools = fixtures().join("flux-tools");
    let siglip = dir.join("siglip_tiny");
    std::fs::create_dir_all(&siglip).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(tools.join("siglip_tiny").join(f), siglip.join(f)).unwrap();
    }
    let projection = dir.join("flux1-redux-dev.safetensors");
    std::fs::copy(tools.join("redux_tiny.weights.safetensors"), projection).unwrap();
    let files = ModelFiles::from_folder(&dir).unwrap();
    assert!(files.redux.is_some(), "the Redux files are found");
    (s, files)
}

#[test]
fn redux_jobs_append_the_image_tokens_and_need_the_redux_files() {
    let (_s, files) = redux_model("redux-jobs");
    let engine = engine_with(&files);
    let mut r = request("");
    r.set_size(32, 32).unwrap();
    let plain = run(&engine, &r).unwrap();
    r.add_redux_image(picture(40, 24).into()).unwrap();
    let varied = run(&engine, &r).unwrap();
    assert_ne!(
        varied.image, plain.image,
        "the image tokens change the result"
    );

    let mut model = FluxModel::load(&files, &LoadOptions::default()).unwrap();
    let want = TextToImage {
        width: 32,
        height: 32,
        steps: Some(2),
        t5_len: Some(16),
        redux: vec![picture(40, 24).into()],
        ..TextToImage::new("", 3)
    };
    let want = pipeline::generate(&mut model, &want, &mut pipeline::no_hook()).unwrap();
    assert_eq!(
        varied.image, want.image,
        "the engine runs what the pipeline runs"
    );

    let e = r
        .add_reference(picture(32, 32).into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Redux"), "{e}");
    let (_t, plain_files) = tiny_model("redux-missing", Variant::Dev, Layout::SingleFiles);
    let bare = engine_with(&plain_files);
    let e = run(&bare, &r).unwrap_err();
    assert!(
        e.contains("no Redux encoder") && e.contains("flux1-redux"),
        "{e}"
    );
    r.clear_images();
    assert!(run(&bare, &r).is_ok(), "the engine goes on");
}

#[test]
fn a_negative_prompt_is_embedded_before_the_plan_releases_the_encoders() {
    use flux_core::model::BlockResidency;
    use flux_core::runtime::{Event, Plan, TextPlacement};
    let (_s, files) = tiny_model("cfg-released", Variant::Dev, Layout::SingleFiles);
    let engine = Engine::new(EngineOptions {
        plan: Some(Plan {
            text: TextPlacement::Released,
            blocks: BlockResidency::Resident,
            tiled_vae: false,
        }),
        ..EngineOptions::default()
    })
    .unwrap();
    let load = JobRequest::LoadModel {
        files,
        dtype: None,
        kontext: None,
    };
    let id = engine.submit(load, PRIORITY_NORMAL).unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Succeeded);
    let mut r = request("a lighthouse");
    r.set_size(32, 32).unwrap();
    r.set_negative_prompt("fog", 4.0).unwrap();
    run(&engine, &r).unwrap();
    let logs: Vec<String> = std::iter::from_fn(|| engine.poll_event())
        .filter_map(|e| match e {
            Event::Log { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    let count = |what: &str| logs.iter().filter(|m| m.contains(what)).count();
    assert_eq!(count("loading the text encoders"), 1, "{logs:?}");
    assert_eq!(count("releasing the text encoders"), 1, "{logs:?}");
}
