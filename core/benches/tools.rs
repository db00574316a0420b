//! The FLUX.1 tools' step time against text-to-image, on the CPU: the small config (hidden 768,
//! 12 heads, 4 double + 8 single blocks, FLUX.1's text and latent widths) at 256×256 with 256 T5
//! tokens, random weights; Fill and Canny/Depth models are the same config with 384 and 128
//! inputs. Redux appends 729 tokens (SigLIP so400m's patches) to the text; true CFG runs a second
//! pass on a negative prompt; a BFL Canny/Depth LoRA (every layer, rank 32: the real one's 128 at
//! hidden 3072) makes the plain model a Control one, merged into its weights or as branches.
//! Prints the median ms/step of each and its ratio to text-to-image.
//!
//! `cargo bench -p flux-core --bench tools [-- STEPS]`

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use flux_core::lora::{Adapters, LoraFile};
use flux_core::model::transformer::{tensor_shapes, Config, FluxTransformer, Tool};
use flux_core::model::{self, LoadOptions, ModelFiles};
use flux_core::pipeline::sampler::Guides;
use flux_core::pipeline::{self, noise, packing};
use flux_core::text::PromptEmbedding;

mod support;
use support::time_steps;

/// A random-weight transformer of `config` with `in_channels` inputs, loaded as users load one.
fn transformer(dir: &std::path::Path, in_channels: usize) -> flux_core::Result<FluxTransformer> {
    let config = Config {
        in_channels,
        ..support::small_config()
    };
    let path = dir.join(format!("flux1-in{in_channels}.safetensors"));
    flux_core::tiny::write_random_transformer(&path, &config, 1, DType::F32)?;
    let opts = LoadOptions {
        axes_dim: Some(config.axes_dim.clone()),
        ..LoadOptions::default()
    };
    model::load_transformer(&ModelFiles::transformer_only(path), &opts)
}

/// Writes a random BFL control LoRA of `rank` for `config` (every dense layer, img_in reading
/// twice the inputs, biases, the q/k norm scales) to `path`.
fn write_control_lora(path: &Path, config: &Config, rank: usize) -> flux_core::Result<()> {
    let mut tensors = HashMap::new();
    for (seed, (name, shape)) in tensor_shapes(config).into_iter().enumerate() {
        let seed = 100 + 3 * seed as u64;
        let random = |seed: u64, shape: &[usize], scale: f64| -> flux_core::Result<Tensor> {
            let n = shape.iter().product();
            Ok((Tensor::from_vec(noise::gaussian(seed, n), shape, &Device::Cpu)? * scale)?)
        };
        if let Some(layer) = name.strip_suffix(".weight") {
            let inputs = shape[1] * if layer == "img_in" { 2 } else { 1 };
            let a = random(seed, &[rank, inputs], 1.0 / (inputs as f64).sqrt())?;
            let b = random(seed + 1, &[shape[0], rank], 1e-2)?;
            tensors.insert(format!("{layer}.lora_A.weight"), a);
            tensors.insert(format!("{layer}.lora_B.weight"), b);
        } else if let Some(layer) = name.strip_suffix(".bias") {
            tensors.insert(format!("{layer}.lora_B.bias"), random(seed, &shape, 1e-2)?);
        } else {
            tensors.insert(name, Tensor::ones(shape, DType::F32, &Device::Cpu)?);
        }
    }
    Ok(candle_core::safetensors::save(&tensors, path)?)
}

fn gaussian(seed: u64, shape: (usize, usize, usize)) -> flux_core::Result<Tensor> {
    let n = shape.0 * shape.1 * shape.2;
    Ok(Tensor::from_vec(
        noise::gaussian(seed, n),
        shape,
        &Device::Cpu,
    )?)
}

