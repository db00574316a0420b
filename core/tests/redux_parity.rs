//! FLUX.1 Redux against `tests/fixtures/flux-tools/` (BFL `ReduxImageEncoder` with transformers'
//! SigLIP on tiny weights): Pillow's bicubic resize bit for bit, SigLIP's states and the Redux
//! tokens within the manifest's 5e-5, and a 4-step dev sample with the tokens appended after the
//! T5 tokens within 5e-4 max abs / 1e-4 relative L2.

mod common;

use std::collections::HashMap;
use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor};
use common::*;
use flux_core::image::RgbImage;
use flux_core::model::redux::{self, ReduxEncoder, ReduxFiles};
use flux_core::model::{self, LoadOptions, Variant};
use flux_core::pipeline::{self, sampler::StepInfo};
use flux_core::text::PromptEmbedding;
use flux_core::tiny::Layout;

fn tools() -> std::path::PathBuf {
    fixtures().join("flux-tools")
}

fn encoder() -> ReduxEncoder {
    let files = ReduxFiles {
        siglip: tools().join("siglip_tiny"),
        projection: tools().join("redux_tiny.weights.safetensors"),
    };
    ReduxEncoder::load(&files, DType::F32, &Device::Cpu).unwrap()
}

/// An (H, W, 3) uint8 fixture as an image.
fn pixels(t: &Tensor) -> RgbImage {
    let (height, width, _) = t.dims3().unwrap();
    RgbImage {
        width,
        height,
        data: t.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
    }
}

fn check_image(fx: &HashMap<String, Tensor>, enc: &ReduxEncoder, name: &str) {
    let key = |k: &str| format!("{name}.{k}");
    let image = pixels(&fx[&key("image_uint8")]);
    let resized = image.resized_bicubic(118, 118);
    let want = fx[&key("resized_uint8")].flatten_all().unwrap();
    assert_eq!(
        resized.data,
        want.to_vec1::<u8>().unwrap(),
        "{name}: Pillow's bicubic, exactly"
    );
    let values = enc.pixel_values(&image).unwrap();
    assert_encoder_close(&key("pixel_values"), &values, &fx[&key("pixel_values")]);
    let hidden = enc.hidden_state(&values).unwrap();
    let last = &fx[&key("siglip_last_hidden_state")];
    assert_encoder_close(&key("siglip_last_hidden_state"), &hidden, last);
    let tokens = enc.tokens(&image).unwrap();
    assert_encoder_close(&key("redux_tokens"), &tokens, &fx[&key("redux_tokens")]);
}

#[test]
fn redux_tokens_match_the_reference() {
    let fx = load(&tools().join("redux_tiny.forward.safetensors"));
    let enc = encoder();
    check_image(&fx, &enc, "a"); // 96 × 160: squashed (width shrinks, height grows)
    check_image(&fx, &enc, "b"); // 118 × 118: no resize
}

#[test]
fn redux_sample_matches_the_reference() {
    let fx = load(&tools().join("flux_tiny_dev.sample_redux.safetensors"));
    let tokens = encoder().tokens(&pixels(&fx["redux_image_uint8"])).unwrap();
    assert_encoder_close("redux tokens", &tokens, &fx["redux_tokens"]);
    let txt = Tensor::cat(&[&fx["t5_output"], &tokens], 1).unwrap();
    assert_encoder_close("txt", &txt, &fx["txt"]);

    let (_s, files) = tiny_model("redux-sample", Variant::Dev, Layout::SingleFiles);
    let opts = LoadOptions::default();
    let m = model::load_transformer(&files, &opts).unwrap();
    let ae = model::load_autoencoder(&files, &opts).unwrap();
    let emb = PromptEmbedding {
        txt,
        vec: fx["vec"].clone(),
    };
    let cond = pipeline::conditioning(&m, &emb, 2.5).unwrap();
    let mut steps = Vec::new();
    let mut hook = |s: &StepInfo| {
        steps.push(s.latent.clone());
        ControlFlow::Continue(())
    };
    let guides = Default::default();
    let latent = pipeline::sample(&m, &cond, &guides, &fx["noise"], 4, true, &mut hook).unwrap();
    for (i, x) in steps.iter().enumerate() {
        let want = fx["step_latents"].get(i + 1).unwrap();
        assert_transformer_close(&format!("step {} latent", i + 1), x, &want);
    }
    assert_transformer_close("final latent", &latent, &fx["final_unpacked"]);
    let decoded = ae.decode(&latent).unwrap();
    assert_transformer_close("decoded image", &decoded, &fx["decoded_image"]);
}

#[test]
fn redux_files_are_found_beside_the_model() {
    let s = Scratch::new("redux-find");
    assert_eq!(redux::find_in(&s.0), None);
    let siglip = s.0.join("siglip-so400m-patch14-384");
    std::fs::create_dir_all(&siglip).unwrap();
    std::fs::write(siglip.join("config.json"), "{}").unwrap();
    assert_eq!(redux::find_in(&s.0), None, "no projection file yet");
    let projection = s.0.join("flux1-redux-dev.safetensors");
    std::fs::write(&projection, b"").unwrap();
    let found = redux::find_in(&s.0).unwrap();
    assert_eq!((found.siglip, found.projection), (siglip, projection));
}

#[test]
fn a_broken_siglip_config_is_named() {
    let s = Scratch::new("redux-bad");
    std::fs::write(s.0.join("config.json"), "{\"hidden_size\": \"wide\"}").unwrap();
    let files = ReduxFiles {
        siglip: s.0.clone(),
        projection: tools().join("redux_tiny.weights.safetensors"),
    };
    let e = ReduxEncoder::load(&files, DType::F32, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("config.json") && e.contains("SigLIP"), "{e}");
}
