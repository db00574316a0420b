//! Fuzz targets: everything that parses bytes from outside (safetensors and GGUF files, shard
//! indexes, a diffusers folder's JSON, the T5 and CLIP tokenizer files, LoRA files, PNG/JPEG
//! inputs). Shared
//! by the corpus replay (`core/tests/fuzz_replay.rs`, in CI) and the AFL++ fuzzer
//! (`core/fuzz/`). A target writes its input where the parser reads it and runs the
//! parser; an error is the expected outcome of most inputs, a panic is a finding.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use flux_core::model::store::WeightSet;
use flux_core::model::{gguf, FluxModel, LoadOptions, ModelFiles, Variant};
use flux_core::text::tokenizer::PromptTokenizer;
use flux_core::tiny::{self, Layout};

/// A parser under fuzzing.
pub struct Target {
    pub name: &'static str,
    /// Valid inputs to start from (files of the tiny model, or small ones written here).
    pub seeds: fn(&Path) -> Vec<Vec<u8>>,
    /// Parses `input` with `dir` as its scratch folder; returns the outcome's error, if any.
    pub run: fn(&Path, &[u8]) -> Option<String>,
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "safetensors",
        seeds: safetensors_seeds,
        run: |dir, input| weights(dir, "w.safetensors", input),
    },
    Target {
        name: "gguf",
        seeds: gguf_seeds,
        run: |dir, input| weights(dir, "w.gguf", input),
    },
    Target {
        name: "shard_index",
        seeds: |dir| vec![std::fs::read(model(dir).join(INDEX)).unwrap()],
        run: shard_index,
    },
    Target {
        name: "model_json",
        seeds: model_json_seeds,
        run: model_json,
    },
    Target {
        name: "t5_tokenizer",
        seeds: |dir| vec![std::fs::read(model(dir).join("tokenizer_2/tokenizer.json")).unwrap()],
        run: t5_tokenizer,
    },
    Target {
        name: "clip_tokenizer",
        seeds: clip_seeds,
        run: clip_tokenizer,
    },
    Target {
        name: "lora",
        seeds: lora_seeds,
        run: lora,
    },
    Target {
        name: "image",
        seeds: image_seeds,
        run: |_, input| err(flux_core::image::export::decode(input)),
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn err<T>(r: flux_core::Result<T>) -> Option<String> {
    r.err().map(|e| e.to_string())
}

/// Opens a weight file written from `input` and reads every tensor (expanded and compact).
fn weights(dir: &Path, file: &str, input: &[u8]) -> Option<String> {
    let path = dir.join(file);
    std::fs::write(&path, input).unwrap();
    let set = match WeightSet::open("fuzz", &[path]) {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    let mut last = None;
    for name in set.names() {
        if let Err(e) = set.load(&name, DType::F32, &Device::Cpu) {
            last = Some(e.to_string());
        }
        if let Err(e) = set.load_compact(&name, DType::F32, &Device::Cpu) {
            last = Some(e.to_string());
        }
    }
    last
}

fn safetensors_seeds(_: &Path) -> Vec<Vec<u8>> {
    let cpu = Device::Cpu;
    let t = |shape: &[usize], dtype| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 1.0).collect();
        Tensor::from_vec(v, shape, &cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    };
    let tensors = [
        ("a.weight", t(&[4, 8], DType::F32)),
        ("b.weight", t(&[16, 32], DType::BF16)),
        ("c.bias", t(&[16], DType::F16)),
        ("d.scale", t(&[2, 3, 4], DType::F32)),
    ];
    let scratch = std::env::temp_dir().join(format!("flux-fuzz-seed-{}.st", std::process::id()));
    candle_core::safetensors::save(&tensors.into_iter().collect(), &scratch).unwrap();
    let bytes = std::fs::read(&scratch).unwrap();
    std::fs::remove_file(&scratch).unwrap();
    vec![bytes]
}

fn gguf_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let tensors: Vec<(String, Vec<usize>, GgmlDType)> = vec![
        ("a.weight".into(), vec![2, 32], GgmlDType::Q8_0),
        ("b.weight".into(), vec![1, 256], GgmlDType::Q4K),
        ("c.weight".into(), vec![4, 8], GgmlDType::F16),
        ("d.bias".into(), vec![8], GgmlDType::F32),
    ];
    let path = dir.join("seed.gguf");
    let meta = [("general.architecture", gguf::Meta::String("flux".into()))];
    gguf::write(&path, &meta, &tensors, |i| {
        let n: usize = tensors[i].1.iter().product();
        let v: Vec<f32> = (0..n).map(|j| (j % 17) as f32 * 0.1 - 0.8).collect();
        Ok(Tensor::from_vec(v, tensors[i].1.as_slice(), &Device::Cpu)?)
    })
    .unwrap();
    vec![std::fs::read(&path).unwrap()]
}

