//! Weight files -> models: layout detection (BFL/ComfyUI single files or a diffusers folder),
//! key naming, config inference and dtype policy.

pub mod autoencoder;
pub mod compact;
mod cpu;
#[cfg(feature = "flash-attn")]
mod flash;
pub mod gguf;
pub mod layers;
pub mod names;
pub mod redux;
pub mod store;
pub mod stream;
pub mod tiles;
pub mod transformer;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::text::{self, ClipEncoder, PromptTokenizer, T5Encoder, TextEncoders};
use autoencoder::AutoEncoder;
use names::Naming;
use store::WeightSet;
use transformer::FluxTransformer;
pub use transformer::{BlockResidency, Variant};
use weights::ModelWeights;

/// Where each component of a model is. Each weight path may be a `.safetensors` or `.gguf` file,
/// a `*.safetensors.index.json` shard index, or a diffusers component folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    pub transformer: PathBuf,
    pub ae: PathBuf,
    pub t5: PathBuf,
    pub clip: PathBuf,
    /// T5 `tokenizer.json`.
    pub t5_tokenizer: PathBuf,
    /// CLIP `tokenizer.json`, `vocab.json` (with `merges.txt` beside it) or their folder.
    pub clip_tokenizer: PathBuf,
    /// A diffusers `model_index.json`, when the model came from a diffusers folder.
    pub model_index: Option<PathBuf>,
    /// FLUX.1 Redux's SigLIP tower and projection, when the folder has them.
    pub redux: Option<redux::ReduxFiles>,
}

/// Transformer file names of the BFL releases, in the order they are looked for.
const BFL_TRANSFORMERS: [&str; 3] = [
    "flux1-kontext-dev.safetensors",
    "flux1-dev.safetensors",
    "flux1-schnell.safetensors",
];
/// T5 file names of the ComfyUI releases.
const COMFY_T5: [&str; 3] = [
    "t5xxl_fp16.safetensors",
    "t5xxl_fp8_e4m3fn.safetensors",
    "t5xxl_fp8_e4m3fn_scaled.safetensors",
];

impl ModelFiles {
    /// Files naming only a transformer, for loading it alone with [`load_transformer`].
    pub fn transformer_only(path: PathBuf) -> Self {
        Self {
            transformer: path,
            ae: PathBuf::new(),
            t5: PathBuf::new(),
            clip: PathBuf::new(),
            t5_tokenizer: PathBuf::new(),
            clip_tokenizer: PathBuf::new(),
            model_index: None,
            redux: None,
        }
    }

    /// Detects the layout of `dir`: a diffusers folder (`model_index.json` or `transformer/`), or a
    /// folder of single files (`flux1-*.safetensors` or a FLUX `.gguf`, `ae.safetensors`,
    /// `t5xxl_*.safetensors` or a T5 encoder `.gguf`, `clip_l.safetensors`) with tokenizers in
    /// `tokenizer/` (CLIP) and `tokenizer_2/` (T5).
    pub fn from_folder(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "model folder not found"),
            ));
        }
        let index = dir.join("model_index.json");
        if index.is_file() || dir.join("transformer").is_dir() {
            return Ok(Self {
                transformer: dir.join("transformer"),
                ae: dir.join("vae"),
                t5: dir.join("text_encoder_2"),
                clip: dir.join("text_encoder"),
                t5_tokenizer: dir.join("tokenizer_2").join("tokenizer.json"),
                clip_tokenizer: dir.join("tokenizer"),
                model_index: index.is_file().then_some(index),
                redux: redux::find_in(dir),
            });
        }
        let first = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
        let ggufs = gguf_files(dir)?;
        let transformer = first(&BFL_TRANSFORMERS)
            .or_else(|| first_named(dir, "flux1-", ".safetensors"))
            .or_else(|| only_gguf(&ggufs, GgufRole::Transformer))
            .ok_or_else(|| {
                Error::UnknownLayout(format!(
                    "'{}' has neither model_index.json/transformer/ (diffusers) nor one of {} or a FLUX .gguf file (single files)",
                    dir.display(),
                    BFL_TRANSFORMERS.join(", ")
                ))
            })?;
        // A ComfyUI checkpoint holds every component: it serves those not found beside it.
        let bundled = Bundled::of(&transformer);
        let or_bundled = |found: Option<PathBuf>, has: bool, default: PathBuf| {
            found.unwrap_or(if has { transformer.clone() } else { default })
        };
        let t5 = first(&COMFY_T5).or_else(|| only_gguf(&ggufs, GgufRole::T5));
        let ae = first(&["ae.safetensors"]);
        let clip = first(&["clip_l.safetensors"]);
        Ok(Self {
            ae: or_bundled(ae, bundled.ae, dir.join("ae.safetensors")),
            t5: or_bundled(t5, bundled.t5, dir.join(COMFY_T5[0])),
            clip: or_bundled(clip, bundled.clip, dir.join("clip_l.safetensors")),
            transformer,
            t5_tokenizer: dir.join("tokenizer_2").join("tokenizer.json"),
            clip_tokenizer: dir.join("tokenizer"),
            model_index: None,
            redux: redux::find_in(dir),
        })
    }
}

