//! Quantized files as users download them: GGUF (city96's FLUX conversions, llama.cpp's T5
//! encoder) against `tests/fixtures/flux-gguf` (MANIFEST.md); fp8 e4m3fn files, plain, scaled and
//! ComfyUI's all-in-one checkpoint, against the same weights upcast. Tolerances are the manifest's (section 7): the engine
//! dequantizes exactly and computes in f32, so a forward matches the reference run on the same
//! dequantized weights within float rounding (small_dev rel L2 1e-5; tiny_dev 1e-4, whose
//! fan-in-scaled weights amplify the f32 timestep embedding's noise; T5 1e-5 and max abs 1e-4),
//! and the float32 model within the quantization error (the manifest's secondary column).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::*;
use flux_core::model::store::WeightSet;
use flux_core::model::{self, LoadOptions, ModelFiles, Variant};
use flux_core::tiny::Layout;

fn gguf(name: &str) -> PathBuf {
    fixtures().join("flux-gguf").join(name)
}

fn transformer_forward(path: &Path, fx: &HashMap<String, Tensor>) -> Tensor {
    let files = ModelFiles::transformer_only(path.to_path_buf());
    let m = model::load_transformer(&files, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    forward_fixture(&m, fx, "img", "img_ids")
}

fn assert_rel(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let (max, rel) = errors(got, want);
    assert!(
        rel <= tol,
        "{what}: rel L2 {rel:e} > {tol:e} (max abs {max:e})"
    );
}

/// (type, secondary tolerance against the float32 model) per file; the manifest's section 7.
const SMALL_DEV: [(&str, f32); 5] = [
    ("BF16", 1e-5),
    ("Q8_0", 0.00028),
    ("Q6_K", 0.00095),
    ("Q4_K", 0.0038),
    ("Q4_0", 0.0044),
];

#[test]
fn small_dev_of_every_type_matches_the_forward_on_its_dequantized_weights() {
    let fx = load(&gguf("small_dev.expected.safetensors"));
    for (ty, secondary) in SMALL_DEV {
        let out = transformer_forward(&gguf(&format!("small_dev-{ty}.gguf")), &fx);
        assert_rel(ty, &out, &fx[&format!("output.{ty}")], 1e-5);
        assert_rel(&format!("{ty} vs f32"), &out, &fx["output.f32"], secondary);
    }
}

#[test]
fn tiny_dev_f16_and_q8_0_match_the_reference() {
    let fx = load(&gguf("tiny_dev.expected.safetensors"));
    for (ty, secondary) in [("F16", 0.00092), ("Q8_0", 0.014)] {
        let out = transformer_forward(&gguf(&format!("tiny_dev-{ty}.gguf")), &fx);
        assert_rel(ty, &out, &fx[&format!("output.{ty}")], 1e-4);
        assert_rel(&format!("{ty} vs f32"), &out, &fx["output.f32"], secondary);
    }
}

/// Head, tail and (sum, sum of squares) of `values` against a digest file's entries for `key`.
fn assert_digest(digest: &HashMap<String, Tensor>, key: &str, values: &[f32]) {
    let head = values_of(&digest[&format!("{key}/head")]);
    let tail = values_of(&digest[&format!("{key}/tail")]);
    assert_eq!(&values[..head.len()], head.as_slice(), "{key}: head");
    assert_eq!(
        &values[values.len() - tail.len()..],
        tail.as_slice(),
        "{key}: tail"
    );
    let sums = digest[&format!("{key}/sum_sumsq")]
        .to_vec1::<f64>()
        .unwrap();
    let sum: f64 = values.iter().map(|&v| v as f64).sum();
    let sumsq: f64 = values.iter().map(|&v| (v as f64).powi(2)).sum();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(
        close(sum, sums[0]) && close(sumsq, sums[1]),
        "{key}: sums {sum} {sumsq} vs {sums:?}"
    );
}

fn values_of(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn every_tensor_dequantizes_exactly_as_gguf_py_does() {
    let files = [
        ("small_dev", SMALL_DEV.map(|(t, _)| t).to_vec()),
        ("tiny_dev", vec!["F16", "Q8_0"]),
        ("t5_tiny", vec!["F16", "Q8_0"]),
    ];
    let mut compact = 0;
    for (model, types) in files {
        let digest = load(&gguf(&format!("{model}.dequant_digest.safetensors")));
        for ty in types {
            let path = gguf(&format!("{model}-{ty}.gguf"));
            let set = WeightSet::open(model, std::slice::from_ref(&path)).unwrap();
            let prefix = format!("{ty}/");
            let mut names: Vec<&str> = digest
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix("/head"))
                .collect();
            names.sort();
            assert!(!names.is_empty(), "{ty}: no digests");
            for name in names {
                let key = format!("{ty}/{name}");
                // The dense load (candle's dequantization) …
                let dense = set.load(name, DType::F32, &Device::Cpu).unwrap();
                assert_digest(&digest, &key, &values_of(&dense));
                // … and the compact weight's row reader, which the CPU kernels use.
                let Some(w) = set.load_compact(name, DType::F32, &Device::Cpu).unwrap() else {
                    continue;
                };
                compact += 1;
                let (rows, inputs) = w.shape();
                let reader = w.rows().unwrap();
                let mut all = vec![0f32; rows * inputs];
                for (r, row) in all.chunks_exact_mut(inputs).enumerate() {
                    reader.read(r, 0..inputs, row);
                }
                assert_digest(&digest, &key, &all);
            }
        }
    }
    assert!(compact > 100, "only {compact} compact weights checked");
}

#[test]
fn compact_weights_occupy_the_files_size_not_the_upcast_one() {
    let opts = LoadOptions::default();
    for ty in ["Q4_0", "Q8_0"] {
        let path = gguf(&format!("small_dev-{ty}.gguf"));
        let files = ModelFiles::transformer_only(path.clone());
        let set = WeightSet::open("transformer", std::slice::from_ref(&path)).unwrap();
        let loaded = set.loaded_bytes(DType::F32, true);
        let file = std::fs::metadata(&path).unwrap().len();
        // The file, plus linear1 (1792 × 256 here) expanded to f32 while it runs.
        let scratch = 1792 * 256 * 4;
        assert!(
            loaded <= file + scratch && loaded > file - file / 10 + scratch,
            "{ty}: {loaded} bytes loaded from a {file}-byte file"
        );
        assert!(
            set.loaded_bytes(DType::F32, false) > 3 * file,
            "{ty}: upcast size"
        );
        // The transformer loads from it (the estimate is what the runtime's budget reads).
        model::load_transformer(&files, &opts).unwrap();
    }
}

/// A fixture's token ids (int64) as the encoder takes them.
fn token_ids(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::U32))
        .and_then(|t| t.to_vec1())
        .unwrap()
}

