//! `flux-cli`: generate an image from a prompt with a FLUX model folder, or with the built-in tiny
//! model when no folder is given, with LoRAs when asked; write the tiny model in either real
//! layout.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use candle_core::quantized::GgmlDType;
use candle_core::DType;
use clap::{Parser, Subcommand, ValueEnum};
use flux_core::image::{export, RgbImage};
use flux_core::lora::{self, Adapters, LoraChoice, LoraFile};
use flux_core::model::{FluxModel, LoadOptions, ModelFiles, Variant};
use flux_core::pipeline::edit::{self, KontextEdit};
use flux_core::pipeline::tools::{Mask, ToolInput};
use flux_core::pipeline::{self, NegativePrompt, TextToImage};
use flux_core::runtime::plan::{self, Limits};
use flux_core::sparse::{self, Storage};
use flux_core::tiny::{self, Layout};

#[derive(Parser)]
#[command(version, about = "FLUX.1 text-to-image from the command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum VariantArg {
    Dev,
    Schnell,
}

/// GGUF types `quantize` writes (K-quants as city96's "_S" files).
#[derive(Clone, Copy, ValueEnum)]
#[allow(non_camel_case_types)]
enum QuantArg {
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q6_k")]
    Q6_K,
    #[value(name = "q5_k")]
    Q5_K,
    #[value(name = "q5_1")]
    Q5_1,
    #[value(name = "q5_0")]
    Q5_0,
    #[value(name = "q4_k")]
    Q4_K,
    #[value(name = "q4_1")]
    Q4_1,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q3_k")]
    Q3_K,
    #[value(name = "q2_k")]
    Q2_K,
    F16,
    Bf16,
}

impl QuantArg {
    fn dtype(self) -> GgmlDType {
        match self {
            QuantArg::Q8_0 => GgmlDType::Q8_0,
            QuantArg::Q6_K => GgmlDType::Q6K,
            QuantArg::Q5_K => GgmlDType::Q5K,
            QuantArg::Q5_1 => GgmlDType::Q5_1,
            QuantArg::Q5_0 => GgmlDType::Q5_0,
            QuantArg::Q4_K => GgmlDType::Q4K,
            QuantArg::Q4_1 => GgmlDType::Q4_1,
            QuantArg::Q4_0 => GgmlDType::Q4_0,
            QuantArg::Q3_K => GgmlDType::Q3K,
            QuantArg::Q2_K => GgmlDType::Q2K,
            QuantArg::F16 => GgmlDType::F16,
            QuantArg::Bf16 => GgmlDType::BF16,
        }
    }
}

/// How a sparse model's transformer is stored.
#[derive(Clone, Copy, ValueEnum)]
#[allow(non_camel_case_types)]
enum StorageArg {
    Bf16,
    Fp8,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_k")]
    Q4_K,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    SingleFiles,
    Diffusers,
}

/// Which model to run and where.
#[derive(clap::Args)]
struct ModelArgs {
    /// Model folder (diffusers or BFL/ComfyUI single files); the tiny model when omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Which tiny model to use when --model is omitted.
    #[arg(long, value_enum, default_value = "dev")]
    tiny: VariantArg,
    /// Treat the transformer as Kontext-trained (default: detected from the file names).
    #[arg(long)]
    kontext: bool,
    /// Run on CUDA device N (needs a build with the `cuda` feature).
    #[arg(long)]
    cuda: Option<usize>,
}

/// What every job shares.
#[derive(clap::Args)]
struct JobArgs {
    #[arg(long)]
    prompt: String,
    /// Denoising steps (default: dev 28, schnell 4, Kontext 30).
    #[arg(long)]
    steps: Option<usize>,
    /// Distilled guidance (default: dev 3.5, Kontext 2.5).
    #[arg(long)]
    guidance: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file: .png (with the parameters embedded) or .jpg.
    #[arg(long, default_value = "out.png")]
    out: PathBuf,
    /// A FLUX LoRA file (safetensors: kohya, diffusers/PEFT, XLabs) to apply at STRENGTH
    /// (default 1); repeat for several.
    #[arg(long = "lora", value_name = "FILE[:STRENGTH]", value_parser = parse_lora)]
    loras: Vec<LoraChoice>,
    /// A negative prompt: true CFG, each step runs the model twice (off unless given).
    #[arg(long)]
    negative_prompt: Option<String>,
    /// The true CFG scale for --negative-prompt, ≥ 1 (1 turns it off).
    #[arg(long, default_value_t = 4.0, requires = "negative_prompt")]
    true_cfg: f32,
    /// A FLUX.1 Redux image whose look the result takes after (repeat for up to 4; needs the
    /// SigLIP folder and flux1-redux-dev.safetensors beside the model; not for `edit`).
    #[arg(long, value_name = "IMAGE")]
    redux: Vec<PathBuf>,
}

