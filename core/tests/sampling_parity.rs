//! Full 4-step sampling runs (dev and schnell) against the reference, from the stored noise and
//! text embeddings, through the production sampler and decoder. Tolerance: MANIFEST.md's
//! transformer/sampling max-abs 5e-4, relative L2 1e-4; decoded images 5e-4 as they inherit it.

mod common;

use std::ops::ControlFlow;

use common::*;
use flux_core::model::{self, LoadOptions, Variant};
use flux_core::pipeline::{self, packing, schedule};
use flux_core::text::PromptEmbedding;
use flux_core::tiny::Layout;

fn run(variant: Variant, fixture: &str) {
    let fx = load(&reference(fixture));
    let (_s, files) = tiny_model(
        &format!("sample-{}", variant.name()),
        variant,
        Layout::SingleFiles,
    );
    let opts = LoadOptions::default();
    let transformer = model::load_transformer(&files, &opts).unwrap();
    let ae = model::load_autoencoder(&files, &opts).unwrap();
    let defaults = variant.defaults();

    let (_, _, h, w) = fx["noise"].dims4().unwrap();
    let (height, width) = (h * 8, w * 8);
    assert_eq!(
        packing::pack(&fx["noise"])
            .unwrap()
            .to_vec3::<f32>()
            .unwrap(),
        fx["img"].to_vec3::<f32>().unwrap()
    );
    let (rows, cols) = packing::token_grid(height, width);
    let ids = packing::image_ids(1, rows, cols, 0.0, &candle_core::Device::Cpu).unwrap();
    assert_eq!(
        ids.to_vec3::<f32>().unwrap(),
        fx["img_ids"].to_vec3::<f32>().unwrap(),
        "ids exact"
    );

    let ts = schedule::timesteps(4, rows * cols, defaults.shift);
    let want_ts = fx["timesteps"].to_vec1::<f32>().unwrap();
    assert!(
        ts.iter().zip(&want_ts).all(|(a, b)| (a - b).abs() <= 2e-7),
        "{ts:?} vs {want_ts:?}"
    );

    let guidance = fx
        .get("guidance")
        .map(|g| g.to_vec1::<f32>().unwrap()[0])
        .unwrap_or(0.0);
    let emb = PromptEmbedding {
        txt: fx["txt"].clone(),
        vec: fx["vec"].clone(),
    };
    let cond = pipeline::conditioning(&transformer, &emb, guidance).unwrap();
    let mut steps = Vec::new();
    let mut hook = |s: &pipeline::sampler::StepInfo| {
        steps.push((s.step, s.total, s.latent.clone()));
        ControlFlow::Continue(())
    };
    let latent = pipeline::sample(
        &transformer,
        &cond,
        &Default::default(),
        &fx["noise"],
        4,
        defaults.shift,
        &mut hook,
    )
    .unwrap();
    assert_eq!(steps.len(), 4);
    for (i, (step, total, x)) in steps.iter().enumerate() {
        assert_eq!((*step, *total), (i + 1, 4));
        assert_transformer_close(
            &format!("step {step} latent"),
            x,
            &fx["step_latents"].get(i + 1).unwrap(),
        );
    }
    assert_transformer_close("final latent", &latent, &fx["final_unpacked"]);
    let decoded = ae.decode(&latent).unwrap();
    assert_transformer_close("decoded image", &decoded, &fx["decoded_image"]);
}

#[test]
fn dev_four_step_sampling_matches_reference() {
    run(Variant::Dev, "flux_tiny_dev.sample_t2i.safetensors");
}

#[test]
fn schnell_four_step_sampling_matches_reference() {
    run(Variant::Schnell, "flux_tiny_schnell.sample_t2i.safetensors");
}

#[test]
fn hook_can_cancel_between_steps() {
    let fx = load(&reference("flux_tiny_dev.sample_t2i.safetensors"));
    let (_s, files) = tiny_model("cancel", Variant::Dev, Layout::SingleFiles);
    let transformer = model::load_transformer(&files, &LoadOptions::default()).unwrap();
    let emb = PromptEmbedding {
        txt: fx["txt"].clone(),
        vec: fx["vec"].clone(),
    };
    let cond = pipeline::conditioning(&transformer, &emb, 3.5).unwrap();
    let mut seen = 0;
    let mut hook = |s: &pipeline::sampler::StepInfo| {
        seen = s.step;
        if s.step == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let plain = Default::default();
    let err = pipeline::sample(
        &transformer,
        &cond,
        &plain,
        &fx["noise"],
        4,
        true,
        &mut hook,
    )
    .unwrap_err();
    assert!(matches!(err, flux_core::Error::Cancelled));
    assert_eq!(seen, 2, "no step ran after the cancel");
}
