//! Full-size FLUX.1-dev from the quantized files users download, on this machine's CPU: memory
//! while loading and for one denoising step, and the step's time. Not a test: it writes ~36 GB of
//! files and runs for many minutes.
//!
//! `cargo bench -p flux-core --bench full_size -- [DIR] [q8_0] [q4_k] [fp8] [t5]` writes into DIR
//! (default `target/full-size`; files already there are reused) random-weight files with the
//! real names and shapes: FLUX.1-dev transformers as city96's Q8_0 / Q4_K_S GGUF and as an fp8
//! e4m3fn safetensors file (2-D weights fp8, the rest bf16), and city96's T5-XXL encoder in Q8_0
//! (llama.cpp names). Each file is then measured in a child process of its own (so each peak RSS
//! is its own): a transformer is loaded, then runs one forward at 256² (256 image tokens) with
//! 512 text tokens; the T5 encoder is loaded and encodes 512 tokens.

mod support;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::quantized::GgmlDType;
use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use flux_core::model::gguf::{self, Meta};
use flux_core::model::transformer::{tensor_shapes, Config};
use flux_core::model::{load_text_encoders, load_transformer, LoadOptions, ModelFiles, Variant};
use flux_core::tiny::{self, Layout};
use support::{peak_rss_mib, BoxError};

/// FLUX.1-dev's transformer (BFL `FluxParams`).
fn flux1_dev() -> Config {
    Config {
        in_channels: 64,
        vec_in_dim: 768,
        context_in_dim: 4096,
        hidden_size: 3072,
        mlp_ratio: 4.0,
        num_heads: 24,
        depth: 19,
        depth_single_blocks: 38,
        axes_dim: vec![16, 56, 56],
        theta: 10_000,
        qkv_bias: true,
        guidance_embed: true,
    }
}

/// T5-XXL encoder tensors in llama.cpp's names, PyTorch shapes.
fn t5_xxl() -> Vec<(String, Vec<usize>)> {
    let (d, ff, vocab, buckets, heads) = (4096, 10240, 32128, 32, 64);
    let mut t = vec![
        ("token_embd.weight".to_string(), vec![vocab, d]),
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

/// Random values for every tensor: slices of one pool of N(0, 0.02) values (independence does
/// not matter for memory and time, and drawing 12 billion normals would take longer than the
/// rest); norm scales are 1.
struct Values(Vec<f32>);

impl Values {
    fn new() -> Result<Self, BoxError> {
        Ok(Self(
            Tensor::randn(0f32, 0.02, 1 << 24, &Device::Cpu)?.to_vec1()?,
        ))
    }

    fn tensor(&self, i: usize, name: &str, shape: &[usize]) -> Result<Tensor, BoxError> {
        let n: usize = shape.iter().product();
        if name.contains("norm") && shape.len() == 1 {
            return Ok(Tensor::ones(shape, DType::F32, &Device::Cpu)?);
        }
        let start = (i * 7919) % self.0.len();
        let data: Vec<f32> = self.0.iter().cycle().skip(start).take(n).copied().collect();
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    }
}

fn write_gguf(
    path: &Path,
    arch: &str,
    tensors: &[(String, Vec<usize>)],
    dtype: impl Fn(&str, &[usize]) -> GgmlDType,
    values: &Values,
) -> Result<(), BoxError> {
    let plan: Vec<(String, Vec<usize>, GgmlDType)> = tensors
        .iter()
        .map(|(n, s)| (n.clone(), s.clone(), dtype(n, s)))
        .collect();
    let metadata = [
        ("general.architecture", Meta::String(arch.into())),
        ("general.quantization_version", Meta::U32(2)),
    ];
    gguf::write(path, &metadata, &plan, |i| {
        let (name, shape) = &tensors[i];
        values
            .tensor(i, name, shape)
            .map_err(|e| flux_core::Error::InvalidArgument(e.to_string()))
    })?;
    Ok(())
}

/// One tensor of the fp8 file, made when the writer asks for its bytes.
struct Lazy<'a> {
    values: &'a Values,
    index: usize,
    name: String,
    shape: Vec<usize>,
    fp8: bool,
}

impl safetensors::View for Lazy<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        match self.fp8 {
            true => safetensors::Dtype::F8_E4M3,
            false => safetensors::Dtype::BF16,
        }
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let t = self
            .values
            .tensor(self.index, &self.name, &self.shape)
            .expect("values");
        let dtype = if self.fp8 { DType::F8E4M3 } else { DType::BF16 };
        let t = t.to_dtype(dtype).expect("conversion");
        let (storage, _) = t.storage_and_layout();
        Cow::Owned(match &*storage {
            Storage::Cpu(CpuStorage::F8E4M3(v)) => v.iter().map(|x| x.to_bits()).collect(),
            Storage::Cpu(CpuStorage::BF16(v)) => {
                v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
            }
            _ => unreachable!("converted to fp8 or bf16 on the CPU above"),
        })
    }
    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * if self.fp8 { 1 } else { 2 }
    }
}

