//! FLUX transformer forward against the reference fixtures (files A, A2, B and the diffusers
//! conversions), loaded through the production loader. Tolerance: MANIFEST.md's max-abs 5e-4 and
//! relative L2 1e-4 (the reference evaluates the 1000·t embedding in f32, ~1e-4 noise).

mod common;

use candle_core::{Device, Tensor};
use common::*;
use flux_core::model::{self, layers, LoadOptions, ModelFiles};

fn files_with_transformer(path: std::path::PathBuf) -> ModelFiles {
    ModelFiles {
        transformer: path,
        ae: reference("ae_tiny.weights.safetensors"),
        t5: reference("t5_tiny.weights.safetensors"),
        clip: reference("clip_tiny.weights.safetensors"),
        t5_tokenizer: Default::default(),
        clip_tokenizer: Default::default(),
        model_index: None,
        redux: None,
    }
}

fn forward(files: &ModelFiles, fx: &std::collections::HashMap<String, Tensor>) -> Tensor {
    let m = model::load_transformer(files, &LoadOptions::default()).unwrap();
    let ids = |k: &str| {
        let t = &fx[k];
        if t.rank() == 2 {
            t.unsqueeze(0).unwrap()
        } else {
            t.clone()
        }
    };
    let get = |a: &str, b: &str| fx.get(a).or_else(|| fx.get(b)).cloned();
    let img = get("img", "hidden_states").unwrap();
    let txt = get("txt", "encoder_hidden_states").unwrap();
    let b = img.dim(0).unwrap();
    // diffusers stores ids without the batch axis; repeat them over the batch.
    let batched = |k: &str| {
        let t = ids(k);
        let n = t.dim(0).unwrap();
        t.repeat((b / n, 1, 1)).unwrap()
    };
    let (img_ids, txt_ids) = (batched("img_ids"), batched("txt_ids"));
    let t = get("timesteps", "timestep").unwrap();
    let y = get("y", "pooled_projections").unwrap();
    m.forward(&img, &img_ids, &txt, &txt_ids, &t, &y, fx.get("guidance"))
        .unwrap()
}

#[test]
fn dev_forward_matches_reference() {
    let fx = load(&reference("flux_tiny_dev.forward.safetensors"));
    let files = files_with_transformer(reference("flux_tiny_dev.weights.safetensors"));
    assert_transformer_close("dev forward", &forward(&files, &fx), &fx["output"]);
}

#[test]
fn schnell_forward_matches_reference() {
    let fx = load(&reference("flux_tiny_schnell.forward.safetensors"));
    let files = files_with_transformer(reference("flux_tiny_schnell.weights.safetensors"));
    assert_transformer_close("schnell forward", &forward(&files, &fx), &fx["output"]);
}

#[test]
fn dev_batch_of_two_with_per_sample_t_and_guidance() {
    let fx = load(&reference("flux_tiny_dev.forward_batch2.safetensors"));
    let files = files_with_transformer(reference("flux_tiny_dev.weights.safetensors"));
    assert_transformer_close("dev batch 2", &forward(&files, &fx), &fx["output"]);
}

#[test]
fn intermediates_match_reference() {
    let fx = load(&reference("flux_tiny_dev.forward.safetensors"));
    let inter = load(&reference(
        "flux_tiny_dev.forward_intermediates.safetensors",
    ));
    let m = model::load_transformer(
        &files_with_transformer(reference("flux_tiny_dev.weights.safetensors")),
        &LoadOptions::default(),
    )
    .unwrap();
    let vec = m
        .conditioning_vector(&fx["timesteps"], &fx["y"], Some(&fx["guidance"]))
        .unwrap();
    assert_transformer_close("vec", &vec, &inter["vec"]);
    let pe = m.rope(&fx["txt_ids"], &fx["img_ids"]).unwrap();
    assert_encoder_close("pe", &pe, &inter["pe"]);
    let temb = layers::timestep_embedding(&fx["timesteps"], 256, candle_core::DType::F32).unwrap();
    assert_transformer_close("time_in.input", &temb, &inter["time_in.input"]);
}

