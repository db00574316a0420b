//! Autoencoder, T5 and CLIP against the reference fixtures through the production loaders.
//! Tolerance: MANIFEST.md's max-abs 5e-5 for the AE, T5 and CLIP.

mod common;

use candle_core::{DType, Tensor};
use common::*;
use flux_core::model::{self, LoadOptions, Variant};
use flux_core::tiny::Layout;

fn ids_u32(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap()
}

#[test]
fn autoencoder_matches_reference_in_both_layouts() {
    let fx = load(&reference("ae_tiny.forward.safetensors"));
    for layout in [Layout::SingleFiles, Layout::Diffusers] {
        let (_s, files) = tiny_model(&format!("ae-{layout:?}"), Variant::Dev, layout);
        let ae = model::load_autoencoder(&files, &LoadOptions::default()).unwrap();
        let moments = ae.moments(&fx["image"]).unwrap();
        assert_encoder_close("encoder moments", &moments, &fx["encoder_moments"]);
        let latent = ae.encode(&fx["image"]).unwrap();
        assert_encoder_close("latent (mean, scaled, shifted)", &latent, &fx["latent"]);
        // Encoding is deterministic: the mean, never a sample.
        assert_eq!(errors(&ae.encode(&fx["image"]).unwrap(), &latent).0, 0.0);
        assert_encoder_close(
            "decoded",
            &ae.decode(&fx["latent"]).unwrap(),
            &fx["decoded"],
        );
        assert_encoder_close(
            "random latent decoded",
            &ae.decode(&fx["random_latent"]).unwrap(),
            &fx["random_latent_decoded"],
        );
    }
}

#[test]
fn diffusers_vae_reproduces_diffusers_outputs() {
    let fx = load(&diffusers("ae_tiny.diffusers_forward.safetensors"));
    let (_s, files) = tiny_model("vae-diffusers", Variant::Dev, Layout::Diffusers);
    let ae = model::load_autoencoder(&files, &LoadOptions::default()).unwrap();
    assert_encoder_close(
        "diffusers moments",
        &ae.moments(&fx["image"]).unwrap(),
        &fx["encoder_moments"],
    );
    assert_encoder_close(
        "diffusers latent",
        &ae.encode(&fx["image"]).unwrap(),
        &fx["latent"],
    );
    assert_encoder_close(
        "diffusers decoded",
        &ae.decode(&fx["random_latent"]).unwrap(),
        &fx["random_latent_decoded"],
    );
}

#[test]
fn t5_and_clip_match_reference_in_both_layouts() {
    let t5 = load(&reference("t5_tiny.forward.safetensors"));
    let clip = load(&reference("clip_tiny.forward.safetensors"));
    for layout in [Layout::SingleFiles, Layout::Diffusers] {
        let (_s, files) = tiny_model(&format!("text-{layout:?}"), Variant::Dev, layout);
        let mut text = model::load_text_encoders(&files, &LoadOptions::default()).unwrap();
        let hidden = text.t5.forward_ids(&ids_u32(&t5["input_ids"])).unwrap();
        assert_encoder_close("t5 last_hidden_state", &hidden, &t5["last_hidden_state"]);
        let ids = ids_u32(&clip["input_ids"]);
        assert_encoder_close(
            "clip pooler_output",
            &text.clip.forward_ids(&ids).unwrap(),
            &clip["pooler_output"],
        );
        assert_encoder_close(
            "clip last_hidden_state",
            &text.clip.hidden_states(&ids).unwrap(),
            &clip["last_hidden_state"],
        );
    }
}

#[test]
fn t5_config_inferred_from_tensors_equals_the_fixture_config() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference("t5_tiny.config.json")).unwrap())
            .unwrap();
    let from_json = flux_core::text::parse_t5_config(&json).unwrap();
    let (_s, files) = tiny_model("t5-config", Variant::Dev, Layout::SingleFiles);
    let set =
        flux_core::model::store::WeightSet::open("T5", std::slice::from_ref(&files.t5)).unwrap();
    let w =
        flux_core::model::weights::ModelWeights::new(set, flux_core::model::names::Naming::Native);
    let inferred = flux_core::text::infer_t5_config(&w).unwrap();
    assert_eq!(
        (
            inferred.vocab_size,
            inferred.d_model,
            inferred.d_kv,
            inferred.d_ff,
            inferred.num_layers,
            inferred.num_heads
        ),
        (
            from_json.vocab_size,
            from_json.d_model,
            from_json.d_kv,
            from_json.d_ff,
            from_json.num_layers,
            from_json.num_heads
        )
    );
    assert_eq!(
        inferred.relative_attention_num_buckets,
        from_json.relative_attention_num_buckets
    );
    assert_eq!(
        inferred.relative_attention_max_distance,
        from_json.relative_attention_max_distance
    );
    assert_eq!(
        inferred.feed_forward_proj.gated,
        from_json.feed_forward_proj.gated
    );
}

#[test]
fn tokenizers_frame_pad_and_truncate() {
    let (_s, files) = tiny_model("tokenizers", Variant::Dev, Layout::SingleFiles);
    let t5 = flux_core::text::PromptTokenizer::t5(&files.t5_tokenizer).unwrap();
    let ids = t5.encode("the red cat", 8).unwrap();
    assert_eq!(ids.len(), 8);
    let eos = ids.iter().position(|&i| i == 1).expect("</s> present");
    assert!(eos >= 3, "three words before </s>: {ids:?}");
    assert!(
        ids[eos + 1..].iter().all(|&i| i == 0),
        "padded with <pad>: {ids:?}"
    );
    let long = t5.encode(&"the ".repeat(50), 8).unwrap();
    assert_eq!(
        (long.len(), long[7]),
        (8, 1),
        "truncated with </s> kept: {long:?}"
    );

    let clip = flux_core::text::PromptTokenizer::clip(&files.clip_tokenizer).unwrap();
    let ids = clip.encode("The Other", 77).unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[0], 98, "<|startoftext|> first");
    let eos = ids.iter().position(|&i| i == 99).unwrap();
    assert!(eos > 2 && ids[1..eos].iter().all(|&i| i < 98), "{ids:?}");
    assert!(ids[eos..].iter().all(|&i| i == 99));
    // Lower-casing and BPE merges: "the" is one merged word piece ("th" + "e</w>" -> merge order).
    assert_eq!(
        clip.encode("the", 77).unwrap()[..3],
        clip.encode("THE", 77).unwrap()[..3]
    );
    assert!(flux_core::text::PromptTokenizer::t5(std::path::Path::new(
        "/nonexistent/tokenizer.json"
    ))
    .is_err());
}
