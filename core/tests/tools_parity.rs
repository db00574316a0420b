//! The FLUX.1 tools against `tests/fixtures/flux-tools/` (the BFL reference code and diffusers on
//! tiny random weights): Fill and Canny/Depth forward passes and 4-step samples, and true CFG;
//! BFL's Canny/Depth LoRA layout, by a LoRA that turns the tiny dev model into the Control one.
//! Tolerances from its MANIFEST.md (0.2): Fill and Control (guidance 30, whose float32 embedding
//! carries ~1e-3 of noise in the reference itself) max abs 2e-3, relative L2 5e-4; true CFG
//! (guidance 3.5) 5e-4 / 1e-4; AE latents 5e-5; mask features and layouts exact.

mod common;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use common::*;
use flux_core::image::RgbImage;
use flux_core::lora::{Adapters, LoraFile};
use flux_core::model::autoencoder::AutoEncoder;
use flux_core::model::transformer::{BlockResidency, FluxTransformer, Tool};
use flux_core::model::{self, LoadOptions, ModelFiles, Variant};
use flux_core::pipeline::sampler::{Conditioning, Guides, StepInfo};
use flux_core::pipeline::tools::{self, Mask};
use flux_core::pipeline::{self, packing};
use flux_core::text::PromptEmbedding;
use flux_core::tiny::Layout;

/// (max abs, relative L2) for Fill and Control at guidance 30.
const TOOL: (f32, f32) = (2e-3, 5e-4);
/// (max abs, relative L2) for true CFG at guidance 3.5.
const TRUE_CFG: (f32, f32) = (TRANSFORMER_MAX_ABS, TRANSFORMER_REL_L2);

fn tools_fixture(name: &str) -> HashMap<String, Tensor> {
    load(&fixtures().join("flux-tools").join(name))
}

fn tool_transformer(weights: &str) -> FluxTransformer {
    let path = fixtures().join("flux-tools").join(weights);
    model::load_transformer(&ModelFiles::transformer_only(path), &LoadOptions::default()).unwrap()
}

/// Asserts `got` is within `(max abs, relative L2)` of `want`, and reports the errors.
fn assert_close(what: &str, got: &Tensor, want: &Tensor, (max_abs, rel_l2): (f32, f32)) {
    let (max, rel) = errors(got, want);
    eprintln!("{what}: max abs {max:.2e}, rel L2 {rel:.2e}");
    assert!(
        max <= max_abs && rel <= rel_l2,
        "{what}: max abs {max:e}, rel L2 {rel:e}"
    );
}

fn assert_exact(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(values(got), values(want), "{what}");
}

/// An (H, W, 3) uint8 fixture as an image.
fn pixels(t: &Tensor) -> RgbImage {
    let (height, width, _) = t.dims3().unwrap();
    let data = t.flatten_all().unwrap().to_vec1::<u8>().unwrap();
    RgbImage {
        width,
        height,
        data,
    }
}

fn conditioning_of(m: &FluxTransformer, txt: &Tensor, vec: &Tensor, guidance: f32) -> Conditioning {
    let emb = PromptEmbedding {
        txt: txt.clone(),
        vec: vec.clone(),
    };
    pipeline::conditioning(m, &emb, guidance).unwrap()
}

/// The reference's tiny autoencoder.
fn tiny_ae(name: &str) -> (Scratch, AutoEncoder) {
    let (s, files) = tiny_model(name, Variant::Dev, Layout::SingleFiles);
    (
        s,
        model::load_autoencoder(&files, &LoadOptions::default()).unwrap(),
    )
}

/// Runs the 4-step sample of a fixture with `guides` and checks every step, the final latent
/// and the decoded image within `limits`.
fn check_sample(
    (m, ae): (&FluxTransformer, &AutoEncoder),
    fx: &HashMap<String, Tensor>,
    cond: &Conditioning,
    guides: &Guides,
    limits: (f32, f32),
) {
    let mut steps = Vec::new();
    let mut hook = |s: &StepInfo| {
        steps.push(s.latent.clone());
        ControlFlow::Continue(())
    };
    let latent = pipeline::sample(m, cond, guides, &fx["noise"], 4, true, &mut hook).unwrap();
    assert_eq!(steps.len(), 4);
    for (i, x) in steps.iter().enumerate() {
        let want = fx["step_latents"].get(i + 1).unwrap();
        assert_close(&format!("step {} latent", i + 1), x, &want, limits);
    }
    assert_close("final latent", &latent, &fx["final_unpacked"], limits);
    let decoded = ae.decode(&latent).unwrap();
    assert_close("decoded image", &decoded, &fx["decoded_image"], limits);
}