impl JobArgs {
    /// The negative prompt and its scale, checked.
    fn negative(&self) -> flux_core::Result<Option<NegativePrompt>> {
        let Some(prompt) = &self.negative_prompt else {
            return Ok(None);
        };
        let negative = NegativePrompt {
            prompt: prompt.clone(),
            scale: self.true_cfg,
        };
        negative.validate()?;
        Ok(Some(negative))
    }
}

/// Parses `FILE[:STRENGTH]`: what follows the last ':' is the strength when it reads as a number,
/// otherwise it is part of the file name (so `C:\loras\x.safetensors` is a file).
fn parse_lora(spec: &str) -> Result<LoraChoice, String> {
    let (path, strength) = match spec.rsplit_once(':') {
        Some((path, s)) if !path.is_empty() => match s.trim().parse::<f32>() {
            Ok(strength) if strength.is_finite() => (path, strength),
            Ok(_) => return Err(format!("the strength '{s}' is not a finite number")),
            Err(_) => (spec, 1.0),
        },
        _ => (spec, 1.0),
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(LoraChoice {
            path: path.into(),
            strength,
        }),
        Ok(_) => Err(format!("the LoRA '{path}' is not a file")),
        Err(e) => Err(format!("cannot read the LoRA file '{path}': {e}")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Generate an image from a prompt.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        job: JobArgs,
        #[arg(long, default_value_t = 1024)]
        width: usize,
        #[arg(long, default_value_t = 1024)]
        height: usize,
        /// A ready edge map (Canny) or depth map (Depth) for a FLUX.1 Canny/Depth model.
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Repaint the masked part of an image with a FLUX.1 Fill model (outpainting: the image on
    /// a larger canvas with the new border masked).
    Fill {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        job: JobArgs,
        /// The image (PNG or JPEG); the output has its size rounded down to multiples of 16.
        #[arg(long)]
        image: PathBuf,
        /// The mask, the image's size: white (255) = repaint, black = keep (first channel).
        #[arg(long)]
        mask: PathBuf,
    },
    /// Edit an image with FLUX.1 Kontext (needs a dev/Kontext model).
    Edit {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        job: JobArgs,
        /// Image to edit (PNG or JPEG); repeat for several reference images.
        #[arg(long, required = true)]
        image: Vec<PathBuf>,
        /// Keep the input size (rounded to multiples of 16) instead of snapping to a Kontext resolution.
        #[arg(long)]
        no_snap: bool,
    },
    /// Write a FLUX transformer (a BFL/ComfyUI file, a diffusers transformer folder, GGUF or
    /// fp8) as a GGUF file with city96's rules (in/out layers F16), one tensor in memory at a time.
    Quantize {
        /// The transformer to read.
        #[arg(long)]
        input: PathBuf,
        /// The GGUF file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "q8_0")]
        r#type: QuantArg,
    },
    /// Show the residency plan the engine picks for a model at each memory budget (from the
    /// file headers; nothing is loaded).
    Plan {
        /// Model folder (diffusers or BFL/ComfyUI single files).
        #[arg(long)]
        model: PathBuf,
        /// Plan for a GPU (bf16) instead of this CPU (f32).
        #[arg(long)]
        gpu: bool,
        /// Budgets in GB (10^9 bytes), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "24,16,12,8,6")]
        budget: Vec<f64>,
        /// Host memory in GB beside a GPU (default: this machine's available memory).
        #[arg(long)]
        host_memory: Option<f64>,
        /// The image the job makes.
        #[arg(long, default_value_t = 1024)]
        width: usize,
        #[arg(long, default_value_t = 1024)]
        height: usize,
    },
    /// Write FLUX.1-dev at full size with its data a hole (no disk used): the transformer as
    /// downloaded in `storage`, T5-XXL, CLIP-L and the autoencoder beside it, for `plan`.
    SparseModel {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "bf16")]
        storage: StorageArg,
    },
    /// Write the tiny random-weight model (the reference fixtures' weights) in a real layout.
    TinyModel {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "dev")]
        variant: VariantArg,
        #[arg(long, value_enum, default_value = "single-files")]
        layout: LayoutArg,
    },
}

