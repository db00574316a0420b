//! Full-size FLUX.1-dev from the quantized files users download, on this machine's CPU: memory
//! while loading and for one denoising step, and the step's time. Not a test: it writes ~36 GB of
//! files and runs for many minutes.
//!
//! `cargo bench -p flux-core --bench full_size -- [DIR] [q8_0] [t5] [both] [q4_k] [fp8]` writes
//! into DIR (default `target/full-size`; files already there are reused) random-weight files
//! with the real names and shapes: FLUX.1-dev transformers as city96's Q8_0 / Q4_K_S GGUF and as
//! an fp8 e4m3fn safetensors file (2-D weights fp8, the rest bf16), and city96's T5-XXL encoder
//! in Q8_0 (llama.cpp names). Each is then measured in a child process of its own (so each peak
//! RSS is its own): a transformer is loaded with its blocks streamed from their stored form (two
//! expanded at a time), then runs one forward at 256² (256 image tokens) with 512 text tokens;
//! the T5 encoder is loaded and encodes 512 tokens; `both` loads T5 and the Q8_0 transformer in
//! one process and runs the encode and the step on its output.

mod support;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::quantized::GgmlDType;
use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use flux_core::model::gguf::{self, Meta};
use flux_core::model::transformer::FluxTransformer;
use flux_core::model::transformer::{tensor_shapes, Config};
use flux_core::model::{
    load_text_encoders, load_transformer, BlockResidency, LoadOptions, ModelFiles, Variant,
};
use flux_core::text::TextEncoders;
use flux_core::tiny::{self, Layout};
use support::{peak_rss_mib, BoxError};

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
        let fp8 = flux_core::sparse::fp8_in_checkpoint(name, shape);
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

fn report(what: &str, start: Instant) {
    println!(
        "{what} {:.1} s, peak RSS {:.2} GiB",
        start.elapsed().as_secs_f64(),
        peak_rss_mib() / 1024.0
    );
}

/// The T5 encoder of `path`, with the tiny model's tokenizers and CLIP beside it.
fn load_t5(path: &Path, scratch: &Path) -> Result<TextEncoders, BoxError> {
    let mut files = tiny::write_tiny_model(
        &tiny::default_fixtures_dir(),
        scratch,
        Variant::Dev,
        Layout::SingleFiles,
    )?;
    files.t5 = path.to_path_buf();
    Ok(load_text_encoders(&files, &LoadOptions::default())?)
}

/// T5's hidden states for 512 tokens.
fn encode(text: &mut TextEncoders) -> Result<Tensor, BoxError> {
    let ids: Vec<u32> = (0..512).map(|i| (i * 37 % 32000) as u32).collect();
    Ok(text.t5.forward_ids(&ids)?)
}

/// One dev forward at 256² (256 image tokens) on `txt` (1, 512, 4096).
fn step(m: &FluxTransformer, txt: &Tensor) -> Result<(), BoxError> {
    let side = 16;
    let ids: Vec<f32> = (0..side * side)
        .flat_map(|i| [0.0, (i / side) as f32, (i % side) as f32])
        .collect();
    let dev = Device::Cpu;
    let img = Tensor::randn(0f32, 1.0, (1, side * side, 64), &dev)?;
    let img_ids = Tensor::from_vec(ids, (1, side * side, 3), &dev)?;
    let txt_ids = Tensor::zeros((1, txt.dim(1)?, 3), DType::F32, &dev)?;
    let y = Tensor::randn(0f32, 1.0, (1, 768), &dev)?;
    let (t, g) = (Tensor::new(&[0.6f32], &dev)?, Tensor::new(&[3.5f32], &dev)?);
    let out = m.forward(&img, &img_ids, txt, &txt_ids, &t, &y, Some(&g))?;
    let finite = out
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .all(|v| v.is_finite());
    println!(
        "(256 image + {} text tokens, output finite: {finite})",
        txt.dim(1)?
    );
    Ok(())
}

