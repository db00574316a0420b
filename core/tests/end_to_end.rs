//! Text-to-image from prompts on the tiny model in both real layouts, and the errors users get
//! for broken weight files.

mod common;

use std::path::Path;

use common::*;
use flux_core::image::export;
use flux_core::model::{FluxModel, LoadOptions, Variant};
use flux_core::pipeline::{self, TextToImage};
use flux_core::tiny::Layout;

fn request(seed: u64) -> TextToImage {
    let mut r = TextToImage::new("a red lighthouse at dusk", seed);
    r.width = 64;
    r.height = 48;
    r.steps = Some(3);
    r.t5_len = Some(32);
    r
}

fn png_for(files: &flux_core::model::ModelFiles, seed: u64) -> Vec<u8> {
    let mut model = FluxModel::load(files, &LoadOptions::default()).unwrap();
    let out = pipeline::generate(&mut model, &request(seed), &mut pipeline::no_hook()).unwrap();
    assert_eq!((out.image.width, out.image.height), (64, 48));
    export::encode_png(&out.image, Some(&out.meta)).unwrap()
}

#[test]
fn both_layouts_give_the_same_png_for_a_seed() {
    for variant in [Variant::Dev, Variant::Schnell] {
        let (_a, single) = tiny_model(
            &format!("e2e-single-{}", variant.name()),
            variant,
            Layout::SingleFiles,
        );
        let (_b, diff) = tiny_model(
            &format!("e2e-diffusers-{}", variant.name()),
            variant,
            Layout::Diffusers,
        );
        let a = png_for(&single, 7);
        assert_eq!(a, png_for(&diff, 7), "{variant:?}: layouts differ");
        assert_eq!(a, png_for(&single, 7), "{variant:?}: not deterministic");
        assert_ne!(
            a,
            png_for(&single, 8),
            "{variant:?}: the seed changes nothing"
        );
        let text = export::read_png_text(&a).unwrap();
        assert!(
            text.contains(&("variant".into(), variant.name().into())),
            "{text:?}"
        );
    }
}

#[test]
fn prompt_changes_the_image_and_variant_defaults_apply() {
    let (_s, files) = tiny_model("e2e-prompt", Variant::Dev, Layout::SingleFiles);
    let mut model = FluxModel::load(&files, &LoadOptions::default()).unwrap();
    assert_eq!(model.info.variant, Variant::Dev);
    assert!(!model.info.kontext);
    let a = pipeline::generate(&mut model, &request(1), &mut pipeline::no_hook()).unwrap();
    let mut other = request(1);
    other.prompt = "a blue castle".into();
    let b = pipeline::generate(&mut model, &other, &mut pipeline::no_hook()).unwrap();
    assert_ne!(a.image, b.image);
    assert_eq!((a.meta.steps, a.meta.guidance), (3, 3.5));
    let mut bad = request(1);
    bad.width = 70;
    let e = pipeline::generate(&mut model, &bad, &mut pipeline::no_hook())
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiples of 16") && e.contains("64x48"), "{e}");
}

fn load_err(files: &flux_core::model::ModelFiles) -> String {
    match FluxModel::load(files, &LoadOptions::default()) {
        Ok(_) => panic!("loading succeeded"),
        Err(e) => e.to_string(),
    }
}

/// Rewrites `path` keeping tensors for which `keep` holds, replacing one tensor's data if asked.
fn rewrite(path: &Path, keep: impl Fn(&str) -> bool, reshape: Option<&str>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| keep(n))
        .map(|(n, v)| {
            let mut shape = v.shape().to_vec();
            let mut data = v.data().to_vec();
            if reshape == Some(n.as_str()) {
                shape[0] -= 1;
                data.truncate(shape.iter().product::<usize>() * 4);
            }
            (n, v.dtype(), shape, data)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn broken_weight_files_give_errors_naming_file_and_tensor() {
    let (_s, files) = tiny_model("broken", Variant::Dev, Layout::SingleFiles);
    let t = files.transformer.clone();
    let original = std::fs::read(&t).unwrap();
    let name = t.display().to_string();

    std::fs::write(&t, &original[..original.len() - 100]).unwrap();
    let e = load_err(&files);
    assert!(e.contains(&name) && e.contains("truncated"), "{e}");

    std::fs::write(&t, b"not a safetensors file at all").unwrap();
    let e = load_err(&files);
    assert!(
        e.contains(&name) && e.contains("not a valid safetensors"),
        "{e}"
    );

    std::fs::write(&t, &original).unwrap();
    rewrite(&t, |n| n != "double_blocks.1.txt_mlp.2.bias", None);
    let e = load_err(&files);
    assert!(
        e.contains(&name) && e.contains("double_blocks.1.txt_mlp.2.bias") && e.contains("missing"),
        "{e}"
    );

    std::fs::write(&t, &original).unwrap();
    rewrite(&t, |_| true, Some("single_blocks.0.linear2.weight"));
    let e = load_err(&files);
    assert!(
        e.contains(&name) && e.contains("single_blocks.0.linear2.weight") && e.contains("shape"),
        "{e}"
    );

    std::fs::write(&t, &original).unwrap();
    std::fs::remove_file(&files.ae).unwrap();
    let e = load_err(&files);
    assert!(e.contains(&files.ae.display().to_string()), "{e}");

    let mut no_tok = files.clone();
    no_tok.t5_tokenizer = files.t5_tokenizer.with_file_name("missing.json");
    let e = flux_core::model::load_text_encoders(&no_tok, &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.json") && e.contains("not found"), "{e}");
}

#[test]
fn sharded_index_naming_a_missing_tensor_is_an_error() {
    let (_s, files) = tiny_model("broken-index", Variant::Dev, Layout::Diffusers);
    let index = files.t5.join("model.safetensors.index.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    json["weight_map"]["encoder.block.9.layer.0.SelfAttention.q.weight"] =
        "model-00001-of-00002.safetensors".into();
    std::fs::write(&index, json.to_string()).unwrap();
    let e = flux_core::model::load_text_encoders(&files, &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("encoder.block.9.layer.0.SelfAttention.q.weight")
            && e.contains("model-00001-of-00002"),
        "{e}"
    );
}

#[test]
fn unknown_folder_layout_is_an_error() {
    let s = Scratch::new("unknown-layout");
    let e = FluxModel::load_folder(&s.0, &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown model layout"), "{e}");
}
