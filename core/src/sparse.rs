//! Full-size FLUX.1-dev files whose data region is a hole: the real tensor names, shapes and
//! stored types of the downloads (BFL's bf16 safetensors, ComfyUI's fp8 e4m3fn safetensors,
//! city96's GGUF files; T5-XXL, CLIP-L and the autoencoder beside them) in files of the real
//! length that use no disk on file systems with sparse files. The planner, the loaders and the
//! budget are tested on them at real size; every weight reads as zero.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::model::gguf::{self, Meta};
use crate::model::transformer::{tensor_shapes, Config};
use crate::model::ModelFiles;

/// Tensor names and shapes.
type Tensors = Vec<(String, Vec<usize>)>;

/// How the weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Every tensor bf16 (BFL's `flux1-dev.safetensors`).
    Bf16,
    /// 2-D weights fp8 e4m3fn, the rest bf16 (ComfyUI's `flux1-dev-fp8`).
    Fp8,
    /// A GGUF file with city96's per-tensor types for `dtype` ([`gguf::flux_type`]).
    Gguf(GgmlDType),
}

/// Whether ComfyUI's fp8 FLUX.1 checkpoints store `name` of `shape` in fp8 e4m3fn: the 2-D
/// weights city96's Q8_0 files quantize (the others stay bf16).
pub fn fp8_in_checkpoint(name: &str, shape: &[usize]) -> bool {
    shape.len() == 2 && gguf::flux_type(name, shape, GgmlDType::Q8_0) == GgmlDType::Q8_0
}

/// The type city96's Q8_0 T5-XXL GGUF stores `name` of `shape` in (llama.cpp names): Q8_0 for
/// the 2-D weights but the relative attention bias, F32 for the rest.
pub fn t5_q8_0_type(name: &str, shape: &[usize]) -> GgmlDType {
    match shape.len() == 2 && !name.contains("attn_rel_b") {
        true => GgmlDType::Q8_0,
        false => GgmlDType::F32,
    }
}

/// Writes a GGUF header of `arch` for `tensors` stored as `dtype(name, shape)`, the data a hole.
fn write_gguf(
    path: &Path,
    arch: &str,
    tensors: Tensors,
    dtype: impl Fn(&str, &[usize]) -> GgmlDType,
) -> Result<()> {
    let plan: Vec<(String, Vec<usize>, GgmlDType)> = tensors
        .into_iter()
        .map(|(n, s)| {
            let t = dtype(&n, &s);
            (n, s, t)
        })
        .collect();
    let metadata = [("general.architecture", Meta::String(arch.into()))];
    gguf::write_sparse(path, &metadata, &plan)
}

/// Writes FLUX.1-dev's transformer stored as `storage` to `path`, its data a hole.
pub fn write_flux1_dev(path: &Path, storage: Storage) -> Result<()> {
    let tensors = tensor_shapes(&Config::flux1_dev());
    match storage {
        Storage::Gguf(dtype) => {
            write_gguf(path, "flux", tensors, |n, s| gguf::flux_type(n, s, dtype))
        }
        Storage::Fp8 => write_safetensors(path, &tensors, |n, s| match fp8_in_checkpoint(n, s) {
            true => "F8_E4M3",
            false => "BF16",
        }),
        Storage::Bf16 => write_safetensors(path, &tensors, |_, _| "BF16"),
    }
}

/// Bytes per value of a safetensors dtype name.
fn dtype_size(dtype: &str) -> usize {
    match dtype {
        "F8_E4M3" => 1,
        "F32" => 4,
        _ => 2,
    }
}

/// Writes a safetensors header for `tensors` stored as `dtype(name, shape)` and leaves the data
/// a hole.
fn write_safetensors(
    path: &Path,
    tensors: &Tensors,
    dtype: impl Fn(&str, &[usize]) -> &'static str,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let dt = dtype(name, shape);
        let len = shape.iter().product::<usize>() * dtype_size(dt);
        let entry = serde_json::json!({
            "dtype": dt, "shape": shape, "data_offsets": [offset, offset + len]
        });
        header.insert(name.clone(), entry);
        offset += len;
    }
    let mut json = serde_json::to_vec(&header).map_err(|e| Error::invalid(e.to_string()))?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let io = |e| Error::io(path, e);
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(&(json.len() as u64).to_le_bytes())
        .and_then(|_| file.write_all(&json))
        .map_err(io)?;
    file.set_len((8 + json.len() + offset) as u64).map_err(io)
}

/// T5-XXL's encoder in Hugging Face names.
fn t5_xxl() -> Tensors {
    let (d, ff, vocab, buckets, heads) = (4096, 10240, 32128, 32, 64);
    let mut t: Tensors = vec![
        ("shared.weight".into(), vec![vocab, d]),
        ("encoder.final_layer_norm.weight".into(), vec![d]),
    ];
    for i in 0..24 {
        let b = format!("encoder.block.{i}.layer");
        for m in ["q", "k", "v", "o"] {
            t.push((format!("{b}.0.SelfAttention.{m}.weight"), vec![d, d]));
        }
        if i == 0 {
            let rel = format!("{b}.0.SelfAttention.relative_attention_bias.weight");
            t.push((rel, vec![buckets, heads]));
        }
        t.push((format!("{b}.0.layer_norm.weight"), vec![d]));
        t.push((format!("{b}.1.DenseReluDense.wi_0.weight"), vec![ff, d]));
        t.push((format!("{b}.1.DenseReluDense.wi_1.weight"), vec![ff, d]));
        t.push((format!("{b}.1.DenseReluDense.wo.weight"), vec![d, ff]));
        t.push((format!("{b}.1.layer_norm.weight"), vec![d]));
    }
    t
}

