//! LoRA parity against `tests/fixtures/flux-lora` (diffusers' own loaders on the tiny dev
//! model): kohya, PEFT and XLabs files, one at half strength, two at once, on the three input
//! sets, both merged into the weights and as a run-time branch; the merged weights tensor by
//! tensor; exact restores over 100 switches; bad files and strengths.
//! Tolerances (MANIFEST section 9): LoRA cases max abs 5e-3, rel L2 2e-4 (outputs reach |x| = 13
//! and the reference evaluates the timestep embedding in f32); no LoRA 5e-4 / 1e-4; merged
//! weights max abs 1e-5.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::*;
use flux_core::lora::{Adapters, LoraFile};
use flux_core::model::transformer::FluxTransformer;
use flux_core::model::{self, LoadOptions, ModelFiles};

fn lora_fixture(name: &str) -> PathBuf {
    fixtures().join("flux-lora").join(name)
}

fn transformer() -> FluxTransformer {
    let files = ModelFiles {
        transformer: reference("flux_tiny_dev.weights.safetensors"),
        ae: reference("ae_tiny.weights.safetensors"),
        t5: reference("t5_tiny.weights.safetensors"),
        clip: reference("clip_tiny.weights.safetensors"),
        t5_tokenizer: Default::default(),
        clip_tokenizer: Default::default(),
        model_index: None,
        redux: None,
    };
    model::load_transformer(&files, &LoadOptions::default()).unwrap()
}

/// The cases of MANIFEST section 5.2: name, then (file, strength) pairs.
const CASES: [(&str, &[(&str, f32)]); 7] = [
    ("none", &[]),
    ("kohya_a", &[("lora_a_kohya.safetensors", 1.0)]),
    ("peft_b", &[("lora_b_peft.safetensors", 1.0)]),
    ("xlabs_c", &[("lora_c_xlabs.safetensors", 1.0)]),
    ("kohya_d", &[("lora_d_kohya_single.safetensors", 1.0)]),
    ("kohya_a_x0.5", &[("lora_a_kohya.safetensors", 0.5)]),
    (
        "kohya_a+kohya_d_x0.7",
        &[
            ("lora_a_kohya.safetensors", 1.0),
            ("lora_d_kohya_single.safetensors", 0.7),
        ],
    ),
];

fn adapters(m: &FluxTransformer, loras: &[(&str, f32)]) -> Option<Arc<Adapters>> {
    if loras.is_empty() {
        return None;
    }
    let files: Vec<_> = loras
        .iter()
        .map(|(f, w)| (Arc::new(LoraFile::open(&lora_fixture(f)).unwrap()), *w))
        .collect();
    Some(Arc::new(
        Adapters::new(&files, |n| m.tensor_shape(n)).unwrap(),
    ))
}

/// The transformer on input set `set` of the expected-outputs file (diffusers convention: ids
/// without a batch axis, shared by the batch).
fn forward(m: &FluxTransformer, fx: &HashMap<String, Tensor>, set: &str) -> Tensor {
    let get = |k: &str| fx[&format!("{set}.{k}")].clone();
    let img = get("hidden_states");
    let b = img.dim(0).unwrap();
    let ids = |k: &str| get(k).unsqueeze(0).unwrap().repeat((b, 1, 1)).unwrap();
    m.forward(
        &img,
        &ids("img_ids"),
        &get("encoder_hidden_states"),
        &ids("txt_ids"),
        &get("timestep"),
        &get("pooled_projections"),
        Some(&get("guidance")),
    )
    .unwrap()
}

fn check_cases(merge: bool) {
    let fx = load(&lora_fixture("expected_outputs.safetensors"));
    let mut m = transformer();
    for (case, loras) in CASES {
        let merged = m.set_adapters(adapters(&m, loras), merge).unwrap();
        assert_eq!(merged, merge, "{case}: merged into the weights");
        for set in ["forward", "batch2", "kontext"] {
            let got = forward(&m, &fx, set);
            let want = &fx[&format!("{set}.output.{case}")];
            let (max, rel) = errors(&got, want);
            let (max_tol, rel_tol) = match case {
                "none" => (5e-4, 1e-4),
                _ => (5e-3, 2e-4),
            };
            eprintln!("{case} on {set} (merge {merge}): max abs {max:.1e}, rel L2 {rel:.1e}");
            assert!(
                max <= max_tol && rel <= rel_tol,
                "{case} on {set} (merge {merge}): max abs {max:e}, rel L2 {rel:e}"
            );
        }
    }
}

