//! Helpers shared by the integration tests: fixture access, tolerances, tiny models on disk.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use flux_core::model::{ModelFiles, Variant};
use flux_core::tiny::{self, Layout};

#[path = "../../../tests/support/mod.rs"]
pub mod support;
pub use support::Scratch;

/// `tests/fixtures` of this repository.
pub fn fixtures() -> PathBuf {
    tiny::default_fixtures_dir()
}

/// A BFL reference fixture file.
pub fn reference(name: &str) -> PathBuf {
    fixtures().join("flux-reference").join(name)
}

/// A diffusers fixture path.
pub fn diffusers(name: &str) -> PathBuf {
    fixtures().join("flux-reference-diffusers").join(name)
}

/// All tensors of a fixture file, on the CPU.
pub fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// All values of a tensor as f32.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Maximum absolute difference and relative L2 error of `got` against `want`.
pub fn errors(got: &Tensor, want: &Tensor) -> (f32, f32) {
    assert_eq!(got.dims(), want.dims(), "shape mismatch");
    let (g, w) = (values(got), values(want));
    let mut max = 0f32;
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in g.iter().zip(&w) {
        max = max.max((a - b).abs());
        num += ((a - b) as f64).powi(2);
        den += (*b as f64).powi(2);
    }
    (max, (num / den.max(1e-30)).sqrt() as f32)
}

/// MANIFEST.md tolerance for transformer outputs and sampling results.
pub const TRANSFORMER_MAX_ABS: f32 = 5e-4;
pub const TRANSFORMER_REL_L2: f32 = 1e-4;
/// MANIFEST.md tolerance for the AE, T5, CLIP and RoPE tables.
pub const ENCODER_MAX_ABS: f32 = 5e-5;

/// Asserts the transformer / sampling tolerance.
pub fn assert_transformer_close(what: &str, got: &Tensor, want: &Tensor) {
    let (max, rel) = errors(got, want);
    assert!(
        max <= TRANSFORMER_MAX_ABS && rel <= TRANSFORMER_REL_L2,
        "{what}: max abs {max:e}, rel L2 {rel:e}"
    );
}

/// Asserts the encoder tolerance.
pub fn assert_encoder_close(what: &str, got: &Tensor, want: &Tensor) {
    let (max, rel) = errors(got, want);
    assert!(
        max <= ENCODER_MAX_ABS,
        "{what}: max abs {max:e}, rel L2 {rel:e}"
    );
}

/// The transformer's output for a forward fixture's inputs (`img`, `img_ids`, `txt`, `txt_ids`,
/// `timesteps`, `y`, `guidance` when present).
pub fn forward_fixture(
    m: &flux_core::model::transformer::FluxTransformer,
    fx: &HashMap<String, Tensor>,
    img: &str,
    ids: &str,
) -> Tensor {
    m.forward(
        &fx[img],
        &fx[ids],
        &fx["txt"],
        &fx["txt_ids"],
        &fx["timesteps"],
        &fx["y"],
        fx.get("guidance"),
    )
    .unwrap()
}

/// Writes a BFL control LoRA (`LinearLora` keys, BFL's Canny / Depth LoRA layout) that turns
/// `base` into `target`: per dense layer an exact full-rank pair for `W_target − pad(W_base)`
/// (img_in's base weight padded with zeros to the target's inputs, as BFL's loader does) and
/// the bias difference as `lora_B.bias`; the q/k norm scales replaced whole.
pub fn write_control_lora(base: &Path, target: &Path, out: &Path) {
    let (base, target) = (load(base), load(target));
    let eye = |n: usize| Tensor::eye(n, candle_core::DType::F32, &Device::Cpu).unwrap();
    let mut lora = HashMap::new();
    for (name, want) in &target {
        if let Some(layer) = name.strip_suffix(".weight") {
            let had = &base[name];
            let pad = want.dim(1).unwrap() - had.dim(1).unwrap();
            let delta = (want - had.pad_with_zeros(1, 0, pad).unwrap()).unwrap();
            let (out, input) = delta.dims2().unwrap();
            let (up, down) = match out <= input {
                true => (eye(out), delta),
                false => (delta, eye(input)),
            };
            lora.insert(format!("{layer}.lora_A.weight"), down);
            lora.insert(format!("{layer}.lora_B.weight"), up);
        } else if let Some(layer) = name.strip_suffix(".bias") {
            let delta = (want - &base[name]).unwrap();
            lora.insert(format!("{layer}.lora_B.bias"), delta);
        } else {
            assert!(name.ends_with("_norm.scale"), "{name}");
            lora.insert(name.clone(), want.clone());
        }
    }
    candle_core::safetensors::save(&lora, out).unwrap();
}

/// Writes the tiny model into a scratch folder.
pub fn tiny_model(name: &str, variant: Variant, layout: Layout) -> (Scratch, ModelFiles) {
    let s = Scratch::new(name);
    let files = tiny::write_tiny_model(&fixtures(), &s.0.join("model"), variant, layout)
        .expect("write tiny model");
    (s, files)
}

/// The activation bytes the engine estimates `r` needs on the model in `files`.
#[allow(dead_code)]
pub fn work_of(
    files: &ModelFiles,
    r: &flux_core::pipeline::TextToImage,
) -> flux_core::runtime::plan::Work {
    use flux_core::runtime::{plan, JobRequest};
    let opts = flux_core::model::LoadOptions::default();
    let m = flux_core::model::FluxModel::load(files, &opts).unwrap();
    let t5_len = r.t5_len.unwrap();
    let request = JobRequest::TextToImage(r.clone());
    plan::job_work(&m.transformer, &m.ae, &request, t5_len)
}