/// Runs a Fill or Control sample fixture (guidance 30) with the conditioning features `cond`.
fn check_tool_sample(
    model: (&FluxTransformer, &AutoEncoder),
    fx: &HashMap<String, Tensor>,
    cond: &Tensor,
) {
    let text = conditioning_of(model.0, &fx["txt"], &fx["vec"], 30.0);
    let guides = Guides {
        features: Some(cond),
        ..Guides::default()
    };
    check_sample(model, fx, &text, &guides, TOOL);
}

#[test]
fn tools_are_detected_from_the_input_width() {
    let fill = tool_transformer("flux_tiny_fill.weights.safetensors");
    let control = tool_transformer("flux_tiny_control.weights.safetensors");
    assert_eq!(fill.tool(), Some(Tool::Fill));
    assert_eq!(control.tool(), Some(Tool::Control));
    assert_eq!(fill.variant(), Variant::Dev);
    assert_eq!(
        (fill.config().in_channels, fill.config().out_channels),
        (384, 64)
    );
    assert_eq!(Tool::Fill.features(64), 320);
    assert_eq!(Tool::Control.features(64), 64);
    let (_s, files) = tiny_model("tools-plain", Variant::Dev, Layout::SingleFiles);
    let plain = model::load_transformer(&files, &LoadOptions::default()).unwrap();
    assert_eq!(plain.tool(), None);
}

#[test]
fn fill_forward_matches_reference() {
    let fx = tools_fixture("flux_tiny_fill.forward.safetensors");
    let m = tool_transformer("flux_tiny_fill.weights.safetensors");
    let mask = tools::mask_features(&fx["mask"]).unwrap();
    assert_exact("mask features", &mask, &fx["mask_packed"]);
    let latent = packing::pack(&fx["masked_image_latent_unpacked"]).unwrap();
    let cond = Tensor::cat(&[&latent, &mask], 2).unwrap();
    assert_exact("img_cond", &cond, &fx["img_cond"]);
    let input = Tensor::cat(&[&fx["img"], &cond], 2).unwrap();
    assert_exact("model input", &input, &fx["model_input"]);
    let out = forward_fixture(&m, &fx, "model_input", "img_ids");
    assert_close("fill output", &out, &fx["output"], TOOL);
}

#[test]
fn control_forward_matches_reference() {
    let fx = tools_fixture("flux_tiny_control.forward.safetensors");
    let m = tool_transformer("flux_tiny_control.weights.safetensors");
    let cond = packing::pack(&fx["control_latent_unpacked"]).unwrap();
    assert_exact("img_cond", &cond, &fx["img_cond"]);
    let out = forward_fixture(&m, &fx, "model_input", "img_ids");
    assert_close("control output", &out, &fx["output"], TOOL);
}

#[test]
fn fill_inpaint_sample_matches_reference() {
    let fx = tools_fixture("flux_tiny_fill.sample_inpaint.safetensors");
    let m = tool_transformer("flux_tiny_fill.weights.safetensors");
    let (_s, ae) = tiny_ae("fill-ae");
    let image = pixels(&fx["image_uint8"]);
    let (height, width) = fx["mask_uint8"].dims2().unwrap();
    let bytes = fx["mask_uint8"]
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    let mask = Mask::new(width, height, bytes).unwrap();
    assert_exact("mask", &mask.to_tensor(&Device::Cpu).unwrap(), &fx["mask"]);
    let cond =
        tools::fill_from_pixels(&ae, &image, &mask, (width, height), m.dtype(), &Device::Cpu)
            .unwrap();
    assert_encoder_close("img_cond", &cond, &fx["img_cond"]);
    assert_exact(
        "mask features",
        &cond.narrow(2, 64, 256).unwrap(),
        &fx["mask_packed"],
    );
    check_tool_sample((&m, &ae), &fx, &cond);
}

#[test]
fn canny_sample_matches_reference() {
    let fx = tools_fixture("flux_tiny_control.sample_canny.safetensors");
    let m = tool_transformer("flux_tiny_control.weights.safetensors");
    let (_s, ae) = tiny_ae("canny-ae");
    let control = pixels(&fx["control_image_uint8"]);
    let size = (control.width, control.height);
    let cond = tools::control_from_pixels(&ae, &control, size, m.dtype(), &Device::Cpu).unwrap();
    assert_encoder_close("img_cond", &cond, &fx["img_cond"]);
    check_tool_sample((&m, &ae), &fx, &cond);
}

