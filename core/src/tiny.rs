//! Writes complete tiny FLUX models in the real file layouts, from the reference fixtures' tiny
//! weights, so that tests, samples and the quick start exercise the real loading code.
//!
//! * [`Layout::SingleFiles`]: `flux1-dev.safetensors` (or `flux1-schnell`), `ae.safetensors`,
//!   `t5xxl_fp16.safetensors`, `clip_l.safetensors`, `tokenizer/` (CLIP `vocab.json` +
//!   `merges.txt`), `tokenizer_2/tokenizer.json` (T5).
//! * [`Layout::Diffusers`]: `model_index.json`, `transformer/` (sharded for dev, as converted by
//!   diffusers), `vae/`, `text_encoder/`, `text_encoder_2/` (sharded), `tokenizer/`, `tokenizer_2/`.
//!
//! The tokenizers are generated here: a 100-piece SentencePiece-Unigram T5 tokenizer and a
//! 100-token byte-level BPE CLIP vocabulary (`<|startoftext|>` = 98, `<|endoftext|>` = 99).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::Replace;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::model::{ModelFiles, Variant};

/// Which real layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// BFL / ComfyUI single files.
    SingleFiles,
    /// A diffusers pipeline folder.
    Diffusers,
}

/// The fixtures folder of this source tree (`tests/fixtures`), holding `flux-reference/` and
/// `flux-reference-diffusers/`.
pub fn default_fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("fixtures")
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::io(path, e))
}