fn variant(v: VariantArg) -> Variant {
    match v {
        VariantArg::Dev => Variant::Dev,
        VariantArg::Schnell => Variant::Schnell,
    }
}

fn layout(l: LayoutArg) -> Layout {
    match l {
        LayoutArg::SingleFiles => Layout::SingleFiles,
        LayoutArg::Diffusers => Layout::Diffusers,
    }
}

fn load(args: &ModelArgs) -> flux_core::Result<FluxModel> {
    let dir = match &args.model {
        Some(dir) => dir.clone(),
        None => {
            let v = variant(args.tiny);
            let dir = std::env::temp_dir().join(format!("flux-tiny-{}", v.name()));
            tiny::write_tiny_model(&tiny::default_fixtures_dir(), &dir, v, Layout::SingleFiles)?;
            eprintln!(
                "no --model given: using the built-in tiny {} model ({})",
                v.name(),
                dir.display()
            );
            dir
        }
    };
    let device = match args.cuda {
        Some(i) => candle_core::Device::new_cuda(i).map_err(|e| {
            flux_core::Error::InvalidArgument(format!(
                "CUDA device {i} is unavailable ({e}); leave out --cuda to run on the CPU"
            ))
        })?,
        None => candle_core::Device::Cpu,
    };
    let kontext = args.kontext.then_some(true);
    let start = Instant::now();
    let model = FluxModel::load_folder(
        &dir,
        &LoadOptions {
            device,
            kontext,
            ..LoadOptions::default()
        },
    )?;
    eprintln!(
        "loaded {} model in {:.2?}",
        model.info.variant.name(),
        start.elapsed()
    );
    Ok(model)
}

/// Reads the job's LoRA files (before the model is loaded, so that a bad file fails at once).
fn read_loras(choices: &[LoraChoice]) -> flux_core::Result<Vec<(Arc<LoraFile>, f32)>> {
    choices
        .iter()
        .map(|choice| {
            let file = LoraFile::open(&choice.path)?;
            let unknown = file.unknown_keys();
            if !unknown.is_empty() {
                eprintln!(
                    "warning: LoRA '{}': {} keys are not for FLUX's transformer or not understood, \
                     and are ignored (e.g. {})",
                    choice.path.display(),
                    unknown.len(),
                    lora::examples(unknown)
                );
            }
            Ok((Arc::new(file), choice.strength))
        })
        .collect()
}

/// Puts `loras` on the model, as the engine does: merged into the weights when a copy of the
/// layers they change (the originals are kept) fits in free memory beside the job's activations
/// (`tokens` text + image tokens) and the weights are held whole; otherwise as low-rank branches
/// beside the weights. Prints what it did.
fn apply_loras(
    model: &mut FluxModel,
    loras: &[(Arc<LoraFile>, f32)],
    tokens: usize,
) -> flux_core::Result<()> {
    if loras.is_empty() {
        return Ok(());
    }
    let t = &mut model.transformer;
    let adapters = Adapters::new(loras, |name| t.tensor_shape(name))?;
    let copies = t.merge_cost(&adapters);
    let need = copies.saturating_add(t.activation_bytes(tokens));
    let fits = need <= flux_core::memory::available_on(t.device());
    let layers = adapters.layer_count();
    let start = Instant::now();
    let merged = t.set_adapters(Some(Arc::new(adapters)), fits)?;
    for (file, strength) in loras {
        let choice = LoraChoice {
            path: file.path().to_path_buf(),
            strength: *strength,
        };
        eprintln!(
            "LoRA {} ({} modules, {})",
            choice.describe(),
            file.module_count(),
            file.path().display()
        );
    }
    let how = match (merged, fits) {
        (true, _) => "merged into the weights".to_string(),
        (false, true) => {
            "run as low-rank branches (quantized or packed weights are not merged into)".into()
        }
        (false, false) => format!(
            "run as low-rank branches (no room for a merged copy of {:.1} MB)",
            copies as f64 / 1e6
        ),
    };
    eprintln!(
        "LoRAs on {layers} layers: {how}, in {:.2?}",
        start.elapsed()
    );
    Ok(())
}