#[test]
fn true_cfg_sample_matches_diffusers() {
    let fx = tools_fixture("flux_tiny_dev.sample_true_cfg.safetensors");
    let (_s, files) = tiny_model("true-cfg", Variant::Dev, Layout::SingleFiles);
    let m = model::load_transformer(&files, &LoadOptions::default()).unwrap();
    let ae = model::load_autoencoder(&files, &LoadOptions::default()).unwrap();
    let positive = conditioning_of(&m, &fx["txt"], &fx["vec"], 3.5);
    let negative = conditioning_of(&m, &fx["negative_txt"], &fx["negative_vec"], 3.5);
    let scale = fx["true_cfg_scale"].to_vec1::<f32>().unwrap()[0];
    let guides = Guides {
        negative: Some((&negative, scale)),
        ..Guides::default()
    };
    check_sample((&m, &ae), &fx, &positive, &guides, TRUE_CFG);
}

#[test]
fn fill_refuses_a_mask_of_another_size() {
    let (_s, ae) = tiny_ae("fill-mask-size");
    let image = RgbImage {
        width: 32,
        height: 32,
        data: vec![0; 32 * 32 * 3],
    };
    let mask = Mask::new(16, 32, vec![255; 16 * 32]).unwrap();
    let dtype = candle_core::DType::F32;
    let e = tools::fill_from_pixels(&ae, &image, &mask, (32, 32), dtype, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("16x32") && e.contains("32x32"), "{e}");
    assert!(Mask::new(4, 4, vec![0; 15]).is_err());
}

#[test]
fn a_fill_model_quantized_to_gguf_keeps_its_tool_and_output() {
    let s = Scratch::new("fill-gguf");
    let gguf = s.0.join("flux1-fill-dev-Q8_0.gguf");
    let input = fixtures().join("flux-tools/flux_tiny_fill.weights.safetensors");
    model::quantize_transformer(&input, &gguf, candle_core::quantized::GgmlDType::Q8_0).unwrap();
    let files = ModelFiles::transformer_only(gguf);
    let m = model::load_transformer(&files, &LoadOptions::default()).unwrap();
    assert_eq!(m.tool(), Some(Tool::Fill));
    let fx = tools_fixture("flux_tiny_fill.forward.safetensors");
    let out = forward_fixture(&m, &fx, "model_input", "img_ids");
    // Q8_0 weights against the float32 reference: flux-gguf's MANIFEST measures the tiny dev
    // model's Q8_0 forward at rel L2 8.9e-3, max abs 5.5e-2 from float32; the same bound here.
    assert_close("fill output, Q8_0", &out, &fx["output"], (6e-2, 1.2e-2));
}

#[test]
fn a_bfl_control_lora_turns_dev_into_the_control_model_and_goes_exactly() {
    let s = Scratch::new("control-lora");
    let path = s.0.join("flux1-canny-dev-lora.safetensors");
    let control = fixtures().join("flux-tools/flux_tiny_control.weights.safetensors");
    let dev = reference("flux_tiny_dev.weights.safetensors");
    write_control_lora(&dev, &control, &path);
    let file = Arc::new(LoraFile::open(&path).unwrap());
    assert!(file.unknown_keys().is_empty(), "{:?}", file.unknown_keys());
    let fx = tools_fixture("flux_tiny_control.forward.safetensors");
    let plain_input = fx["model_input"].narrow(2, 0, 64).unwrap();

    let mut m =
        model::load_transformer(&ModelFiles::transformer_only(dev), &LoadOptions::default())
            .unwrap();
    let before = forward_fixture(&m, &fx, "img", "img_ids");
    assert_exact("model input", &plain_input, &fx["img"]);
    let adapters = Arc::new(Adapters::new(&[(file, 1.0)], |n| m.tensor_shape(n)).unwrap());
    assert_eq!(adapters.widened_inputs(), Some(128));
    for (merge, residency) in [
        (true, BlockResidency::Resident),
        (false, BlockResidency::Resident),
        (false, BlockResidency::streamed(1)),
    ] {
        let what = format!("merge {merge}, {residency:?}");
        m.set_residency(residency).unwrap();
        m.set_adapters(Some(adapters.clone()), merge).unwrap();
        assert_eq!(m.tool(), Some(Tool::Control), "{what}");
        let out = forward_fixture(&m, &fx, "model_input", "img_ids");
        assert_close(
            &format!("dev + control LoRA, {what}"),
            &out,
            &fx["output"],
            TOOL,
        );
        m.set_adapters(None, false).unwrap();
        m.set_residency(BlockResidency::Resident).unwrap();
        assert_eq!(m.tool(), None, "{what}");
        let back = forward_fixture(&m, &fx, "img", "img_ids");
        assert_exact(&format!("{what}: restored"), &back, &before);
    }
}