/// The entries of `dir`, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

/// The first file of `dir` (by name) named `prefix…suffix`.
fn first_named(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    sorted_entries(dir).ok()?.into_iter().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
    })
}

/// Which other components a transformer file holds (ComfyUI's all-in-one checkpoints:
/// `vae.`, `text_encoders.t5xxl.transformer.`, `text_encoders.clip_l.transformer.`).
#[derive(Default)]
struct Bundled {
    ae: bool,
    t5: bool,
    clip: bool,
}

impl Bundled {
    fn of(path: &Path) -> Self {
        let Ok(file) = store::WeightFile::open(path) else {
            return Self::default();
        };
        let has = |prefix: &str| file.names().any(|n| n.starts_with(prefix));
        Self {
            ae: has(AE_PREFIXES[1]) || has(AE_PREFIXES[2]),
            t5: has(T5_BUNDLED),
            clip: has(CLIP_BUNDLED),
        }
    }
}

/// Where a single file may hold the autoencoder: alone, in a ComfyUI or an SD-style checkpoint.
const AE_PREFIXES: [&str; 3] = ["", "vae.", "first_stage_model."];
/// T5 and CLIP inside a ComfyUI checkpoint.
const T5_BUNDLED: &str = "text_encoders.t5xxl.transformer.";
const CLIP_BUNDLED: &str = "text_encoders.clip_l.transformer.";

/// What a GGUF file in a model folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GgufRole {
    Transformer,
    T5,
}

/// The `.gguf` files of `dir` (sorted) with what each holds, from `general.architecture` or,
/// in files without it (stable-diffusion.cpp's), the tensor names; others are left out.
fn gguf_files(dir: &Path) -> Result<Vec<(PathBuf, GgufRole)>> {
    let paths = sorted_entries(dir)?.into_iter().filter(|p| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    });
    let mut found = Vec::new();
    for path in paths {
        let header = gguf::read_header(&path)?;
        let has = |n: &str| header.tensors.contains_key(n);
        let role = match header.architecture() {
            Some("flux") => Some(GgufRole::Transformer),
            Some("t5encoder" | "t5") => Some(GgufRole::T5),
            Some(_) => None,
            None if has("img_in.weight") || has("model.diffusion_model.img_in.weight") => {
                Some(GgufRole::Transformer)
            }
            None if has("enc.output_norm.weight") => Some(GgufRole::T5),
            None => None,
        };
        if let Some(role) = role {
            found.push((path, role));
        }
    }
    Ok(found)
}

/// The first GGUF file holding `role`; a warning names the others when there are several.
fn only_gguf(files: &[(PathBuf, GgufRole)], role: GgufRole) -> Option<PathBuf> {
    let mut matching = files.iter().filter(|(_, r)| *r == role).map(|(p, _)| p);
    let first = matching.next()?.clone();
    let others: Vec<String> = matching.map(|p| p.display().to_string()).collect();
    if !others.is_empty() {
        log::warn!(
            "{role:?}: using '{}', not {} (give the file explicitly to choose)",
            first.display(),
            others.join(", ")
        );
    }
    Some(first)
}