#[test]
fn lora_cases_match_diffusers_merged_into_the_weights() {
    check_cases(true);
}

#[test]
fn lora_cases_match_diffusers_as_a_run_time_branch() {
    check_cases(false);
}

#[test]
fn merged_weights_match_the_fixture() {
    let m = transformer();
    let a = adapters(&m, &[("lora_a_kohya.safetensors", 1.0)]).unwrap();
    let base = load(&reference("flux_tiny_dev.weights.safetensors"));
    let merged = load(&lora_fixture("merged_kohya_a_bfl.safetensors"));
    assert_eq!(merged.len(), 23);
    for (name, want) in &merged {
        let layer = name.strip_suffix(".weight").unwrap();
        let lora = a
            .get(layer)
            .unwrap_or_else(|| panic!("no LoRA for {layer}"));
        let got = (&base[name] + lora.up.matmul(&lora.down).unwrap()).unwrap();
        let (max, _) = errors(&got, want);
        assert!(max <= 1e-5, "{name}: max abs {max:e}");
    }
}

#[test]
fn switching_lora_sets_restores_the_weights_exactly() {
    let fx = load(&lora_fixture("expected_outputs.safetensors"));
    let mut m = transformer();
    let plain = forward(&m, &fx, "forward");
    let sets: Vec<_> = CASES[1..].iter().map(|(_, l)| adapters(&m, l)).collect();
    m.set_adapters(sets[0].clone(), true).unwrap();
    let first = forward(&m, &fx, "forward");
    for i in 0..100 {
        m.set_adapters(sets[i % sets.len()].clone(), i % 3 != 0)
            .unwrap();
    }
    m.set_adapters(sets[0].clone(), true).unwrap();
    let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(bits(&forward(&m, &fx, "forward")), bits(&first));
    m.set_adapters(None, true).unwrap();
    assert_eq!(bits(&forward(&m, &fx, "forward")), bits(&plain));
}