/// CLIP-L's text encoder.
fn clip_l() -> Tensors {
    let (d, ff, vocab, positions) = (768, 3072, 49408, 77);
    let p = "text_model";
    let mut t: Tensors = vec![
        (
            format!("{p}.embeddings.token_embedding.weight"),
            vec![vocab, d],
        ),
        (
            format!("{p}.embeddings.position_embedding.weight"),
            vec![positions, d],
        ),
        (format!("{p}.final_layer_norm.weight"), vec![d]),
        (format!("{p}.final_layer_norm.bias"), vec![d]),
    ];
    for i in 0..12 {
        let l = format!("{p}.encoder.layers.{i}");
        let mut linear = |name: String, i: usize, o: usize| {
            t.push((format!("{name}.weight"), vec![o, i]));
            t.push((format!("{name}.bias"), vec![o]));
        };
        for m in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            linear(format!("{l}.self_attn.{m}"), d, d);
        }
        linear(format!("{l}.mlp.fc1"), d, ff);
        linear(format!("{l}.mlp.fc2"), ff, d);
        for n in ["layer_norm1", "layer_norm2"] {
            t.push((format!("{l}.{n}.weight"), vec![d]));
            t.push((format!("{l}.{n}.bias"), vec![d]));
        }
    }
    t
}

/// Records the tensors a model constructor asks a `VarBuilder` for, handing it zeros.
struct Recorder(Arc<Mutex<Tensors>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.lock().push((name.to_string(), s.dims().to_vec()));
        Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("the recorder needs a shape for '{name}'")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// FLUX.1's autoencoder, as its constructor asks for it.
fn autoencoder() -> Result<Tensors> {
    use candle_transformers::models::flux::autoencoder::{Config, Decoder, Encoder};
    let config = Config::dev();
    let tensors = Arc::new(Mutex::new(Vec::new()));
    let backend = Box::new(Recorder(tensors.clone()));
    let vb = VarBuilder::from_backend(backend, DType::BF16, Device::Cpu);
    Encoder::new(&config, vb.pp("encoder"))?;
    Decoder::new(&config, vb.pp("decoder"))?;
    let recorded = tensors.lock().clone();
    Ok(recorded)
}

/// Writes a FLUX.1-dev folder in ComfyUI's single-file layout into `dir`, the transformer stored
/// as `storage` and the text encoder as users pair with it (T5-XXL fp16 with bf16, fp8 with fp8,
/// city96's Q8_0 GGUF with GGUF files), CLIP-L fp16, the autoencoder f32 and the tiny model's
/// tokenizers; every data region a hole.
pub fn write_flux1_dev_folder(dir: &Path, storage: Storage) -> Result<ModelFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let transformer = match storage {
        Storage::Bf16 => "flux1-dev.safetensors",
        Storage::Fp8 => "flux1-dev-fp8.safetensors",
        Storage::Gguf(_) => "flux1-dev.gguf",
    };
    write_flux1_dev(&dir.join(transformer), storage)?;
    match storage {
        Storage::Bf16 => {
            write_safetensors(&dir.join("t5xxl_fp16.safetensors"), &t5_xxl(), |_, _| "F16")?
        }
        Storage::Fp8 => write_safetensors(
            &dir.join("t5xxl_fp8_e4m3fn.safetensors"),
            &t5_xxl(),
            |n, s| match s.len() == 2 && !n.contains("shared") && !n.contains("relative") {
                true => "F8_E4M3",
                false => "F16",
            },
        )?,
        Storage::Gguf(_) => write_gguf(
            &dir.join("t5-v1_1-xxl-encoder-Q8_0.gguf"),
            "t5encoder",
            t5_llama(),
            t5_q8_0_type,
        )?,
    }
    write_safetensors(&dir.join("clip_l.safetensors"), &clip_l(), |_, _| "F16")?;
    write_safetensors(&dir.join("ae.safetensors"), &autoencoder()?, |_, _| "F32")?;
    crate::tiny::write_clip_tokenizer(&dir.join("tokenizer"))?;
    crate::tiny::write_t5_tokenizer(&dir.join("tokenizer_2").join("tokenizer.json"))?;
    ModelFiles::from_folder(dir)
}

/// T5-XXL's encoder in llama.cpp's names (city96's GGUF files).
pub fn t5_llama() -> Tensors {
    let (d, ff, vocab, buckets, heads) = (4096, 10240, 32128, 32, 64);
    let mut t: Tensors = vec![
        ("token_embd.weight".into(), vec![vocab, d]),
        ("enc.output_norm.weight".into(), vec![d]),
        ("enc.blk.0.attn_rel_b.weight".into(), vec![buckets, heads]),
    ];
    for i in 0..24 {
        let b = format!("enc.blk.{i}");
        for m in ["attn_q", "attn_k", "attn_v", "attn_o"] {
            t.push((format!("{b}.{m}.weight"), vec![d, d]));
        }
        t.push((format!("{b}.ffn_gate.weight"), vec![ff, d]));
        t.push((format!("{b}.ffn_up.weight"), vec![ff, d]));
        t.push((format!("{b}.ffn_down.weight"), vec![d, ff]));
        t.push((format!("{b}.attn_norm.weight"), vec![d]));
        t.push((format!("{b}.ffn_norm.weight"), vec![d]));
    }
    t
}