/// Text + image tokens of a job at `sizes` (the target, then any references) with `t5_len`
/// text tokens.
fn job_tokens(sizes: &[(usize, usize)], t5_len: usize) -> usize {
    t5_len
        + sizes
            .iter()
            .map(|(w, h)| (w / 16) * (h / 16))
            .sum::<usize>()
}

fn progress(s: &pipeline::sampler::StepInfo) -> ControlFlow<()> {
    eprintln!("step {}/{}", s.step, s.total);
    ControlFlow::Continue(())
}

/// Reads a PNG or JPEG file.
fn read_image(path: &Path) -> flux_core::Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| flux_core::Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    export::decode(&bytes)
}

/// Text-to-image, or a Fill or Canny/Depth job with `tool`, at `size`, saved as `job` says.
fn generate(
    model: &ModelArgs,
    job: &JobArgs,
    (width, height): (usize, usize),
    tool: Option<ToolInput>,
) -> flux_core::Result<()> {
    let loras = read_loras(&job.loras)?;
    let negative = job.negative()?;
    let redux = job
        .redux
        .iter()
        .map(|p| read_image(p).map(Into::into))
        .collect::<flux_core::Result<Vec<_>>>()?;
    let mut model = load(model)?;
    let req = TextToImage {
        width,
        height,
        steps: job.steps,
        guidance: job.guidance,
        loras: job.loras.clone(),
        negative,
        tool,
        redux,
        ..TextToImage::new(job.prompt.clone(), job.seed)
    };
    let t5_len = req.resolve(model.info.variant)?.t5_len;
    apply_loras(&mut model, &loras, job_tokens(&[(width, height)], t5_len))?;
    let result = pipeline::generate(&mut model, &req, &mut progress)?;
    save(job, &result)
}

fn save(job: &JobArgs, result: &pipeline::Generated) -> flux_core::Result<()> {
    export::save(&job.out, &result.image, Some(&result.meta))?;
    let t = result.timings;
    eprintln!(
        "wrote {} ({}x{}): text {:.2?}, denoise {:.2?}, decode {:.2?}",
        job.out.display(),
        result.image.width,
        result.image.height,
        t.text_encoding,
        t.denoising,
        t.decoding
    );
    Ok(())
}

/// Prints the plan for the model in `dir` at each budget.
fn print_plans(
    dir: &Path,
    gpu: bool,
    budgets: &[f64],
    host: Option<f64>,
    size: (usize, usize),
) -> flux_core::Result<()> {
    let files = ModelFiles::from_folder(dir)?;
    let dtype = if gpu { DType::BF16 } else { DType::F32 };
    let bytes = flux_core::model::component_bytes_on(&files, dtype, !gpu)?;
    let (tc, ac) = flux_core::model::configs(&files)?;
    let work = plan::work_estimate((&tc, &ac), dtype, !gpu, (size.0 * size.1, 0), 512);
    let gb = |b: u64| b as f64 / 1e9;
    let host = host.map_or_else(flux_core::memory::available, |h| (h * 1e9) as u64);
    println!(
        "{} on the {}, {}x{}: transformer {:.2} GB resident, {:.2} GB stored blocks, largest block {:.2} GB; autoencoder {:.2} GB; text encoders {:.2} GB ({:.2} GB on the CPU); activations {:.2} GB ({:.2} GB with the autoencoder tiled)",
        dir.display(),
        if gpu { "GPU" } else { "CPU" },
        size.0,
        size.1,
        gb(bytes.transformer()),
        gb(bytes.stored_blocks()),
        gb(bytes.largest_block()),
        gb(bytes.autoencoder),
        gb(bytes.text_encoders),
        gb(bytes.text_encoders_host),
        gb(work.peak(false)),
        gb(work.peak(true)),
    );
    for &budget in budgets {
        let limits = Limits {
            budget: (budget * 1e9) as u64,
            host,
            on_cpu: !gpu,
        };
        match plan::choose(&bytes, &work, limits, None) {
            Ok(p) => {
                let need = p.need(&bytes, &work, !gpu);
                println!(
                    "{budget:>5} GB: {} ({:.2} GB on the device, {:.2} GB of host memory)",
                    p.describe(),
                    gb(need.device),
                    gb(need.host)
                );
            }
            Err(e) => println!("{budget:>5} GB: refused: {e}"),
        }
    }
    Ok(())
}