fn mkdir(p: &Path) -> Result<()> {
    io(p, std::fs::create_dir_all(p))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    io(from, std::fs::copy(from, to)).map(|_| ())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    mkdir(to)?;
    for e in io(from, std::fs::read_dir(from))? {
        let p = io(from, e)?.path();
        if p.is_file() {
            copy(&p, &to.join(p.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

/// Rewrites a safetensors file, keeping only the tensors accepted by `keep` and setting metadata.
fn rewrite(
    from: &Path,
    to: &Path,
    metadata: Option<HashMap<String, String>>,
    keep: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let bytes = io(from, std::fs::read(from))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::CorruptFile {
        path: from.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut views: Vec<(String, TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| keep(n)).collect();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    safetensors::serialize_to_file(views, metadata, to)
        .map_err(|e| Error::Image(format!("writing '{}': {e}", to.display())))
}

/// Writes the T5 weights as two shards plus an HF `model.safetensors.index.json`.
fn write_sharded(from: &Path, dir: &Path) -> Result<()> {
    let bytes = io(from, std::fs::read(from))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::CorruptFile {
        path: from.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut names = st
        .names()
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    names.sort();
    let half = names.len() / 2;
    let mut weight_map = serde_json::Map::new();
    let mut total = 0usize;
    for (i, chunk) in [&names[..half], &names[half..]].into_iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        rewrite(from, &dir.join(&file), None, &|n| {
            chunk.iter().any(|c| c == n)
        })?;
        for n in chunk {
            total += st.tensor(n).map(|t| t.data().len()).unwrap_or(0);
            weight_map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    write_json(&dir.join("model.safetensors.index.json"), &index)
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    io(
        path,
        std::fs::write(path, serde_json::to_string_pretty(v).unwrap_or_default()),
    )
}

/// Words given their own T5 piece (with the SentencePiece word-start mark).
const WORDS: [&str; 40] = [
    "the",
    "a",
    "of",
    "and",
    "in",
    "on",
    "at",
    "with",
    "red",
    "blue",
    "green",
    "cat",
    "dog",
    "city",
    "night",
    "sky",
    "sun",
    "light",
    "tree",
    "house",
    "mountain",
    "river",
    "castle",
    "robot",
    "forest",
    "sea",
    "portrait",
    "painting",
    "photo",
    "neon",
    "lighthouse",
    "dusk",
    "snow",
    "fire",
    "glass",
    "stone",
    "make",
    "it",
    "sign",
    "open",
];

/// Writes a 100-piece T5 tokenizer (`<pad>` 0, `</s>` 1, `<unk>` 2) in HF `tokenizer.json` form.
pub fn write_t5_tokenizer(path: &Path) -> Result<()> {
    let mut vocab: Vec<(String, f64)> = vec![
        ("<pad>".into(), 0.0),
        ("</s>".into(), 0.0),
        ("<unk>".into(), 0.0),
    ];
    vocab.push(("▁".into(), -2.0));
    vocab.extend(WORDS.iter().map(|w| (format!("▁{w}"), -3.0)));
    vocab.extend(('a'..='z').map(|c| (c.to_string(), -6.0)));
    let mut digits = ('0'..='9').map(|c| (c.to_string(), -7.0));
    while vocab.len() < 100 {
        match digits.next() {
            Some(d) => vocab.push(d),
            None => break,
        }
    }
    let filler = ["er", "in", "on", "an", "re", "st", "en", "at", "or", "ing"];
    vocab.extend(
        filler
            .iter()
            .map(|f| (f.to_string(), -5.0))
            .take(100 - vocab.len()),
    );
    let err = |e: tokenizers::Error| Error::Tokenizer {
        path: Some(path.to_path_buf()),
        reason: e.to_string(),
    };
    let model = Unigram::from(vocab, Some(2), false).map_err(err)?;
    let mut t = Tokenizer::new(model);
    t.with_normalizer(Some(Replace::new(" {2,}", " ").map_err(err)?));
    t.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    t.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    let post = TemplateProcessing::builder()
        .try_single("$A </s>")
        .and_then(|b| b.try_pair("$A </s> $B </s>"))
        .map_err(|e| Error::Tokenizer {
            path: Some(path.to_path_buf()),
            reason: e.to_string(),
        })?
        .special_tokens(vec![("</s>", 1)])
        .build()
        .map_err(|e| Error::Tokenizer {
            path: Some(path.to_path_buf()),
            reason: e.to_string(),
        })?;
    t.with_post_processor(Some(post));
    mkdir(path.parent().unwrap_or(Path::new(".")))?;
    t.save(path, true).map_err(err)
}

/// Letter pairs merged inside words, then at word ends (`</w>`), in merge priority order.
const MERGES: [&str; 23] = [
    "th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed",
    "is", "it", "al", "ar", "st", "to", "ng",
];

/// Writes a CLIP `vocab.json` + `merges.txt` (100 tokens) into `dir`.
pub fn write_clip_tokenizer(dir: &Path) -> Result<()> {
    mkdir(dir)?;
    let mut tokens: Vec<String> = ('a'..='z').map(String::from).collect();
    tokens.extend(('a'..='z').map(|c| format!("{c}</w>")));
    let mut merges = vec!["#version: 0.2".to_string()];
    for m in MERGES {
        let (a, b) = m.split_at(1);
        merges.push(format!("{a} {b}"));
        tokens.push(m.to_string());
    }
    for m in MERGES {
        let (a, b) = m.split_at(1);
        merges.push(format!("{a} {b}</w>"));
        tokens.push(format!("{m}</w>"));
    }
    tokens.push("<|startoftext|>".into());
    tokens.push("<|endoftext|>".into());
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i.into()))
        .collect();
    write_json(&dir.join("vocab.json"), &vocab.into())?;
    let merges_path = dir.join("merges.txt");
    io(
        &merges_path,
        std::fs::write(&merges_path, merges.join("\n") + "\n"),
    )
}

/// Writes the tiny `variant` model in `layout` into `out` and returns its files.
pub fn write_tiny_model(
    fixtures: &Path,
    out: &Path,
    variant: Variant,
    layout: Layout,
) -> Result<ModelFiles> {
    let reference = fixtures.join("flux-reference");
    let diffusers = fixtures.join("flux-reference-diffusers");
    let name = variant.name();
    mkdir(out)?;
    match layout {
        Layout::SingleFiles => {
            copy(
                &reference.join(format!("flux_tiny_{name}.weights.safetensors")),
                &out.join(format!("flux1-{name}.safetensors")),
            )?;
            copy(
                &reference.join("ae_tiny.weights.safetensors"),
                &out.join("ae.safetensors"),
            )?;
            copy(
                &reference.join("t5_tiny.weights.safetensors"),
                &out.join("t5xxl_fp16.safetensors"),
            )?;
            // A CLIP file cannot say its head count; the tiny one (4 heads of 8) says it in metadata.
            let meta = HashMap::from([("num_attention_heads".to_string(), "4".to_string())]);
            rewrite(
                &reference.join("clip_tiny.weights.safetensors"),
                &out.join("clip_l.safetensors"),
                Some(meta),
                &|_| true,
            )?;
        }
        Layout::Diffusers => {
            let index = serde_json::json!({
                "_class_name": "FluxPipeline", "_diffusers_version": "0.42.1",
                "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
                "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
            });
            write_json(&out.join("model_index.json"), &index)?;
            let transformer = match variant {
                Variant::Dev => diffusers
                    .join("flux_tiny_dev_diffusers")
                    .join("transformer_sharded"),
                Variant::Schnell => diffusers
                    .join("flux_tiny_schnell_diffusers")
                    .join("transformer"),
            };
            copy_dir(&transformer, &out.join("transformer"))?;
            copy_dir(
                &diffusers.join("flux_tiny_dev_diffusers").join("vae"),
                &out.join("vae"),
            )?;
            let te = out.join("text_encoder");
            mkdir(&te)?;
            copy(
                &reference.join("clip_tiny.config.json"),
                &te.join("config.json"),
            )?;
            copy(
                &reference.join("clip_tiny.weights.safetensors"),
                &te.join("model.safetensors"),
            )?;
            let te2 = out.join("text_encoder_2");
            mkdir(&te2)?;
            copy(
                &reference.join("t5_tiny.config.json"),
                &te2.join("config.json"),
            )?;
            write_sharded(&reference.join("t5_tiny.weights.safetensors"), &te2)?;
        }
    }
    write_clip_tokenizer(&out.join("tokenizer"))?;
    write_t5_tokenizer(&out.join("tokenizer_2").join("tokenizer.json"))?;
    ModelFiles::from_folder(out)
}

/// Writes a BFL-named transformer of `config` with seeded random weights (fan-in scaled normal
/// weights, small biases, unit norm scales) stored as `dtype`: for benchmarks at real shapes,
/// where compute does not depend on the values.
pub fn write_random_transformer(
    path: &Path,
    config: &crate::model::transformer::Config,
    seed: u64,
    dtype: candle_core::DType,
) -> Result<()> {
    let mut tensors = HashMap::new();
    for (i, (name, shape)) in crate::model::transformer::tensor_shapes(config)
        .into_iter()
        .enumerate()
    {
        let n: usize = shape.iter().product();
        let noise = crate::pipeline::noise::gaussian(seed.wrapping_add(i as u64), n);
        let values: Vec<f32> = if name.ends_with(".scale") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            noise.iter().map(|x| 0.02 * x).collect()
        } else {
            let scale = 1.0 / (shape[1] as f32).sqrt();
            noise.iter().map(|x| scale * x).collect()
        };
        let t = candle_core::Tensor::from_vec(values, shape, &candle_core::Device::Cpu)?
            .to_dtype(dtype)?;
        tensors.insert(name, t);
    }
    candle_core::safetensors::save(&tensors, path)?;
    Ok(())
}