/// Options for loading a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Device to compute on.
    pub device: Device,
    /// Compute dtype; default f32 on the CPU, bf16 on CUDA.
    pub dtype: Option<DType>,
    /// Whether the transformer is Kontext-trained; default: from the file name or model_index.json.
    pub kontext: Option<bool>,
    /// RoPE axes; default: the diffusers config, else derived from the head width.
    pub axes_dim: Option<Vec<usize>>,
    /// Where the transformer's blocks live (default: resident).
    pub blocks: BlockResidency,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: None,
            kontext: None,
            axes_dim: None,
            blocks: BlockResidency::Resident,
        }
    }
}

impl LoadOptions {
    /// The dtype weights are converted to.
    pub fn compute_dtype(&self) -> DType {
        self.dtype.unwrap_or(if self.device.is_cpu() {
            DType::F32
        } else {
            DType::BF16
        })
    }
}

/// One component's opened weights plus the `config.json` found beside them.
struct Component {
    set: WeightSet,
    config: Option<serde_json::Value>,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::CorruptFile {
        path: path.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
}

/// Opens a component from a file, a shard index, or a folder holding one of those.
fn open_component(component: &str, path: &Path) -> Result<Component> {
    if path.is_dir() {
        let config_path = path.join("config.json");
        let config = if config_path.is_file() {
            Some(read_json(&config_path)?)
        } else {
            None
        };
        let entries = sorted_entries(path)?;
        let name = |p: &PathBuf| {
            p.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string()
        };
        let set = if let Some(index) = entries
            .iter()
            .find(|p| name(p).ends_with(".safetensors.index.json"))
        {
            WeightSet::open_index(component, index)?
        } else {
            let files: Vec<PathBuf> = entries
                .into_iter()
                .filter(|p| name(p).ends_with(".safetensors"))
                .collect();
            if files.len() != 1 {
                return Err(Error::UnknownLayout(format!(
                    "{component}: '{}' must hold one .safetensors file or a shard index, found {}",
                    path.display(),
                    files.len()
                )));
            }
            WeightSet::open(component, &files)?
        };
        return Ok(Component { set, config });
    }
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{component} weights not found"),
            ),
        ));
    }
    let is_index = path.to_string_lossy().ends_with(".index.json");
    let set = if is_index {
        WeightSet::open_index(component, path)?
    } else {
        WeightSet::open(component, &[path.to_path_buf()])?
    };
    Ok(Component { set, config: None })
}

/// Picks the prefix under which `marker` is stored (e.g. ComfyUI's `model.diffusion_model.`).
fn find_prefix(set: &WeightSet, marker: &str, prefixes: &[&str]) -> Option<String> {
    let names = set.names();
    prefixes
        .iter()
        .find(|p| names.iter().any(|n| *n == format!("{p}{marker}")))
        .map(|p| p.to_string())
}

fn unknown_keys(set: &WeightSet, what: &str) -> Error {
    let mut sample = set.names();
    sample.sort();
    sample.truncate(5);
    Error::UnknownLayout(format!(
        "{}: '{}' does not look like {what} (first keys: {})",
        set.component(),
        set.paths()
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        sample.join(", ")
    ))
}

/// Refuses a GGUF file whose `general.architecture` is not one of `accepted` (files without it,
/// as stable-diffusion.cpp writes them, are judged by their tensor names).
fn check_architecture(set: &WeightSet, accepted: &[&str], what: &str) -> Result<()> {
    match set.metadata("general.architecture") {
        Some(arch) if !accepted.contains(&arch) => Err(Error::UnknownLayout(format!(
            "{}: '{}' holds a '{arch}' model (general.architecture), not {what}",
            set.component(),
            set.file_of("").display()
        ))),
        _ => Ok(()),
    }
}

fn transformer_weights(c: Component) -> Result<Arc<ModelWeights>> {
    check_architecture(&c.set, &["flux"], "a FLUX transformer")?;
    if c.set.contains("x_embedder.weight") {
        return Ok(Arc::new(ModelWeights::new(
            c.set,
            Naming::DiffusersTransformer,
        )));
    }
    match find_prefix(&c.set, "img_in.weight", &["", "model.diffusion_model."]) {
        Some(p) => Ok(Arc::new(ModelWeights::new(
            c.set.with_prefix(&p),
            Naming::Native,
        ))),
        None => Err(unknown_keys(&c.set, "a FLUX transformer")),
    }
}