#[test]
fn t5_encoder_gguf_matches_the_reference() {
    let fx = load(&gguf("t5_tiny.expected.safetensors"));
    let ids = token_ids(&fx["input_ids"]);
    let (_s, mut files) = tiny_model("t5-gguf", Variant::Dev, Layout::SingleFiles);
    for (ty, secondary) in [("F16", 0.00069), ("Q8_0", 0.0047)] {
        files.t5 = gguf(&format!("t5_tiny-{ty}.gguf"));
        let mut text = model::load_text_encoders(&files, &LoadOptions::default()).unwrap();
        let hidden = text.t5.forward_ids(&ids).unwrap();
        let want = &fx[&format!("last_hidden_state.{ty}")];
        let (max, rel) = errors(&hidden, want);
        assert!(
            rel <= 1e-5 && max <= 1e-4,
            "T5 {ty}: rel L2 {rel:e}, max abs {max:e}"
        );
        assert_rel(
            &format!("T5 {ty} vs f32"),
            &hidden,
            &fx["last_hidden_state.f32"],
            secondary,
        );
    }
}

/// The offset just past tensor `name`'s name in a GGUF header (its dims count follows).
fn tensor_info(bytes: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{name} not in the header"));
    at + needle.len()
}

/// A copy of fixture `name` changed by `edit`, in a scratch folder.
fn edited(s: &Scratch, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(gguf(name)).unwrap();
    edit(&mut bytes);
    let path = s.0.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load_error(path: &Path) -> String {
    let files = ModelFiles::transformer_only(path.to_path_buf());
    match model::load_transformer(&files, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_files_fail_with_errors_naming_the_file_and_tensor() {
    let s = Scratch::new("gguf-bad");
    let qkv = "double_blocks.0.img_attn.qkv.weight";
    let proj = "double_blocks.1.txt_attn.proj.weight";

    // A type the engine does not read (IQ4_NL, id 20): refused, naming the tensor and type.
    let path = edited(&s, "tiny_dev-Q8_0.gguf", |b| {
        let at = tensor_info(b, qkv) + 4 + 2 * 8;
        b[at..at + 4].copy_from_slice(&20u32.to_le_bytes());
    });
    let e = load_error(&path);
    assert!(
        e.contains(qkv) && e.contains("IQ4_NL") && e.contains("tiny_dev-Q8_0.gguf"),
        "{e}"
    );

    // Truncated tensor data: the last tensors run past the end.
    let path = edited(&s, "small_dev-Q4_K.gguf", |b| b.truncate(b.len() - 1000));
    let e = load_error(&path);
    assert!(
        e.contains("truncated") && e.contains("small_dev-Q4_K.gguf"),
        "{e}"
    );

    // A truncated header.
    let path = edited(&s, "tiny_dev-F16.gguf", |b| b.truncate(200));
    let e = load_error(&path);
    assert!(
        e.contains("not a valid GGUF file") && e.contains("truncated"),
        "{e}"
    );

    // A shape that disagrees with the rest of the model: proj as (32, 64) instead of (64, 64).
    let path = edited(&s, "tiny_dev-Q8_0.gguf", |b| {
        let at = tensor_info(b, proj) + 4 + 8;
        b[at..at + 8].copy_from_slice(&32u64.to_le_bytes());
    });
    let e = load_error(&path);
    assert!(
        e.contains(proj) && e.contains("[32, 64]") && e.contains("[64, 64]"),
        "{e}"
    );

    // An architecture that is not FLUX.
    let path = edited(&s, "tiny_dev-F16.gguf", |b| {
        let at = tensor_info(b, "general.architecture") + 4 + 8;
        b[at..at + 4].copy_from_slice(b"sdxl");
    });
    let e = load_error(&path);
    assert!(
        e.contains("'sdxl'") && e.contains("not a FLUX transformer"),
        "{e}"
    );

    // A row length that is not a whole number of blocks.
    let path = edited(&s, "tiny_dev-Q8_0.gguf", |b| {
        let at = tensor_info(b, qkv) + 4;
        b[at..at + 8].copy_from_slice(&40u64.to_le_bytes());
    });
    let e = load_error(&path);
    assert!(e.contains(qkv) && e.contains("blocks"), "{e}");
}

#[test]
fn a_folder_of_gguf_files_is_found_and_generates() {
    let (s, files) = tiny_model("gguf-folder", Variant::Dev, Layout::SingleFiles);
    let dir = files.transformer.parent().unwrap().to_path_buf();
    std::fs::remove_file(&files.transformer).unwrap();
    std::fs::remove_file(&files.t5).unwrap();
    // Two transformer quantizations (the first by name is taken) and the T5 encoder.
    for name in [
        "tiny_dev-F16.gguf",
        "tiny_dev-Q8_0.gguf",
        "t5_tiny-Q8_0.gguf",
    ] {
        std::fs::copy(gguf(name), dir.join(name)).unwrap();
    }
    let found = ModelFiles::from_folder(&dir).unwrap();
    assert_eq!(found.transformer, dir.join("tiny_dev-F16.gguf"));
    assert_eq!(found.t5, dir.join("t5_tiny-Q8_0.gguf"));
    let mut m = model::FluxModel::load(&found, &LoadOptions::default()).unwrap();
    let mut req = flux_core::pipeline::TextToImage::new("a lighthouse", 7);
    (req.width, req.height, req.steps) = (64, 64, Some(2));
    let out =
        flux_core::pipeline::generate(&mut m, &req, &mut flux_core::pipeline::no_hook()).unwrap();
    assert_eq!((out.image.width, out.image.height), (64, 64));
    drop(s);
}

/// fp8 e4m3fn copies of a safetensors file: every 2-D weight stored as fp8 (with a ComfyUI
/// `scale_weight` of max|w| / 448 when `scaled`, and the `scaled_fp8` marker), and the f32
/// file holding exactly the values the fp8 file stands for (the upcast reference).
fn fp8_copy(src: &Path, dir: &Path, scaled: bool) -> (PathBuf, PathBuf) {
    let mut fp8 = HashMap::new();
    let mut upcast = HashMap::new();
    for (name, t) in load(src) {
        if t.rank() != 2 || !name.ends_with(".weight") {
            upcast.insert(name.clone(), t.clone());
            fp8.insert(name, t);
            continue;
        }
        let scale = match scaled {
            true => {
                t.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    / 448.0
            }
            false => 1.0,
        };
        let q = (t / scale as f64).unwrap().to_dtype(DType::F8E4M3).unwrap();
        let back = (q.to_dtype(DType::F32).unwrap() * scale as f64).unwrap();
        upcast.insert(name.clone(), back);
        if scaled {
            let layer = name.trim_end_matches(".weight");
            fp8.insert(
                format!("{layer}.scale_weight"),
                Tensor::new(&[scale], &Device::Cpu).unwrap(),
            );
        }
        fp8.insert(name, q);
    }
    if scaled {
        fp8.insert(
            "scaled_fp8".into(),
            Tensor::zeros(2, DType::F8E4M3, &Device::Cpu).unwrap(),
        );
    }
    let stem = src.file_stem().unwrap().to_string_lossy();
    let kind = if scaled { "scaled" } else { "plain" };
    let (a, b) = (
        dir.join(format!("{stem}-fp8-{kind}.safetensors")),
        dir.join(format!("{stem}-upcast-{kind}.safetensors")),
    );
    candle_core::safetensors::save(&fp8, &a).unwrap();
    candle_core::safetensors::save(&upcast, &b).unwrap();
    (a, b)
}

#[test]
fn fp8_files_stay_8_bit_and_match_their_upcast_values() {
    let s = Scratch::new("fp8");
    let fx = load(&reference("flux_tiny_dev.forward.safetensors"));
    let t5_fx = load(&reference("t5_tiny.forward.safetensors"));
    let ids = token_ids(&t5_fx["input_ids"]);
    let (_m, mut files) = tiny_model("fp8-text", Variant::Dev, Layout::SingleFiles);
    for scaled in [false, true] {
        let (fp8, upcast) = fp8_copy(
            &reference("flux_tiny_dev.weights.safetensors"),
            &s.0,
            scaled,
        );
        let set = WeightSet::open("transformer", std::slice::from_ref(&fp8)).unwrap();
        let stored = set.loaded_bytes(DType::F32, true);
        assert!(
            stored * 3 < set.loaded_bytes(DType::F32, false),
            "fp8 weights counted upcast"
        );
        let got = transformer_forward(&fp8, &fx);
        let want = transformer_forward(&upcast, &fx);
        assert_rel(&format!("fp8 scaled={scaled}"), &got, &want, 1e-5);
        // The T5 encoder (loaded dense) applies the same scales.
        let (t5_fp8, t5_upcast) = fp8_copy(&reference("t5_tiny.weights.safetensors"), &s.0, scaled);
        let mut hidden = Vec::new();
        for t5 in [t5_fp8, t5_upcast] {
            files.t5 = t5;
            let mut text = model::load_text_encoders(&files, &LoadOptions::default()).unwrap();
            hidden.push(text.t5.forward_ids(&ids).unwrap());
        }
        assert_rel(
            &format!("T5 fp8 scaled={scaled}"),
            &hidden[0],
            &hidden[1],
            1e-6,
        );
    }
}

/// Writes in-memory tensors as a FLUX GGUF of `dtype`.
fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    dtype: candle_core::quantized::GgmlDType,
) {
    let shapes: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.dims().to_vec()))
        .collect();
    model::gguf::write_flux(path, &shapes, dtype, |i| Ok(tensors[i].1.clone())).unwrap();
}