const INDEX: &str = "transformer/diffusion_pytorch_model.safetensors.index.json";

/// The JSON files of a diffusers folder a `model_json` input may replace, by its first byte.
const MODEL_JSON: [&str; 5] = [
    "model_index.json",
    "transformer/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
];

/// The tiny dev model in the diffusers layout under `dir` (written once), every JSON file of it
/// restored to its original.
fn model(dir: &Path) -> PathBuf {
    let out = dir.join("model");
    let originals = dir.join("originals");
    if !originals.exists() {
        let fixtures = tiny::default_fixtures_dir();
        tiny::write_tiny_model(&fixtures, &out, Variant::Dev, Layout::Diffusers).unwrap();
        std::fs::create_dir_all(&originals).unwrap();
        for (i, f) in MODEL_JSON.iter().chain([&INDEX]).enumerate() {
            std::fs::copy(out.join(f), originals.join(i.to_string())).unwrap();
        }
    }
    for (i, f) in MODEL_JSON.iter().chain([&INDEX]).enumerate() {
        std::fs::copy(originals.join(i.to_string()), out.join(f)).unwrap();
    }
    out
}

fn shard_index(dir: &Path, input: &[u8]) -> Option<String> {
    let index = model(dir).join(INDEX);
    std::fs::write(&index, input).unwrap();
    let set = match WeightSet::open_index("transformer", &index) {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    let mut last = None;
    for name in set.names().iter().take(8) {
        last = err(set.load(name, DType::F32, &Device::Cpu)).or(last);
    }
    last
}

fn model_json_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let out = model(dir);
    MODEL_JSON
        .iter()
        .enumerate()
        .map(|(i, f)| [vec![i as u8], std::fs::read(out.join(f)).unwrap()].concat())
        .collect()
}

/// Replaces the diffusers JSON file the first byte picks, then locates and loads the model.
fn model_json(dir: &Path, input: &[u8]) -> Option<String> {
    let out = model(dir);
    let (which, json) = input.split_first()?;
    std::fs::write(
        out.join(MODEL_JSON[*which as usize % MODEL_JSON.len()]),
        json,
    )
    .unwrap();
    let files = match ModelFiles::from_folder(&out) {
        Ok(f) => f,
        Err(e) => return Some(e.to_string()),
    };
    err(FluxModel::load(&files, &LoadOptions::default()))
}

fn t5_tokenizer(dir: &Path, input: &[u8]) -> Option<String> {
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, input).unwrap();
    err(PromptTokenizer::t5(&path).and_then(|t| t.encode("a red fox at dawn", 16)))
}

fn clip_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let out = model(dir).join("tokenizer");
    ["vocab.json", "merges.txt"]
        .iter()
        .enumerate()
        .map(|(i, f)| [vec![i as u8], std::fs::read(out.join(f)).unwrap()].concat())
        .collect()
}

/// Replaces `vocab.json` (first byte even) or `merges.txt` (odd) of a CLIP tokenizer folder.
fn clip_tokenizer(dir: &Path, input: &[u8]) -> Option<String> {
    let folder = dir.join("clip");
    tiny::write_clip_tokenizer(&folder).unwrap();
    let (which, rest) = input.split_first()?;
    let file = ["vocab.json", "merges.txt"][*which as usize % 2];
    std::fs::write(folder.join(file), rest).unwrap();
    err(PromptTokenizer::clip(&folder).and_then(|t| t.encode("the other side", 16)))
}

