//! Garbage in, an error out: weights full of NaN (a corrupt or badly converted file) or an
//! extreme guidance make the job fail with a message naming the stage or step, instead of
//! decoding a black or noise image.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use flux_core::model::{FluxModel, LoadOptions, ModelFiles, Variant};
use flux_core::pipeline::{self, TextToImage};
use flux_core::tiny::Layout;

fn request(guidance: Option<f32>) -> TextToImage {
    TextToImage {
        width: 64,
        height: 48,
        steps: Some(2),
        t5_len: Some(16),
        guidance,
        ..TextToImage::new("a quiet street", 5)
    }
}

fn generate(files: &ModelFiles, dtype: DType, guidance: Option<f32>) -> flux_core::Result<()> {
    let opts = LoadOptions {
        dtype: Some(dtype),
        ..LoadOptions::default()
    };
    let mut model = FluxModel::load(files, &opts)?;
    pipeline::generate(&mut model, &request(guidance), &mut pipeline::no_hook()).map(|_| ())
}

/// Rewrites the safetensors file `path` with every value of the tensors whose name contains
/// `part` set to NaN.
fn poison(path: &Path, part: &str) {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let poisoned: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(name, t)| {
            let t = match name.contains(part) && t.dtype().is_float() {
                true => Tensor::full(f32::NAN, t.dims(), &Device::Cpu)
                    .unwrap()
                    .to_dtype(t.dtype())
                    .unwrap(),
                false => t,
            };
            (name, t)
        })
        .collect();
    candle_core::safetensors::save(&poisoned, path).unwrap();
}

fn failure(files: &ModelFiles, dtype: DType, guidance: Option<f32>) -> String {
    generate(files, dtype, guidance).unwrap_err().to_string()
}

#[test]
fn nan_weights_fail_the_job_naming_the_stage() {
    let (_s, files) = tiny_model("nan-weights", Variant::Dev, Layout::SingleFiles);
    generate(&files, DType::F32, None).unwrap();
    // A transformer block gone NaN: the first step says so.
    poison(&files.transformer, "double_blocks.0.img_mlp");
    let e = failure(&files, DType::F32, None);
    assert!(
        e.contains("the latent after step 1 of 2") && e.contains("not finite"),
        "{e}"
    );

    let (_s, files) = tiny_model("nan-ae", Variant::Dev, Layout::SingleFiles);
    poison(&files.ae, "decoder.conv_out");
    let e = failure(&files, DType::F32, None);
    assert!(e.contains("the autoencoder's decoded image"), "{e}");

    let (_s, files) = tiny_model("nan-t5", Variant::Dev, Layout::SingleFiles);
    poison(&files.t5, "final_layer_norm");
    let e = failure(&files, DType::F32, None);
    assert!(e.contains("the T5 encoder's output"), "{e}");
}

#[test]
fn a_guidance_that_overflows_f16_fails_the_job() {
    let (_s, files) = tiny_model("huge-guidance", Variant::Dev, Layout::SingleFiles);
    generate(&files, DType::F16, None).unwrap();
    // 1e30 is finite in f32 but infinite in f16, the compute type.
    let e = failure(&files, DType::F16, Some(1e30));
    assert!(e.contains("not finite") && e.contains("step 1"), "{e}");
}