#[test]
fn dev_model_without_guidance_is_an_error() {
    let fx = load(&reference("flux_tiny_dev.forward.safetensors"));
    let m = model::load_transformer(
        &files_with_transformer(reference("flux_tiny_dev.weights.safetensors")),
        &LoadOptions::default(),
    )
    .unwrap();
    let err = m
        .forward(
            &fx["img"],
            &fx["img_ids"],
            &fx["txt"],
            &fx["txt_ids"],
            &fx["timesteps"],
            &fx["y"],
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("guidance"), "{err}");
}

#[test]
fn diffusers_layouts_reproduce_diffusers_outputs() {
    let fx_all = load(&diffusers("flux_tiny_dev.diffusers_forward.safetensors"));
    for folder in ["transformer", "transformer_sharded"] {
        let files = files_with_transformer(diffusers("flux_tiny_dev_diffusers").join(folder));
        for case in ["forward", "batch2"] {
            let fx = fx_all
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&format!("{case}."))
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect();
            assert_transformer_close(
                &format!("{folder} {case}"),
                &forward(&files, &fx),
                &fx_all[&format!("{case}.output")],
            );
        }
    }
    let fx_all = load(&diffusers(
        "flux_tiny_schnell.diffusers_forward.safetensors",
    ));
    let fx = fx_all
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("forward.")
                .map(|k| (k.to_string(), v.clone()))
        })
        .collect();
    let files =
        files_with_transformer(diffusers("flux_tiny_schnell_diffusers").join("transformer"));
    assert_transformer_close(
        "schnell diffusers",
        &forward(&files, &fx),
        &fx_all["forward.output"],
    );
}

#[test]
fn flux_math_embeddings_and_rope() {
    let fx = load(&reference("flux_math.safetensors"));
    let dt = candle_core::DType::F32;
    let temb = layers::timestep_embedding(&fx["timestep_embedding.t"], 256, dt).unwrap();
    assert_transformer_close("timestep embedding", &temb, &fx["timestep_embedding.out"]);
    let gemb = layers::timestep_embedding(&fx["guidance_embedding.g"], 256, dt).unwrap();
    assert_transformer_close("guidance embedding", &gemb, &fx["guidance_embedding.out"]);
    let tiny = layers::rope_table(&fx["rope.ids"], &[4, 6, 6], 10_000.0).unwrap();
    assert_encoder_close("rope tiny", &tiny, &fx["rope.pe_tiny"]);
    let real = layers::rope_table(
        &fx["rope.ids"],
        &model::transformer::default_axes(128),
        10_000.0,
    )
    .unwrap();
    assert_encoder_close("rope real axes", &real, &fx["rope.pe_real_axes_16_56_56"]);
    let pe = layers::rope_table(&fx["rope.ids"], &[4, 6, 6], 10_000.0).unwrap();
    assert_encoder_close(
        "apply_rope q",
        &layers::apply_rope(&fx["apply_rope.q"], &pe).unwrap(),
        &fx["apply_rope.q_out"],
    );
    assert_encoder_close(
        "apply_rope k",
        &layers::apply_rope(&fx["apply_rope.k"], &pe).unwrap(),
        &fx["apply_rope.k_out"],
    );
}

#[test]
fn flux_math_schedules() {
    let fx = load(&reference("flux_math.safetensors"));
    let mut checked = 0;
    for (name, want) in &fx {
        let Some(spec) = name.strip_prefix("schedule.") else {
            continue;
        };
        // schedule.steps{n}.seq{L}.shift{0|1}
        let parts: Vec<&str> = spec.split('.').collect();
        let n: usize = parts[0].trim_start_matches("steps").parse().unwrap();
        let l: usize = parts[1].trim_start_matches("seq").parse().unwrap();
        let shift = parts[2] == "shift1";
        let got = flux_core::pipeline::schedule::timesteps(n, l, shift);
        let got = Tensor::new(got.as_slice(), &Device::Cpu).unwrap();
        // Evaluated like the reference's f32 tensor arithmetic: a few ulps at most.
        let (max, _) = errors(&got, want);
        assert!(max <= 2e-7, "{name}: max abs {max:e}");
        checked += 1;
    }
    assert_eq!(checked, 8);
}