fn t5_weights(c: Component) -> Result<ModelWeights> {
    check_architecture(&c.set, &["t5encoder", "t5"], "a T5 encoder")?;
    if c.set.contains("enc.output_norm.weight") {
        return Ok(ModelWeights::new(c.set, Naming::LlamaT5));
    }
    let prefix = find_prefix(&c.set, "encoder.final_layer_norm.weight", &["", T5_BUNDLED])
        .ok_or_else(|| unknown_keys(&c.set, "a T5 encoder"))?;
    Ok(ModelWeights::new(
        c.set.with_prefix(&prefix),
        Naming::Native,
    ))
}

fn ae_weights(c: Component) -> Result<Arc<ModelWeights>> {
    if c.set.contains("decoder.up_blocks.0.resnets.0.conv1.weight") {
        let levels = (0..)
            .take_while(|i| {
                c.set
                    .contains(&format!("decoder.up_blocks.{i}.resnets.0.conv1.weight"))
            })
            .count();
        return Ok(Arc::new(ModelWeights::new(
            c.set,
            Naming::DiffusersVae { levels },
        )));
    }
    match find_prefix(&c.set, "decoder.conv_in.weight", &AE_PREFIXES) {
        Some(p) => Ok(Arc::new(ModelWeights::new(
            c.set.with_prefix(&p),
            Naming::Native,
        ))),
        None => Err(unknown_keys(&c.set, "a FLUX autoencoder")),
    }
}

/// What was detected about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub variant: Variant,
    pub kontext: bool,
    pub files: ModelFiles,
    pub dtype: DType,
}

/// A loaded FLUX model: transformer, autoencoder and text encoders, and the Redux encoder when
/// its files are there.
pub struct FluxModel {
    pub transformer: FluxTransformer,
    pub ae: AutoEncoder,
    pub text: TextEncoders,
    pub redux: Option<redux::ReduxEncoder>,
    pub info: ModelInfo,
}

/// Whether the transformer is Kontext-trained: an explicit option, else "kontext" in the file
/// name, else a diffusers `model_index.json` naming a Kontext pipeline.
fn detect_kontext(files: &ModelFiles, explicit: Option<bool>) -> Result<bool> {
    if let Some(k) = explicit {
        return Ok(k);
    }
    if files
        .transformer
        .to_string_lossy()
        .to_lowercase()
        .contains("kontext")
    {
        return Ok(true);
    }
    if let Some(index) = &files.model_index {
        let json = read_json(index)?;
        let class = json
            .get("_class_name")
            .and_then(|c| c.as_str())
            .unwrap_or("");
        return Ok(class.to_lowercase().contains("kontext"));
    }
    Ok(false)
}

/// Loads the transformer alone.
pub fn load_transformer(files: &ModelFiles, opts: &LoadOptions) -> Result<FluxTransformer> {
    let c = open_component("transformer", &files.transformer)?;
    let config_axes = c
        .config
        .as_ref()
        .and_then(|j| j.get("axes_dims_rope"))
        .and_then(|a| serde_json::from_value::<Vec<usize>>(a.clone()).ok());
    let w = transformer_weights(c)?;
    let config = transformer::infer_config(&w, opts.axes_dim.clone().or(config_axes))?;
    let kontext = detect_kontext(files, opts.kontext)?;
    let dtype = opts.compute_dtype();
    FluxTransformer::load(&w, config, kontext, dtype, &opts.device, opts.blocks)
}

/// Writes the transformer at `input` (any layout [`load_transformer`] reads: a BFL/ComfyUI file,
/// a diffusers folder or shard index, a GGUF or fp8 file) as a GGUF file of `dtype` with BFL
/// names and city96's rules ([`gguf::flux_type`]), one tensor in memory at a time.
pub fn quantize_transformer(input: &Path, output: &Path, dtype: GgmlDType) -> Result<()> {
    let c = open_component("transformer", input)?;
    let w = transformer_weights(c)?;
    let config = transformer::infer_config(&w, None)?;
    let tensors: Vec<(String, Vec<usize>)> = transformer::tensor_shapes(&config)
        .into_iter()
        .filter(|(name, _)| w.contains(name))
        .collect();
    gguf::write_flux(output, &tensors, dtype, |i| {
        let (name, shape) = &tensors[i];
        w.load(name, Some(shape), DType::F32, &Device::Cpu)
    })
}