#[test]
fn bad_loras_are_refused_naming_the_file_and_key() {
    let s = Scratch::new("lora-bad");
    let m = transformer();
    // The base model's own weights: no LoRA key at all.
    let e = LoraFile::open(&reference("flux_tiny_dev.weights.safetensors"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no LoRA layer") && e.contains("e.g."), "{e}");
    // Truncated.
    let bytes = std::fs::read(lora_fixture("lora_a_kohya.safetensors")).unwrap();
    let cut = s.0.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = LoraFile::open(&cut).err().unwrap().to_string();
    assert!(e.contains("truncated"), "{e}");
    let write = |name: &str, tensors: &[(&str, Tensor)]| {
        let path = s.0.join(name);
        let map: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect();
        candle_core::safetensors::save(&map, &path).unwrap();
        path
    };
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let fit = |path: PathBuf, strength: f32| {
        let file = Arc::new(LoraFile::open(&path)?);
        Adapters::new(&[(file, strength)], |n| m.tensor_shape(n)).map(|_| ())
    };
    // A shape for another model (hidden 3072), a block this model lacks, a missing factor.
    let wide = write(
        "wide.safetensors",
        &[
            ("lora_unet_img_in.lora_down.weight", zeros(&[4, 3072])),
            ("lora_unet_img_in.lora_up.weight", zeros(&[64, 4])),
            ("lora_te1_text_model.lora_down.weight", zeros(&[4, 8])),
        ],
    );
    let e = fit(wide.clone(), 1.0).unwrap_err().to_string();
    assert!(
        e.contains("lora_unet_img_in") && e.contains("wide.safetensors"),
        "{e}"
    );
    assert_eq!(LoraFile::open(&wide).unwrap().unknown_keys().len(), 1);
    let deep = write(
        "deep.safetensors",
        &[
            (
                "lora_unet_single_blocks_37_linear2.lora_down.weight",
                zeros(&[4, 320]),
            ),
            (
                "lora_unet_single_blocks_37_linear2.lora_up.weight",
                zeros(&[64, 4]),
            ),
        ],
    );
    let e = fit(deep, 1.0).unwrap_err().to_string();
    assert!(e.contains("single_blocks.37.linear2"), "{e}");
    let half = write(
        "half.safetensors",
        &[("lora_unet_img_in.lora_down.weight", zeros(&[4, 64]))],
    );
    let e = LoraFile::open(&half).err().unwrap().to_string();
    assert!(
        e.contains("lora_unet_img_in") && e.contains("lacks the factors"),
        "{e}"
    );
    // A strength that is not a number.
    let e = fit(lora_fixture("lora_c_xlabs.safetensors"), f32::NAN)
        .unwrap_err()
        .to_string();
    assert!(e.contains("strength") && e.contains("NaN"), "{e}");
}

#[test]
fn streamed_blocks_take_the_lora_as_a_branch_when_built() {
    let fx = load(&lora_fixture("expected_outputs.safetensors"));
    let mut m = transformer();
    m.set_residency(flux_core::model::BlockResidency::streamed(1))
        .unwrap();
    let (case, loras) = CASES[6];
    let merged = m.set_adapters(adapters(&m, loras), true).unwrap();
    assert!(!merged, "streamed blocks cannot hold merged weights");
    let (max, rel) = errors(
        &forward(&m, &fx, "forward"),
        &fx[&format!("forward.output.{case}")],
    );
    assert!(
        max <= 5e-3 && rel <= 2e-4,
        "{case} streamed: {max:e} {rel:e}"
    );
}

#[test]
fn loha_and_lokr_factors_give_their_deltas() {
    let s = Scratch::new("lora-lycoris");
    let m = transformer();
    let randn = |seed: u64, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let mut rng = fastrand::Rng::with_seed(seed);
        let v: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let scalar = |v: f32| Tensor::new(v, &Device::Cpu).unwrap();
    let (a1, b1, a2, b2) = (
        randn(1, &[64, 2]),
        randn(2, &[2, 64]),
        randn(3, &[64, 2]),
        randn(4, &[2, 64]),
    );
    // LoKr on txt_in (64, 48): w1 whole (4, 3), w2 = w2_a (16, 2) · w2_b (2, 16).
    let (w1, w2a, w2b) = (randn(5, &[4, 3]), randn(6, &[16, 2]), randn(7, &[2, 16]));
    let tensors: HashMap<String, Tensor> = [
        ("lora_unet_img_in.hada_w1_a", a1.clone()),
        ("lora_unet_img_in.hada_w1_b", b1.clone()),
        ("lora_unet_img_in.hada_w2_a", a2.clone()),
        ("lora_unet_img_in.hada_w2_b", b2.clone()),
        ("lora_unet_img_in.alpha", scalar(1.0)),
        ("lora_unet_txt_in.lokr_w1", w1.clone()),
        ("lora_unet_txt_in.lokr_w2_a", w2a.clone()),
        ("lora_unet_txt_in.lokr_w2_b", w2b.clone()),
        ("lora_unet_txt_in.alpha", scalar(1.0)),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_string(), t))
    .collect();
    let path = s.0.join("lycoris.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let file = Arc::new(LoraFile::open(&path).unwrap());
    let a = Adapters::new(&[(file, 2.0)], |n| m.tensor_shape(n)).unwrap();
    let delta = |layer: &str| {
        let l = a.get(layer).unwrap();
        l.up.matmul(&l.down).unwrap()
    };
    // LoHa: strength 2 × alpha/r = 1/2 × (a1·b1) ⊙ (a2·b2).
    let want = (a1.matmul(&b1).unwrap() * a2.matmul(&b2).unwrap()).unwrap();
    let (max, _) = errors(&delta("img_in"), &want);
    assert!(max <= 1e-6, "LoHa: max abs {max:e}");
    // LoKr: strength 2 × alpha/r = 1/2 × w1 ⊗ (w2_a·w2_b), the Kronecker product spelled out.
    let (w1, w2) = (values(&w1), values(&w2a.matmul(&w2b).unwrap()));
    let mut kron = vec![0f32; 64 * 48];
    for (i, j, k, l) in (0..4).flat_map(|i| {
        (0..16).flat_map(move |j| (0..3).flat_map(move |k| (0..16).map(move |l| (i, j, k, l))))
    }) {
        kron[(i * 16 + j) * 48 + k * 16 + l] = w1[i * 3 + k] * w2[j * 16 + l];
    }
    let want = Tensor::from_vec(kron, (64, 48), &Device::Cpu).unwrap();
    let (max, _) = errors(&delta("txt_in"), &want);
    assert!(max <= 1e-6, "LoKr: max abs {max:e}");
}
