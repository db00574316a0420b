//! Denoising-step benchmark on the CPU: a small but not tiny FLUX config (hidden 768, 12 heads,
//! 4 double + 8 single blocks) at 256×256 (256 image tokens) with 256 T5 tokens, random weights
//! written in the BFL layout and loaded through the production loader. Prints ms/step for
//! text-to-image and for Kontext with one same-size reference (twice the image tokens), and peak RSS.
//!
//! `cargo bench -p flux-core --bench denoise [-- STEPS]`

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flux_core::model::{self, LoadOptions, ModelFiles};
use flux_core::pipeline::sampler::{Guides, ReferenceTokens};
use flux_core::pipeline::{self, edit, noise, packing};
use flux_core::text::PromptEmbedding;

mod support;
use support::{peak_rss_mib, time_steps};

fn main() -> flux_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // Child mode: write the random weights, so their memory never counts in this process's peak.
    if let Some(i) = args.iter().position(|a| a == "--write-weights") {
        return flux_core::tiny::write_random_transformer(
            args[i + 1].as_ref(),
            &support::small_config(),
            1,
            DType::F32,
        );
    }
    let steps: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(6);
    let config = support::small_config();
    let dir = std::env::temp_dir().join(format!("flux-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| flux_core::Error::Image(e.to_string()))?;
    let path = dir.join("flux1-dev.safetensors");
    let exe = std::env::current_exe().map_err(|e| flux_core::Error::Image(e.to_string()))?;
    let status = std::process::Command::new(exe)
        .arg("--write-weights")
        .arg(&path)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        return Err(flux_core::Error::Image(
            "writing the random weights failed".into(),
        ));
    }
    let weight_mib = std::fs::metadata(&path)
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(f64::NAN);
    let files = ModelFiles::transformer_only(path);
    let opts = LoadOptions {
        axes_dim: Some(config.axes_dim.clone()),
        ..LoadOptions::default()
    };
    let start = Instant::now();
    let transformer = model::load_transformer(&files, &opts)?;
    let load_time = start.elapsed();
    let rss_after_load = peak_rss_mib();
    let _ = std::fs::remove_dir_all(&dir);

    let (height, width, txt_len) = (256, 256, 256);
    let cpu = Device::Cpu;
    let emb = PromptEmbedding {
        txt: Tensor::from_vec(noise::gaussian(2, txt_len * 4096), (1, txt_len, 4096), &cpu)?,
        vec: Tensor::from_vec(noise::gaussian(3, 768), (1, 768), &cpu)?,
    };
    let cond = pipeline::conditioning(&transformer, &emb, 3.5)?;
    let (h, w) = packing::latent_size(height, width);
    let latent = noise::latent_noise(4, 16, h, w, &cpu)?;
    // One extra step first in each run: a warm-up whose time is not counted.
    let plain = Guides::default();
    let t2i = time_steps(|hook| {
        pipeline::sample(&transformer, &cond, &plain, &latent, steps + 1, true, hook)
    })?;
    // Kontext at the same target size: one same-size reference doubles the image tokens.
    let reference = ReferenceTokens {
        tokens: packing::pack(&noise::latent_noise(5, 16, h, w, &cpu)?)?,
        ids: packing::image_ids(1, h / 2, w / 2, 1.0, &cpu)?,
    };
    let kontext = time_steps(|hook| {
        edit::sample_with_references(&transformer, &cond, &latent, &reference, steps + 1, hook)
    })?;
    println!(
        "config: hidden 768, 12 heads, 4 double + 8 single blocks, f32, CPU ({} threads)",
        candle_core::utils::get_num_threads()
    );
    println!(
        "tokens: {} image ({width}x{height}) + {txt_len} text",
        (height / 16) * (width / 16)
    );
    println!(
        "load: {:.0} ms, peak RSS after load {:.0} MiB (weights {:.0} MiB)",
        load_time.as_secs_f64() * 1e3,
        rss_after_load,
        weight_mib
    );
    t2i.print("text-to-image");
    kontext.print("Kontext (+256 reference tokens)");
    println!(
        "Kontext / text-to-image step time: {:.2}x",
        kontext.median / t2i.median
    );
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
