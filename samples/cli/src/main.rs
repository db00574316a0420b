//! `flux-cli`: generate an image from a prompt with a FLUX model folder, or with the built-in tiny
//! model when no folder is given; write the tiny model in either real layout.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use flux_core::image::export;
use flux_core::model::{FluxModel, LoadOptions, Variant};
use flux_core::pipeline::{self, TextToImage};
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

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    SingleFiles,
    Diffusers,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an image from a prompt.
    Generate {
        /// Model folder (diffusers or BFL/ComfyUI single files); the tiny model when omitted.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Which tiny model to use when --model is omitted.
        #[arg(long, value_enum, default_value = "dev")]
        tiny: VariantArg,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 1024)]
        width: usize,
        #[arg(long, default_value_t = 1024)]
        height: usize,
        /// Denoising steps (default: dev 28, schnell 4).
        #[arg(long)]
        steps: Option<usize>,
        /// Distilled guidance (dev; default 3.5).
        #[arg(long)]
        guidance: Option<f32>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file: .png (with the parameters embedded) or .jpg.
        #[arg(long, default_value = "out.png")]
        out: PathBuf,
        /// Run on CUDA device N (needs a build with the `cuda` feature).
        #[arg(long)]
        cuda: Option<usize>,
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

fn run(cli: Cli) -> flux_core::Result<()> {
    match cli.command {
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
            tiny: t,
            prompt,
            width,
            height,
            steps,
            guidance,
            seed,
            out,
            cuda,
        } => {
            let dir = match model {
                Some(dir) => dir,
                None => {
                    let dir = std::env::temp_dir().join(format!("flux-tiny-{}", variant(t).name()));
                    tiny::write_tiny_model(
                        &tiny::default_fixtures_dir(),
                        &dir,
                        variant(t),
                        Layout::SingleFiles,
                    )?;
                    eprintln!(
                        "no --model given: using the built-in tiny {} model ({})",
                        variant(t).name(),
                        dir.display()
                    );
                    dir
                }
            };
            let device = match cuda {
                Some(i) => candle_core::Device::new_cuda(i).map_err(flux_core::Error::from)?,
                None => candle_core::Device::Cpu,
            };
            let start = Instant::now();
            let mut model = FluxModel::load_folder(
                &dir,
                &LoadOptions {
                    device,
                    ..LoadOptions::default()
                },
            )?;
            eprintln!(
                "loaded {} model in {:.2?}",
                model.info.variant.name(),
                start.elapsed()
            );
            let req = TextToImage {
                width,
                height,
                steps,
                guidance,
                ..TextToImage::new(prompt, seed)
            };
            let mut progress = |s: &pipeline::sampler::StepInfo| {
                eprintln!("step {}/{}", s.step, s.total);
                ControlFlow::Continue(())
            };
            let result = pipeline::generate(&mut model, &req, &mut progress)?;
            export::save(&out, &result.image, Some(&result.meta))?;
            let t = result.timings;
            eprintln!(
                "wrote {} ({}x{}): text {:.2?}, denoise {:.2?}, decode {:.2?}",
                out.display(),
                result.image.width,
                result.image.height,
                t.text_encoding,
                t.denoising,
                t.decoding
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
