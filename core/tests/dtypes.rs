//! Stored f16 / bf16 / fp8-e4m3 weights are converted to the compute dtype on load.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use flux_core::model::store::WeightSet;
use flux_core::model::{self, LoadOptions, ModelFiles};

/// Writes the tiny dev transformer with every tensor stored as `dtype`.
fn convert(dtype: DType, out: &std::path::Path) -> std::collections::HashMap<String, Tensor> {
    let weights = load(&reference("flux_tiny_dev.weights.safetensors"));
    let stored: std::collections::HashMap<String, Tensor> = weights
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(dtype).unwrap()))
        .collect();
    candle_core::safetensors::save(&stored, out).unwrap();
    stored
}

#[test]
fn stored_dtypes_convert_exactly_to_f32() {
    let s = Scratch::new("dtypes");
    for dtype in [DType::F16, DType::BF16, DType::F8E4M3] {
        let path = s.0.join(format!("flux1-dev-{dtype:?}.safetensors"));
        let stored = convert(dtype, &path);
        let set = WeightSet::open("transformer", std::slice::from_ref(&path)).unwrap();
        for name in [
            "img_in.weight",
            "double_blocks.0.img_attn.qkv.weight",
            "final_layer.linear.bias",
        ] {
            let got = set.load(name, DType::F32, &Device::Cpu).unwrap();
            let want = stored[name].to_dtype(DType::F32).unwrap();
            assert_eq!(errors(&got, &want).0, 0.0, "{dtype:?} {name}");
            assert_eq!(got.dtype(), DType::F32);
        }
    }
}

#[test]
fn bf16_weights_run_close_to_the_f32_reference() {
    let s = Scratch::new("bf16-forward");
    let path = s.0.join("flux1-dev.safetensors");
    convert(DType::BF16, &path);
    let files = ModelFiles::transformer_only(path);
    let m = model::load_transformer(&files, &LoadOptions::default()).unwrap();
    assert_eq!(m.dtype(), DType::F32);
    let fx = load(&reference("flux_tiny_dev.forward.safetensors"));
    let out = forward_fixture(&m, &fx, "img", "img_ids");
    // bf16 keeps 8 bits of mantissa (~0.4 % per weight): the output moves by about that much.
    let (_, rel) = errors(&out, &fx["output"]);
    assert!(rel < 2e-2 && rel > 1e-5, "relative L2 {rel}");
}