fn main() -> flux_core::Result<()> {
    let steps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(4);
    let dir = std::env::temp_dir().join(format!("flux-bench-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| flux_core::Error::Io {
        path: dir.clone(),
        source,
    })?;
    let (mut plain, fill, control) = (
        transformer(&dir, 64)?,
        transformer(&dir, 384)?,
        transformer(&dir, 128)?,
    );
    let lora_path = dir.join("flux1-canny-dev-lora.safetensors");
    write_control_lora(&lora_path, plain.config(), 32)?;
    let lora = Arc::new(LoraFile::open(&lora_path)?);
    let _ = std::fs::remove_dir_all(&dir);

    let (size, txt_len, cpu) = (256, 256, Device::Cpu);
    let (h, w) = packing::latent_size(size, size);
    let tokens = (h / 2) * (w / 2);
    let latent = noise::latent_noise(4, 16, h, w, &cpu)?;
    let embedding = |seed: u64, len: usize| -> flux_core::Result<PromptEmbedding> {
        Ok(PromptEmbedding {
            txt: gaussian(seed, (1, len, 4096))?,
            vec: Tensor::from_vec(noise::gaussian(seed + 1, 768), (1, 768), &cpu)?,
        })
    };
    let text = |m: &FluxTransformer, e: &PromptEmbedding| pipeline::conditioning(m, e, 3.5);
    let run = |m: &FluxTransformer, cond: &pipeline::sampler::Conditioning, guides: &Guides| {
        time_steps(|hook| pipeline::sample(m, cond, guides, &latent, steps + 1, true, hook))
    };
    let positive = embedding(2, txt_len)?;
    let cond = text(&plain, &positive)?;
    // A first run warms the allocator and caches; it is not counted.
    run(&plain, &cond, &Guides::default())?;
    let t2i = run(&plain, &cond, &Guides::default())?;

    let features = |f: usize| gaussian(5, (1, tokens, f));
    let fill_features = features(Tool::Fill.features(64))?;
    let fill_guides = Guides {
        features: Some(&fill_features),
        ..Guides::default()
    };
    let fill_time = run(&fill, &text(&fill, &positive)?, &fill_guides)?;
    let control_features = features(Tool::Control.features(64))?;
    let control_guides = Guides {
        features: Some(&control_features),
        ..Guides::default()
    };
    let control_time = run(&control, &text(&control, &positive)?, &control_guides)?;

    let redux = embedding(2, txt_len + 729)?;
    let redux_time = run(&plain, &text(&plain, &redux)?, &Guides::default())?;

    let negative = text(&plain, &embedding(7, txt_len)?)?;
    let cfg_guides = Guides {
        negative: Some((&negative, 4.0)),
        ..Guides::default()
    };
    let cfg_time = run(&plain, &cond, &cfg_guides)?;

    let adapters = Arc::new(Adapters::new(&[(lora, 0.85)], |n| plain.tensor_shape(n))?);
    let mut lora_times = Vec::new();
    for merge in [true, false] {
        plain.set_adapters(Some(adapters.clone()), merge)?;
        assert_eq!(plain.tool(), Some(Tool::Control));
        lora_times.push(run(&plain, &text(&plain, &positive)?, &control_guides)?);
    }

    println!(
        "config: hidden 768, 12 heads, 4 double + 8 single blocks, f32, CPU ({} threads); \
         {size}x{size} ({tokens} image tokens) + {txt_len} text tokens",
        candle_core::utils::get_num_threads()
    );
    t2i.print("text-to-image");
    for (what, times) in [
        ("Fill (384 inputs)", &fill_time),
        ("Canny/Depth (128 inputs)", &control_time),
        ("Redux (+729 text tokens)", &redux_time),
        ("true CFG (two passes)", &cfg_time),
        ("Canny/Depth LoRA merged", &lora_times[0]),
        ("Canny/Depth LoRA as branches", &lora_times[1]),
    ] {
        times.print(what);
        println!(
            "  {what} / text-to-image: {:.2}x",
            times.median / t2i.median
        );
    }
    Ok(())
}