fn run(cli: Cli) -> flux_core::Result<()> {
    match cli.command {
        Command::Plan {
            model,
            gpu,
            budget,
            host_memory,
            width,
            height,
        } => print_plans(&model, gpu, &budget, host_memory, (width, height))?,
        Command::SparseModel { out, storage } => {
            let storage = match storage {
                StorageArg::Bf16 => Storage::Bf16,
                StorageArg::Fp8 => Storage::Fp8,
                StorageArg::Q8_0 => Storage::Gguf(GgmlDType::Q8_0),
                StorageArg::Q4_K => Storage::Gguf(GgmlDType::Q4K),
            };
            sparse::write_flux1_dev_folder(&out, storage)?;
            eprintln!(
                "wrote a sparse FLUX.1-dev ({storage:?}) to {}",
                out.display()
            );
        }
        Command::Quantize { input, out, r#type } => {
            let start = Instant::now();
            flux_core::model::quantize_transformer(&input, &out, r#type.dtype())?;
            eprintln!("wrote {} in {:.1?}", out.display(), start.elapsed());
        }
        Command::TinyModel {
            out,
            variant: v,
            layout: l,
        } => {
            tiny::write_tiny_model(&tiny::default_fixtures_dir(), &out, variant(v), layout(l))?;
            eprintln!(
                "wrote the tiny {} model to {}",
                variant(v).name(),
                out.display()
            );
        }
        Command::Generate {
            model,
            job,
            width,
            height,
            control,
        } => {
            let tool = match control {
                Some(path) => Some(ToolInput::Control(read_image(&path)?.into())),
                None => None,
            };
            generate(&model, &job, (width, height), tool)?;
        }
        Command::Fill {
            model,
            job,
            image,
            mask,
        } => {
            let image = read_image(&image)?;
            let mask = Mask::from_first_channel(&read_image(&mask)?);
            let size = (image.width / 16 * 16, image.height / 16 * 16);
            let tool = ToolInput::Fill {
                image: image.into(),
                mask,
            };
            generate(&model, &job, size, Some(tool))?;
        }
        Command::Edit {
            model,
            job,
            image,
            no_snap,
        } => {
            if !job.redux.is_empty() {
                return Err(flux_core::Error::InvalidArgument(
                    "--redux goes with generate and fill, not with edit".into(),
                ));
            }
            let loras = read_loras(&job.loras)?;
            let images = image
                .iter()
                .map(|p| read_image(p))
                .collect::<flux_core::Result<Vec<_>>>()?;
            let mut model = load(&model)?;
            let mut req = KontextEdit::new(job.prompt.clone(), images[0].clone(), job.seed);
            req.steps = job.steps;
            req.guidance = job.guidance;
            req.loras = job.loras.clone();
            req.negative = job.negative()?;
            if no_snap {
                req.resolutions.clear();
            }
            // The target takes the first reference's size.
            let mut sizes: Vec<_> = images
                .iter()
                .map(|i| edit::snapped_size(i.width, i.height, &req.resolutions))
                .collect();
            sizes.push(sizes[0]);
            let t5_len = model.info.variant.defaults().t5_len;
            apply_loras(&mut model, &loras, job_tokens(&sizes, t5_len))?;
            req.references = images.into_iter().map(Into::into).collect();
            let result = edit::edit(&mut model, &req, &mut progress)?;
            save(&job, &result)?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