/// Loads the autoencoder alone (scale/shift from a diffusers config when present).
pub fn load_autoencoder(files: &ModelFiles, opts: &LoadOptions) -> Result<AutoEncoder> {
    let c = open_component("autoencoder", &files.ae)?;
    let scale_shift = c.config.as_ref().and_then(|j| {
        Some((
            j.get("scaling_factor")?.as_f64()?,
            j.get("shift_factor")?.as_f64()?,
        ))
    });
    let w = ae_weights(c)?;
    let config = autoencoder::infer_config(&w, scale_shift)?;
    AutoEncoder::load(&w, config, opts.compute_dtype(), &opts.device)
}

/// Loads T5 and CLIP with their tokenizers. Text encoders always run in f32 on the CPU device
/// and in the compute dtype elsewhere.
pub fn load_text_encoders(files: &ModelFiles, opts: &LoadOptions) -> Result<TextEncoders> {
    let dtype = opts.compute_dtype();
    let t5_tok = PromptTokenizer::t5(&files.t5_tokenizer)?;
    let clip_tok = PromptTokenizer::clip(&files.clip_tokenizer)?;

    let c = open_component("T5", &files.t5)?;
    let json = c.config.clone();
    let w = Arc::new(t5_weights(c)?);
    let cfg = match &json {
        Some(j) => text::parse_t5_config(j)?,
        None => text::infer_t5_config(&w)?,
    };
    let t5 = T5Encoder::load(&w, &cfg, t5_tok, dtype, &opts.device)?;

    let c = open_component("CLIP", &files.clip)?;
    let heads = c
        .config
        .as_ref()
        .and_then(|j| j.get("num_attention_heads").and_then(|h| h.as_u64()))
        .or_else(|| {
            c.set
                .metadata("num_attention_heads")
                .and_then(|h| h.parse().ok())
        })
        .map(|h| h as usize);
    let prefix = find_prefix(
        &c.set,
        "embeddings.token_embedding.weight",
        &["text_model.", "", &format!("{CLIP_BUNDLED}text_model.")],
    )
    .ok_or_else(|| unknown_keys(&c.set, "a CLIP text encoder"))?;
    let w = Arc::new(ModelWeights::new(c.set, Naming::Native));
    let cfg = text::infer_clip_config(&w, &prefix, heads)?;
    let clip = ClipEncoder::load(&w, &prefix, &cfg, clip_tok, dtype, &opts.device)?;
    Ok(TextEncoders { t5, clip })
}

/// Bytes each component occupies once loaded, from the file headers alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentBytes {
    /// The transformer outside its blocks (embedders, final layer), in working form.
    pub transformer_base: u64,
    /// Each block (double blocks, then single blocks): (working form, stored form). The working
    /// form is at the compute dtype (on the CPU, compact weights expanded); on other devices
    /// compact weights stay at their stored size. The stored form is what streaming keeps in
    /// host memory.
    pub blocks: Vec<(u64, u64)>,
    pub autoencoder: u64,
    /// T5 and CLIP together on the compute device (T5's compact weights at their stored size).
    pub text_encoders: u64,
    /// T5 and CLIP together on the CPU in f32 (T5's compact weights at their stored size).
    pub text_encoders_host: u64,
}

impl ComponentBytes {
    /// The transformer with every block resident, in working form.
    pub fn transformer(&self) -> u64 {
        self.transformer_base + self.blocks.iter().map(|b| b.0).sum::<u64>()
    }

    /// The largest block in working form.
    pub fn largest_block(&self) -> u64 {
        self.blocks.iter().map(|b| b.0).max().unwrap_or(0)
    }

    /// Every block in its stored form, as streaming keeps them in host memory.
    pub fn stored_blocks(&self) -> u64 {
        self.blocks.iter().map(|b| b.1).sum()
    }

    /// Everything resident together.
    pub fn total(&self) -> u64 {
        self.transformer() + self.autoencoder + self.text_encoders
    }
}