fn image_seeds(_: &Path) -> Vec<Vec<u8>> {
    let img = flux_core::image::RgbImage {
        width: 5,
        height: 3,
        data: (0..45).map(|i| (i * 5) as u8).collect(),
    };
    vec![
        flux_core::image::export::encode_png(&img, None).unwrap(),
        flux_core::image::export::encode_jpeg(&img, 90).unwrap(),
    ]
}

/// LoRA files of each layout for a model of hidden size 64 (the tiny one's), a few factors each.
fn lora_seeds(_: &Path) -> Vec<Vec<u8>> {
    let t = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let alpha = Tensor::new(1f32, &Device::Cpu).unwrap();
    let files: [Vec<(&str, Tensor)>; 6] = [
        vec![
            ("lora_unet_img_in.lora_down.weight", t(&[2, 64])),
            ("lora_unet_img_in.lora_up.weight", t(&[64, 2])),
            ("lora_unet_img_in.alpha", alpha.clone()),
            (
                "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight",
                t(&[2, 64]),
            ),
            (
                "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight",
                t(&[192, 2]),
            ),
        ],
        vec![
            (
                "transformer.transformer_blocks.0.attn.to_k.lora_A.weight",
                t(&[2, 64]),
            ),
            (
                "transformer.transformer_blocks.0.attn.to_k.lora_B.weight",
                t(&[64, 2]),
            ),
            ("transformer.norm_out.linear.lora_A.weight", t(&[2, 64])),
            ("transformer.norm_out.linear.lora_B.weight", t(&[128, 2])),
        ],
        vec![
            (
                "double_blocks.1.processor.proj_lora2.down.weight",
                t(&[2, 64]),
            ),
            (
                "double_blocks.1.processor.proj_lora2.up.weight",
                t(&[64, 2]),
            ),
        ],
        vec![
            ("lora_unet_txt_in.hada_w1_a", t(&[64, 2])),
            ("lora_unet_txt_in.hada_w1_b", t(&[2, 48])),
            ("lora_unet_txt_in.hada_w2_a", t(&[64, 2])),
            ("lora_unet_txt_in.hada_w2_b", t(&[2, 48])),
        ],
        vec![
            ("lora_unet_single_blocks_1_linear2.lokr_w1", t(&[4, 4])),
            ("lora_unet_single_blocks_1_linear2.lokr_w2_a", t(&[16, 2])),
            ("lora_unet_single_blocks_1_linear2.lokr_w2_b", t(&[2, 80])),
            ("lora_unet_single_blocks_1_linear2.alpha", alpha),
        ],
        vec![
            ("img_in.lora_A.weight", t(&[2, 128])),
            ("img_in.lora_B.weight", t(&[64, 2])),
            ("img_in.lora_B.bias", t(&[64])),
            ("single_blocks.0.norm.key_norm.scale", t(&[16])),
        ],
    ];
    let scratch = std::env::temp_dir().join(format!("flux-fuzz-lora-{}.st", std::process::id()));
    let seeds = files
        .into_iter()
        .map(|tensors| {
            let map = tensors
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            candle_core::safetensors::save(&map, &scratch).unwrap();
            std::fs::read(&scratch).unwrap()
        })
        .collect();
    std::fs::remove_file(&scratch).unwrap();
    seeds
}

/// Parses a LoRA file and fits it to a model of the tiny one's shapes at strength 0.8.
fn lora(dir: &Path, input: &[u8]) -> Option<String> {
    use flux_core::model::transformer::{tensor_shapes, Config};
    let path = dir.join("lora.safetensors");
    std::fs::write(&path, input).unwrap();
    let file = match flux_core::lora::LoraFile::open(&path) {
        Ok(f) => std::sync::Arc::new(f),
        Err(e) => return Some(e.to_string()),
    };
    let config = Config {
        hidden_size: 64,
        num_heads: 4,
        depth: 2,
        depth_single_blocks: 2,
        context_in_dim: 48,
        vec_in_dim: 32,
        ..Config::flux1_dev()
    };
    let shapes = tensor_shapes(&config);
    let shape_of = |name: &str| {
        let found = shapes.iter().find(|(n, _)| n == name);
        found.map(|(_, s)| s.clone())
    };
    err(flux_core::lora::Adapters::new(&[(file, 0.8)], shape_of))
}
