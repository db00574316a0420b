//! LoRAs through the engine, per job: a job names its files and strengths, the engine parses
//! each file once, switches sets between jobs without reloading the model and restores it
//! exactly, reports keys it does not understand, writes the LoRAs into the PNG metadata, and a
//! LoRA that does not fit fails its job only.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use common::*;
use flux_core::lora::LoraChoice;
use flux_core::model::Variant;
use flux_core::pipeline::{Generated, TextToImage};
use flux_core::runtime::job::PRIORITY_NORMAL;
use flux_core::runtime::{Engine, EngineOptions, Event, JobOutput, JobRequest, JobState};
use flux_core::tiny::Layout;

const WAIT: Duration = Duration::from_secs(120);

fn lora(name: &str, strength: f32) -> LoraChoice {
    LoraChoice {
        path: fixtures().join("flux-lora").join(name),
        strength,
    }
}

/// Runs a 32×32, two-step text-to-image job with `loras`; its result, or its error.
fn run(engine: &Engine, loras: Vec<LoraChoice>) -> Result<std::sync::Arc<Generated>, String> {
    let request = TextToImage {
        width: 32,
        height: 32,
        steps: Some(2),
        t5_len: Some(16),
        loras,
        ..TextToImage::new("a red lighthouse at dusk", 7)
    };
    let id = engine
        .submit(JobRequest::TextToImage(request), PRIORITY_NORMAL)
        .unwrap();
    match engine.wait(id, WAIT).unwrap() {
        JobState::Succeeded => match engine.take_result(id).unwrap() {
            JobOutput::Image(g) => Ok(g),
            other => panic!("not an image: {other:?}"),
        },
        _ => Err(engine.status(id).unwrap().error.unwrap_or_default()),
    }
}

fn logs(engine: &Engine) -> Vec<String> {
    std::iter::from_fn(|| engine.poll_event())
        .filter_map(|e| match e {
            Event::Log { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

fn write(path: &Path, tensors: &[(&str, &[usize])]) -> PathBuf {
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, shape)| {
            let t = Tensor::ones(*shape, DType::F32, &Device::Cpu).unwrap();
            (k.to_string(), (t * 0.01).unwrap())
        })
        .collect();
    candle_core::safetensors::save(&map, path).unwrap();
    path.to_path_buf()
}

#[test]
fn jobs_switch_lora_sets_without_reloading_and_restore_the_model_exactly() {
    let (s, files) = tiny_model("lora-jobs", Variant::Dev, Layout::SingleFiles);
    let engine = Engine::new(EngineOptions::default()).unwrap();
    let load = engine
        .submit(
            JobRequest::LoadModel {
                files,
                dtype: None,
                kontext: None,
            },
            PRIORITY_NORMAL,
        )
        .unwrap();
    assert_eq!(engine.wait(load, WAIT).unwrap(), JobState::Succeeded);
    logs(&engine);

    let plain = run(&engine, vec![]).unwrap();
    assert!(plain.meta.loras.is_empty());
    let kohya = run(&engine, vec![lora("lora_a_kohya.safetensors", 1.0)]).unwrap();
    assert_ne!(kohya.image, plain.image, "the LoRA changes the image");
    let text = flux_core::image::export::encode_png(&kohya.image, Some(&kohya.meta)).unwrap();
    let text = flux_core::image::export::read_png_text(&text).unwrap();
    assert!(
        text.contains(&("loras".into(), "lora_a_kohya.safetensors:1".into())),
        "{text:?}"
    );
    let messages = logs(&engine);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("merged into the weights")),
        "{messages:?}"
    );

    let two = vec![
        lora("lora_b_peft.safetensors", 1.0),
        lora("lora_c_xlabs.safetensors", 0.5),
    ];
    let mixed = run(&engine, two.clone()).unwrap();
    assert_eq!(mixed.meta.loras, two);
    assert_ne!(mixed.image, kohya.image);
    // Back and forth: the same sets give the same pixels; none gives the model as loaded.
    for _ in 0..3 {
        assert_eq!(
            run(&engine, vec![lora("lora_a_kohya.safetensors", 1.0)])
                .unwrap()
                .image,
            kohya.image
        );
        assert_eq!(run(&engine, two.clone()).unwrap().image, mixed.image);
    }
    assert_eq!(run(&engine, vec![]).unwrap().image, plain.image);

    // Keys of another model part are reported once, as a warning; the rest applies.
    let extra = write(
        &s.0.join("with_text_encoder.safetensors"),
        &[
            ("lora_unet_img_in.lora_down.weight", &[2, 64]),
            ("lora_unet_img_in.lora_up.weight", &[64, 2]),
            (
                "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
                &[2, 48],
            ),
        ],
    );
    let choice = LoraChoice {
        path: extra.clone(),
        strength: 1.0,
    };
    assert!(run(&engine, vec![choice]).is_ok());
    let messages = logs(&engine);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("1 keys") && m.contains("lora_te1_text_model")),
        "{messages:?}"
    );

    // A LoRA for a wider model fails its job, naming the key; the engine goes on as it was.
    let wide = write(
        &s.0.join("wide.safetensors"),
        &[
            ("lora_unet_txt_in.lora_down.weight", &[4, 4096]),
            ("lora_unet_txt_in.lora_up.weight", &[64, 4]),
        ],
    );
    let wide = LoraChoice {
        path: wide,
        strength: 1.0,
    };
    let e = run(&engine, vec![lora("lora_a_kohya.safetensors", 1.0), wide]).unwrap_err();
    assert!(
        e.contains("lora_unet_txt_in") && e.contains("wide.safetensors"),
        "{e}"
    );
    assert_eq!(run(&engine, vec![]).unwrap().image, plain.image);
    let e = run(&engine, vec![lora("lora_a_kohya.safetensors", f32::NAN)]).unwrap_err();
    assert!(e.contains("strength"), "{e}");
    assert_eq!(
        run(&engine, vec![lora("lora_a_kohya.safetensors", 1.0)])
            .unwrap()
            .image,
        kohya.image
    );
}