/// The child: measures `kind` (transformer, t5, both) on `paths`.
fn child(kind: &str, paths: &[PathBuf]) -> Result<(), BoxError> {
    let scratch = std::env::temp_dir().join(format!("flux-full-size-{}", std::process::id()));
    // Blocks kept in their stored form, two (one beside T5) expanded at a time: resident, the
    // f32 working form would need 47.6 GB.
    let transformer = |path: &Path, window| {
        let files = ModelFiles::transformer_only(path.to_path_buf());
        let opts = LoadOptions {
            blocks: BlockResidency::streamed(window),
            ..LoadOptions::default()
        };
        load_transformer(&files, &opts)
    };
    match (kind, paths) {
        ("transformer", [path]) => {
            let start = Instant::now();
            let m = transformer(path, 2)?;
            report("load", start);
            let txt = Tensor::randn(0f32, 1.0, (1, 512, 4096), &Device::Cpu)?;
            let start = Instant::now();
            step(&m, &txt)?;
            report("step", start);
        }
        ("t5", [path]) => {
            let start = Instant::now();
            let mut text = load_t5(path, &scratch)?;
            report("load", start);
            let start = Instant::now();
            encode(&mut text)?;
            report("encode 512 tokens", start);
        }
        ("both", [flux, t5]) => {
            let start = Instant::now();
            let mut text = load_t5(t5, &scratch)?;
            let m = transformer(flux, 1)?;
            report("load T5 and transformer", start);
            let start = Instant::now();
            let txt = encode(&mut text)?;
            report("encode 512 tokens", start);
            let start = Instant::now();
            step(&m, &txt)?;
            report("step", start);
        }
        _ => return Err(format!("child: {kind} {paths:?}").into()),
    }
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

/// The file for `what` in `dir`, written first when it is not there.
fn ensure(dir: &Path, what: &str, values: &Values) -> Result<PathBuf, BoxError> {
    let flux = || tensor_shapes(&Config::flux1_dev());
    let path = match what {
        "q8_0" => dir.join("flux1-dev-Q8_0.gguf"),
        "q4_k" => dir.join("flux1-dev-Q4_K_S.gguf"),
        "fp8" => dir.join("flux1-dev-fp8-e4m3fn.safetensors"),
        "t5" => dir.join("t5-v1_1-xxl-encoder-Q8_0.gguf"),
        other => return Err(format!("unknown file kind '{other}'").into()),
    };
    if path.is_file() {
        return Ok(path);
    }
    let start = Instant::now();
    let partial = path.with_extension("partial");
    let flux_file = |dtype| {
        write_gguf(
            &partial,
            "flux",
            &flux(),
            |n, s| gguf::flux_type(n, s, dtype),
            values,
        )
    };
    match what {
        "q8_0" => flux_file(GgmlDType::Q8_0)?,
        "q4_k" => flux_file(GgmlDType::Q4K)?,
        "fp8" => write_fp8(&partial, &flux(), values)?,
        _ => write_gguf(
            &partial,
            "t5encoder",
            &flux_core::sparse::t5_llama(),
            flux_core::sparse::t5_q8_0_type,
            values,
        )?,
    }
    std::fs::rename(&partial, &path)?;
    println!(
        "wrote {} in {:.0} s",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(path)
}

fn main() -> Result<(), BoxError> {
    let args = support::args();
    if args.first().map(String::as_str) == Some("child") {
        let paths: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
        return child(&args[1], &paths);
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
        wanted = vec!["q8_0", "t5", "both", "q4_k", "fp8"];
    }
    std::fs::create_dir_all(&dir)?;
    let values = Values::new()?;
    for what in wanted {
        let (kind, paths) = match what {
            "both" => (
                "both",
                vec![ensure(&dir, "q8_0", &values)?, ensure(&dir, "t5", &values)?],
            ),
            "t5" => ("t5", vec![ensure(&dir, what, &values)?]),
            _ => ("transformer", vec![ensure(&dir, what, &values)?]),
        };
        let size: u64 = paths
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()))
            .sum::<Result<_, _>>()?;
        println!("== {what}: {paths:?} ({:.2} GiB) ==", gib(size));
        let out = Command::new(std::env::current_exe()?)
            .args(["child", kind])
            .args(&paths)
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            return Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
    }
    Ok(())
}