#[test]
fn only_img_in_widens_and_only_to_a_tools_width() {
    let s = Scratch::new("control-lora-misfit");
    let path = s.0.join("lora.safetensors");
    let fill = fixtures().join("flux-tools/flux_tiny_fill.weights.safetensors");
    let dev = reference("flux_tiny_dev.weights.safetensors");
    // A LoRA widening img_in to 384 inputs (Fill's) works; one to 192 is no tool's width.
    write_control_lora(&dev, &fill, &path);
    let mut m =
        model::load_transformer(&ModelFiles::transformer_only(dev), &LoadOptions::default())
            .unwrap();
    let file = Arc::new(LoraFile::open(&path).unwrap());
    let adapters = Adapters::new(&[(file, 0.5)], |n| m.tensor_shape(n)).unwrap();
    m.set_adapters(Some(Arc::new(adapters)), true).unwrap();
    assert_eq!(m.tool(), Some(Tool::Fill));
    m.set_adapters(None, false).unwrap();

    // A pair of `layer` reading `inputs` features: the error fitting it to the model.
    let misfit = |layer: &str, inputs: usize| {
        let odd = s.0.join("odd.safetensors");
        let t = |shape: &[usize]| Tensor::ones(shape, candle_core::DType::F32, &Device::Cpu);
        let tensors = HashMap::from([
            (format!("{layer}.lora_A.weight"), t(&[2, inputs]).unwrap()),
            (format!("{layer}.lora_B.weight"), t(&[64, 2]).unwrap()),
        ]);
        candle_core::safetensors::save(&tensors, &odd).unwrap();
        let file = Arc::new(LoraFile::open(&odd).unwrap());
        let fit = Adapters::new(&[(file, 1.0)], |n| m.tensor_shape(n));
        fit.err().unwrap().to_string()
    };
    let e = misfit("img_in", 192);
    assert!(e.contains("img_in") && e.contains("192"), "{e}");
    assert_eq!((m.tool(), m.loras().len()), (None, 0));
    // Only img_in may read more inputs than the model's.
    let e = misfit("txt_in", 96);
    assert!(e.contains("txt_in") && e.contains("does not fit"), "{e}");
}

#[test]
fn a_fill_model_in_a_diffusers_folder_is_recognised_and_runs_as_the_bfl_file() {
    // The tiny dev model as diffusers converted it, its `x_embedder` widened with the tiny Fill
    // model's img_in (384 inputs, as in FLUX.1-Fill-dev's folder); the BFL file it must equal is
    // the tiny dev file with the same img_in.
    let (s, files) = tiny_model("fill-diffusers", Variant::Dev, Layout::Diffusers);
    let fill = load(&fixtures().join("flux-tools/flux_tiny_fill.weights.safetensors"));
    let img_in = &fill["img_in.weight"];
    let folder = files.transformer.clone();
    let config_path = folder.join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let config = config.replace("\"in_channels\": 64", "\"in_channels\": 384");
    std::fs::write(
        &config_path,
        config.replace("\"out_channels\": null", "\"out_channels\": 64"),
    )
    .unwrap();
    let mut widened = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let shard = entry.unwrap().path();
        if shard.extension().is_some_and(|e| e == "safetensors") {
            let mut tensors = load(&shard);
            if let Some(w) = tensors.get_mut("x_embedder.weight") {
                *w = img_in.clone();
                candle_core::safetensors::save(&tensors, &shard).unwrap();
                widened += 1;
            }
        }
    }
    assert_eq!(widened, 1, "one shard holds x_embedder.weight");
    let mut bfl = load(&reference("flux_tiny_dev.weights.safetensors"));
    bfl.insert("img_in.weight".into(), img_in.clone());
    let single = s.0.join("flux1-fill-dev.safetensors");
    candle_core::safetensors::save(&bfl, &single).unwrap();

    let opts = LoadOptions::default();
    let from_folder = model::load_transformer(&files, &opts).unwrap();
    let from_file = model::load_transformer(&ModelFiles::transformer_only(single), &opts).unwrap();
    assert_eq!(from_folder.tool(), Some(Tool::Fill));
    let fx = tools_fixture("flux_tiny_fill.forward.safetensors");
    let want = forward_fixture(&from_file, &fx, "model_input", "img_ids");
    let got = forward_fixture(&from_folder, &fx, "model_input", "img_ids");
    assert_close(
        "diffusers Fill folder against the BFL file",
        &got,
        &want,
        (1e-6, 1e-7),
    );
}