#[test]
fn written_gguf_files_load_back_as_city96_would_write_them() {
    // small_dev's values (exact in its BF16 file), written again as Q8_0 by the engine's writer.
    let s = Scratch::new("gguf-write");
    let set = WeightSet::open("small_dev", &[gguf("small_dev-BF16.gguf")]).unwrap();
    let mut names = set.names();
    names.sort();
    let tensors: Vec<(String, Tensor)> = names
        .into_iter()
        .map(|n| {
            let t = set.load(&n, DType::F32, &Device::Cpu).unwrap();
            (n, t)
        })
        .collect();
    let path = s.0.join("small_dev-Q8_0.gguf");
    write_tensors(&path, &tensors, candle_core::quantized::GgmlDType::Q8_0);
    let header = model::gguf::read_header(&path).unwrap();
    assert_eq!(header.architecture(), Some("flux"));
    let qkv = &header.tensors["double_blocks.0.img_attn.qkv.weight"];
    assert_eq!(
        (qkv.shape.as_slice(), qkv.dtype),
        (&[768, 256][..], candle_core::quantized::GgmlDType::Q8_0)
    );
    assert_eq!(
        header.tensors["img_in.weight"].dtype,
        candle_core::quantized::GgmlDType::F16
    );
    let fx = load(&gguf("small_dev.expected.safetensors"));
    let out = transformer_forward(&path, &fx);
    // candle's Q8_0 blocks equal ggml's, and the in/out layers' bf16 values are exact in F16
    // but for subnormals: the forward is the fixture's Q8_0 one within float rounding.
    assert_rel("written Q8_0", &out, &fx["output.Q8_0"], 1e-5);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn generate(files: &ModelFiles) -> Vec<u8> {
    let mut m = model::FluxModel::load(files, &LoadOptions::default()).unwrap();
    let mut req = flux_core::pipeline::TextToImage::new("a lighthouse", 7);
    (req.width, req.height, req.steps) = (64, 64, Some(2));
    let out = flux_core::pipeline::generate(&mut m, &req, &mut flux_core::pipeline::no_hook());
    out.unwrap().image.data
}

#[test]
fn comfyui_all_in_one_checkpoint_serves_every_component() {
    let (s, files) = tiny_model("all-in-one", Variant::Dev, Layout::SingleFiles);
    let (fp8, upcast) = fp8_copy(&reference("flux_tiny_dev.weights.safetensors"), &s.0, true);
    let mut all = HashMap::new();
    for (prefix, path) in [
        ("model.diffusion_model.", &fp8),
        ("vae.", &files.ae),
        ("text_encoders.t5xxl.transformer.", &files.t5),
        ("text_encoders.clip_l.transformer.", &files.clip),
    ] {
        all.extend(
            load(path)
                .into_iter()
                .map(|(k, v)| (format!("{prefix}{k}"), v)),
        );
    }
    let dir = s.0.join("comfy");
    copy_dir(&files.clip_tokenizer, &dir.join("tokenizer"));
    copy_dir(
        files.t5_tokenizer.parent().unwrap(),
        &dir.join("tokenizer_2"),
    );
    let checkpoint = dir.join("flux1-dev-fp8.safetensors");
    // The tiny CLIP's head count, as its own file carries it (CLIP-L's 12 heads of 64 are what
    // the engine assumes without it).
    let meta = HashMap::from([("num_attention_heads".to_string(), "4".to_string())]);
    safetensors::serialize_to_file(all.iter(), Some(meta), &checkpoint).unwrap();

    let found = ModelFiles::from_folder(&dir).unwrap();
    for path in [&found.transformer, &found.ae, &found.t5, &found.clip] {
        assert_eq!(path, &checkpoint);
    }
    // The same weights from separate files, the transformer upcast to f32.
    let separate = ModelFiles {
        transformer: upcast,
        ..files.clone()
    };
    let (a, b) = (generate(&found), generate(&separate));
    let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    assert!(worst <= 1, "pixels differ by up to {worst}");
}

#[test]
fn types_without_fixtures_expand_exactly_as_candle_dequantizes_them() {
    // small_dev's values written in each type the fixtures lack; every compact weight's rows
    // must equal candle's dequantization, and the forward the one on those dequantized values.
    use candle_core::quantized::GgmlDType::*;
    let s = Scratch::new("gguf-types");
    let base = WeightSet::open("small_dev", &[gguf("small_dev-BF16.gguf")]).unwrap();
    let tensors: Vec<(String, Tensor)> = base
        .names()
        .into_iter()
        .map(|n| {
            let t = base.load(&n, DType::F32, &Device::Cpu).unwrap();
            (n, t)
        })
        .collect();
    let fx = load(&gguf("small_dev.expected.safetensors"));
    for ty in [Q4_1, Q5_0, Q5_1, Q2K, Q3K, Q5K] {
        let name = model::gguf::dtype_name(ty);
        let path = s.0.join(format!("small_dev-{name}.gguf"));
        write_tensors(&path, &tensors, ty);
        let set = WeightSet::open(name, std::slice::from_ref(&path)).unwrap();
        let mut dequantized = HashMap::new();
        for (n, _) in &tensors {
            let dense = set.load(n, DType::F32, &Device::Cpu).unwrap();
            if let Some(w) = set.load_compact(n, DType::F32, &Device::Cpu).unwrap() {
                let (rows, inputs) = w.shape();
                let reader = w.rows().unwrap();
                let mut all = vec![0f32; rows * inputs];
                for (r, row) in all.chunks_exact_mut(inputs).enumerate() {
                    reader.read(r, 0..inputs, row);
                }
                assert_eq!(all, values_of(&dense), "{name} {n}");
            }
            dequantized.insert(n.clone(), dense);
        }
        let upcast = s.0.join(format!("small_dev-{name}-f32.safetensors"));
        candle_core::safetensors::save(&dequantized, &upcast).unwrap();
        let out = transformer_forward(&path, &fx);
        assert_rel(name, &out, &transformer_forward(&upcast, &fx), 1e-5);
        // And within a few times Q4_0's quantization error of the float32 model.
        assert_rel(&format!("{name} vs f32"), &out, &fx["output.f32"], 0.05);
    }
}

#[test]
fn stable_diffusion_cpp_files_without_metadata_and_with_prefixed_names_load() {
    // stable-diffusion.cpp writes no metadata, and may keep ComfyUI's `model.diffusion_model.`.
    let s = Scratch::new("gguf-sdcpp");
    let set = WeightSet::open("tiny", &[gguf("tiny_dev-F16.gguf")]).unwrap();
    let names = set.names();
    let plan: Vec<(String, Vec<usize>, candle_core::quantized::GgmlDType)> = names
        .iter()
        .map(|n| {
            let shape = set.shape(n).unwrap();
            let ty = model::gguf::flux_type(n, &shape, candle_core::quantized::GgmlDType::Q8_0);
            (format!("model.diffusion_model.{n}"), shape, ty)
        })
        .collect();
    let (_m, files) = tiny_model("sdcpp", Variant::Dev, Layout::SingleFiles);
    let dir = files.transformer.parent().unwrap().to_path_buf();
    std::fs::remove_file(&files.transformer).unwrap();
    let path = dir.join("flux1-dev-q8_0.gguf");
    model::gguf::write(&path, &[], &plan, |i| {
        set.load(&names[i], DType::F32, &Device::Cpu)
    })
    .unwrap();
    assert_eq!(
        model::gguf::read_header(&path).unwrap().architecture(),
        None
    );
    let found = ModelFiles::from_folder(&dir).unwrap();
    assert_eq!(found.transformer, path);
    let fx = load(&gguf("tiny_dev.expected.safetensors"));
    // The same blocks as the fixture's Q8_0 file (candle's Q8_0 equals ggml's, and both were
    // quantized from the F16 values): the fixture's Q8_0 forward.
    assert_rel(
        "sd.cpp-style Q8_0",
        &transformer_forward(&path, &fx),
        &fx["output.Q8_0"],
        1e-4,
    );
    drop(s);
}

#[test]
fn mutated_gguf_headers_are_refused_or_read_never_panic() {
    // Deterministic random mutations of a real header (byte changes, truncations): the reader
    // answers Ok or an error every time, without panicking or sizing anything from a bad count.
    let bytes = std::fs::read(gguf("tiny_dev-Q8_0.gguf")).unwrap();
    let header_len = 8192.min(bytes.len());
    let s = Scratch::new("gguf-mutate");
    let path = s.0.join("m.gguf");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (mut refused, mut read) = (0, 0);
    for _ in 0..400 {
        let mut m = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % header_len;
            m[at] = next() as u8;
        }
        if next() % 4 == 0 {
            m.truncate((next() as usize) % header_len);
        }
        std::fs::write(&path, &m).unwrap();
        match model::gguf::read_header(&path) {
            Ok(_) => read += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    assert!(
        refused > 50 && refused + read == 400,
        "{refused} refused, {read} read"
    );
}

#[test]
fn bf16_checkpoints_stay_16_bit_under_f32_compute() {
    // As the BFL and diffusers releases ship: every tensor bf16. On the CPU (f32 compute) the
    // dense weights stay bf16 and expand per layer; the forward is the one on the same values
    // upcast to f32.
    let s = Scratch::new("bf16");
    let mut bf16 = HashMap::new();
    let mut upcast = HashMap::new();
    for (name, t) in load(&reference("flux_tiny_dev.weights.safetensors")) {
        let b = t.to_dtype(DType::BF16).unwrap();
        upcast.insert(name.clone(), b.to_dtype(DType::F32).unwrap());
        bf16.insert(name, b);
    }
    let (a, b) = (s.0.join("bf16.safetensors"), s.0.join("upcast.safetensors"));
    candle_core::safetensors::save(&bf16, &a).unwrap();
    candle_core::safetensors::save(&upcast, &b).unwrap();
    let set = WeightSet::open("transformer", std::slice::from_ref(&a)).unwrap();
    let (compact, full) = (
        set.loaded_bytes(DType::F32, true),
        set.loaded_bytes(DType::F32, false),
    );
    assert!(compact * 10 < full * 7, "{compact} of {full} bytes");
    // Computing in bf16 (CUDA's default) the weights are already in the compute dtype.
    assert_eq!(
        set.loaded_bytes(DType::BF16, true),
        set.loaded_bytes(DType::BF16, false)
    );
    let fx = load(&reference("flux_tiny_dev.forward.safetensors"));
    assert_rel(
        "bf16 checkpoint",
        &transformer_forward(&a, &fx),
        &transformer_forward(&b, &fx),
        1e-5,
    );
}

#[test]
fn long_metadata_strings_are_skipped_not_kept() {
    use model::gguf::Meta;
    let s = Scratch::new("gguf-long");
    let path = s.0.join("long.gguf");
    let metadata = [
        ("general.architecture", Meta::String("flux".into())),
        ("tokenizer.chat_template", Meta::String("x".repeat(200_000))),
        ("general.alignment", Meta::U32(64)),
    ];
    let plan = vec![(
        "img_in.bias".to_string(),
        vec![8],
        candle_core::quantized::GgmlDType::F32,
    )];
    model::gguf::write(&path, &metadata, &plan, |_| {
        Ok(Tensor::arange(0f32, 8.0, &Device::Cpu)?)
    })
    .unwrap();
    let header = model::gguf::read_header(&path).unwrap();
    assert_eq!(header.architecture(), Some("flux"));
    assert!(!header.metadata.contains_key("tokenizer.chat_template"));
    // The alignment the file declares places the data, and the values read back.
    assert_eq!(header.tensors["img_in.bias"].start % 64, 0);
    let set = WeightSet::open("t", std::slice::from_ref(&path)).unwrap();
    let values = values_of(&set.load("img_in.bias", DType::F32, &Device::Cpu).unwrap());
    assert_eq!(values, (0..8).map(|v| v as f32).collect::<Vec<_>>());
}

#[test]
fn quantizing_a_checkpoint_gives_the_same_file_from_either_layout() {
    // The tiny dev model from its BFL file and from a diffusers folder (q/k/v split, halves
    // swapped): the same BFL-named Q8_0 file, whose forward is within the manifest's Q8_0
    // quantization error of the float32 model.
    let s = Scratch::new("quantize");
    let (_a, bfl) = tiny_model("quantize-bfl", Variant::Dev, Layout::SingleFiles);
    let (_b, diffusers) = tiny_model("quantize-diffusers", Variant::Dev, Layout::Diffusers);
    let q8 = candle_core::quantized::GgmlDType::Q8_0;
    let (from_bfl, from_diffusers) = (s.0.join("bfl.gguf"), s.0.join("diffusers.gguf"));
    model::quantize_transformer(&bfl.transformer, &from_bfl, q8).unwrap();
    model::quantize_transformer(&diffusers.transformer, &from_diffusers, q8).unwrap();
    assert_eq!(
        std::fs::read(&from_bfl).unwrap(),
        std::fs::read(&from_diffusers).unwrap()
    );
    let header = model::gguf::read_header(&from_bfl).unwrap();
    assert_eq!(
        header.tensors["double_blocks.0.img_attn.qkv.weight"].dtype,
        q8
    );
    let fx = load(&gguf("tiny_dev.expected.safetensors"));
    assert_rel(
        "quantized",
        &transformer_forward(&from_bfl, &fx),
        &fx["output.f32"],
        0.014,
    );
}
