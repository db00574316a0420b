//! The fused CUDA attention (feature `flash-attn`) against the CPU's attention on the same
//! bf16-representable inputs. Skipped with a message when no CUDA device is usable.
#![cfg(feature = "flash-attn")]

mod common;

use candle_core::{DType, Device, Tensor};
use flux_core::model::layers::attention;

#[test]
fn flash_attention_matches_the_cpu_attention() {
    let gpu = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => return common::support::skip_without_gpu(&format!("needs a CUDA device: {e}")),
    };
    // A sequence that is not a multiple of the kernel's 128-row tiles; FLUX's head dim.
    let (b, h, n, d) = (2, 3, 300, 128);
    let input = |scale: f64| -> Tensor {
        let t = Tensor::randn(0f32, 1.0, (b, h, n, d), &Device::Cpu).unwrap();
        // Scale like FLUX's q·k (scale folded into q) and round to bf16 so both sides see
        // the same values.
        let t = (t * scale).unwrap();
        t.to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    };
    let (q, k, v) = (input(0.3), input(0.4), input(1.0));
    let want = attention(&q, &k, &v).unwrap();
    let on_gpu = |t: &Tensor| t.to_dtype(DType::BF16).unwrap().to_device(&gpu).unwrap();
    let got = attention(&on_gpu(&q), &on_gpu(&k), &on_gpu(&v)).unwrap();
    assert_eq!(got.dims(), want.dims());
    let got = got
        .to_dtype(DType::F32)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap();
    let diff = (got - &want).unwrap().abs().unwrap().flatten_all().unwrap();
    let max = diff.max(0).unwrap().to_scalar::<f32>().unwrap();
    let mean = diff.mean(0).unwrap().to_scalar::<f32>().unwrap();
    // bf16 output rounding is 2⁻⁸ relative on values below ~1; the kernel accumulates in f32.
    assert!(
        max <= 2e-2 && mean <= 2e-3,
        "max |Δ| {max}, mean |Δ| {mean}"
    );
}