fn write_fp8(
    path: &Path,
    tensors: &[(String, Vec<usize>)],
    values: &Values,
) -> Result<(), BoxError> {
    let lazy = tensors.iter().enumerate().map(|(index, (name, shape))| {
        let fp8 =
            shape.len() == 2 && gguf::flux_type(name, shape, GgmlDType::Q8_0) == GgmlDType::Q8_0;
        let view = Lazy {
            values,
            index,
            name: name.clone(),
            shape: shape.clone(),
            fp8,
        };
        (name.clone(), view)
    });
    safetensors::serialize_to_file(lazy, None, path)?;
    Ok(())
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// The child: measures one file.
fn child(kind: &str, path: &Path) -> Result<(), BoxError> {
    let opts = LoadOptions::default();
    let start = Instant::now();
    match kind {
        "transformer" => {
            let m = load_transformer(&ModelFiles::transformer_only(path.to_path_buf()), &opts)?;
            println!(
                "load {:.1} s, peak RSS {:.2} GiB",
                start.elapsed().as_secs_f64(),
                peak_rss_mib() / 1024.0
            );
            let (side, text) = (16, 512);
            let ids: Vec<f32> = (0..side * side)
                .flat_map(|i| [0.0, (i / side) as f32, (i % side) as f32])
                .collect();
            let dev = Device::Cpu;
            let img = Tensor::randn(0f32, 1.0, (1, side * side, 64), &dev)?;
            let img_ids = Tensor::from_vec(ids, (1, side * side, 3), &dev)?;
            let txt = Tensor::randn(0f32, 1.0, (1, text, 4096), &dev)?;
            let txt_ids = Tensor::zeros((1, text, 3), DType::F32, &dev)?;
            let y = Tensor::randn(0f32, 1.0, (1, 768), &dev)?;
            let (t, g) = (Tensor::new(&[0.6f32], &dev)?, Tensor::new(&[3.5f32], &dev)?);
            let start = Instant::now();
            let out = m.forward(&img, &img_ids, &txt, &txt_ids, &t, &y, Some(&g))?;
            let finite = out
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .all(|v| v.is_finite());
            println!(
                "step {:.1} s (256 image + 512 text tokens, output finite: {finite}), peak RSS {:.2} GiB",
                start.elapsed().as_secs_f64(),
                peak_rss_mib() / 1024.0
            );
        }
        _ => {
            let dir =
                std::env::temp_dir().join(format!("flux-full-size-text-{}", std::process::id()));
            let mut files = tiny::write_tiny_model(
                &tiny::default_fixtures_dir(),
                &dir,
                Variant::Dev,
                Layout::SingleFiles,
            )?;
            files.t5 = path.to_path_buf();
            let mut text = load_text_encoders(&files, &opts)?;
            println!(
                "load {:.1} s, peak RSS {:.2} GiB",
                start.elapsed().as_secs_f64(),
                peak_rss_mib() / 1024.0
            );
            let start = Instant::now();
            let ids: Vec<u32> = (0..512).map(|i| (i * 37 % 32000) as u32).collect();
            let hidden = text.t5.forward_ids(&ids)?;
            println!(
                "encode {:.1} s (512 tokens -> {:?}), peak RSS {:.2} GiB",
                start.elapsed().as_secs_f64(),
                hidden.dims(),
                peak_rss_mib() / 1024.0
            );
            std::fs::remove_dir_all(&dir).ok();
        }
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1], Path::new(&args[2]));
    }
    let dir = args
        .iter()
        .find(|a| a.contains('/'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/full-size"));
    let mut wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.contains('/'))
        .collect();
    if wanted.is_empty() {
        wanted = vec!["q8_0", "q4_k", "fp8", "t5"];
    }
    std::fs::create_dir_all(&dir)?;
    let values = Values::new()?;
    let flux = tensor_shapes(&flux1_dev());
    for what in wanted {
        let (path, kind) = match what {
            "q8_0" => (dir.join("flux1-dev-Q8_0.gguf"), "transformer"),
            "q4_k" => (dir.join("flux1-dev-Q4_K_S.gguf"), "transformer"),
            "fp8" => (dir.join("flux1-dev-fp8-e4m3fn.safetensors"), "transformer"),
            "t5" => (dir.join("t5-v1_1-xxl-encoder-Q8_0.gguf"), "t5"),
            other => return Err(format!("unknown file kind '{other}'").into()),
        };
        if !path.is_file() {
            let start = Instant::now();
            let partial = path.with_extension("partial");
            match what {
                "q8_0" => write_gguf(
                    &partial,
                    "flux",
                    &flux,
                    |n, s| gguf::flux_type(n, s, GgmlDType::Q8_0),
                    &values,
                )?,
                "q4_k" => write_gguf(
                    &partial,
                    "flux",
                    &flux,
                    |n, s| gguf::flux_type(n, s, GgmlDType::Q4K),
                    &values,
                )?,
                "fp8" => write_fp8(&partial, &flux, &values)?,
                _ => write_gguf(
                    &partial,
                    "t5encoder",
                    &t5_xxl(),
                    |n, s| match s.len() == 2 && !n.contains("attn_rel_b") {
                        true => GgmlDType::Q8_0,
                        false => GgmlDType::F32,
                    },
                    &values,
                )?,
            }
            std::fs::rename(&partial, &path)?;
            println!(
                "wrote {} in {:.0} s",
                path.display(),
                start.elapsed().as_secs_f64()
            );
        }
        let size = std::fs::metadata(&path)?.len();
        println!("== {} ({:.2} GiB) ==", path.display(), gib(size));
        let out = Command::new(std::env::current_exe()?)
            .args(["child", kind])
            .arg(&path)
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            return Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
    }
    Ok(())
}