/// What loading `files` with `opts` will occupy, from the file headers alone (nothing is read
/// or allocated).
pub fn component_bytes(files: &ModelFiles, opts: &LoadOptions) -> Result<ComponentBytes> {
    component_bytes_on(files, opts.compute_dtype(), opts.device.is_cpu())
}

/// What loading `files` to compute in `dtype` on the CPU (`on_cpu`) or another device will
/// occupy, from the file headers alone: what a planner needs to know about a device this
/// machine may not have.
pub fn component_bytes_on(
    files: &ModelFiles,
    dtype: DType,
    on_cpu: bool,
) -> Result<ComponentBytes> {
    // T5 keeps compact (GGUF, fp8) weights in their stored form.
    let bytes = |name: &str, path: &Path, dtype: DType, compact: bool| -> Result<u64> {
        Ok(open_component(name, path)?.set.loaded_bytes(dtype, compact))
    };
    let text = |dtype| -> Result<u64> {
        Ok(bytes("T5", &files.t5, dtype, true)? + bytes("CLIP", &files.clip, dtype, false)?)
    };
    let mut b = transformer_bytes(&files.transformer, dtype, on_cpu)?;
    b.autoencoder = bytes("autoencoder", &files.ae, dtype, false)?;
    b.text_encoders = text(dtype)?;
    b.text_encoders_host = text(DType::F32)?;
    Ok(b)
}

/// The transformer's fields of [`ComponentBytes`] for the transformer at `path` (the others 0).
pub fn transformer_bytes(path: &Path, dtype: DType, on_cpu: bool) -> Result<ComponentBytes> {
    let w = transformer_weights(open_component("transformer", path)?)?;
    let config = transformer::infer_config(&w, None)?;
    let size = dtype.size_in_bytes() as u64;
    // (working form, stored form) of a tensor.
    let tensor = |name: &str, shape: &[usize]| {
        let plain = shape.iter().product::<usize>() as u64 * size;
        let compact = w.compact_len(name, dtype);
        let working = match on_cpu {
            true => plain,
            false => compact.unwrap_or(plain),
        };
        (working, compact.unwrap_or(plain))
    };
    let mut b = ComponentBytes {
        blocks: vec![(0, 0); config.depth + config.depth_single_blocks],
        ..ComponentBytes::default()
    };
    for (name, shape) in transformer::tensor_shapes(&config) {
        if !w.contains(&name) {
            continue;
        }
        let (working, stored) = tensor(&name, &shape);
        match transformer::block_of(&config, &name) {
            Some(i) => {
                b.blocks[i].0 += working;
                b.blocks[i].1 += stored;
            }
            None => b.transformer_base += working,
        }
    }
    Ok(b)
}

/// The transformer's and the autoencoder's configs, from the file headers alone.
pub fn configs(files: &ModelFiles) -> Result<(transformer::Config, autoencoder::Config)> {
    let w = transformer_weights(open_component("transformer", &files.transformer)?)?;
    let ae = ae_weights(open_component("autoencoder", &files.ae)?)?;
    Ok((
        transformer::infer_config(&w, None)?,
        autoencoder::infer_config(&ae, None)?,
    ))
}

impl FluxModel {
    /// Loads every component.
    pub fn load(files: &ModelFiles, opts: &LoadOptions) -> Result<Self> {
        let transformer = load_transformer(files, opts)?;
        let ae = load_autoencoder(files, opts)?;
        let text = load_text_encoders(files, opts)?;
        let redux = match &files.redux {
            Some(r) => Some(redux::ReduxEncoder::load(
                r,
                opts.compute_dtype(),
                &opts.device,
            )?),
            None => None,
        };
        let info = ModelInfo {
            variant: transformer.variant(),
            kontext: transformer.is_kontext(),
            files: files.clone(),
            dtype: opts.compute_dtype(),
        };
        Ok(Self {
            transformer,
            ae,
            text,
            redux,
            info,
        })
    }

    /// Loads the model in `dir` (layout detected by [`ModelFiles::from_folder`]).
    pub fn load_folder(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::load(&ModelFiles::from_folder(dir)?, opts)
    }
}
