//! Quantized transformers against the engine's own f32 forward, side by side in one run.
//!
//! Writes vs_torch's small config (hidden 1536, 12 heads of 128, 2 double + 4 single blocks,
//! guidance on) with random weights as an f32 safetensors file and as Q8_0, Q4_K and BF16 GGUF
//! files (city96's rules: in/out layers F16; BF16 takes the path of bf16 checkpoints on the CPU),
//! loads them through the production loader — the quantized ones with their blocks kept in their
//! stored form and expanded two at a time (streamed) — then runs alternating forward rounds at
//! 1024 image and 128 text tokens (512²) and prints each type's median time ratio to f32, its
//! relative L2 distance to the f32 output, the bytes its weights occupy, and the peak RSS.
//! `cargo bench -p flux-core --bench quantized [-- ROUNDS]`.

mod support;

use std::collections::HashMap;
use std::time::Instant;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use flux_core::model::gguf::{self, dtype_name};
use flux_core::model::store::WeightSet;
use flux_core::model::transformer::{Config, FluxTransformer};
use flux_core::model::{load_transformer, BlockResidency, LoadOptions, ModelFiles};
use support::{median, peak_rss_mib, BoxError};

fn small_config() -> Config {
    Config {
        in_channels: 64,
        out_channels: 64,
        vec_in_dim: 768,
        context_in_dim: 4096,
        hidden_size: 1536,
        mlp_ratio: 4.0,
        num_heads: 12,
        depth: 2,
        depth_single_blocks: 4,
        axes_dim: vec![16, 56, 56],
        theta: 10_000,
        qkv_bias: true,
        guidance_embed: true,
    }
}

struct Inputs {
    img: Tensor,
    img_ids: Tensor,
    txt: Tensor,
    txt_ids: Tensor,
    t: Tensor,
    y: Tensor,
    guidance: Tensor,
}

impl Inputs {
    fn new(c: &Config, side: usize, text: usize) -> Result<Self, BoxError> {
        let dev = Device::Cpu;
        let n = side * side;
        let ids: Vec<f32> = (0..n)
            .flat_map(|i| [0.0, (i / side) as f32, (i % side) as f32])
            .collect();
        Ok(Self {
            img: Tensor::randn(0f32, 1.0, (1, n, c.in_channels), &dev)?,
            img_ids: Tensor::from_vec(ids, (1, n, 3), &dev)?,
            txt: Tensor::randn(0f32, 1.0, (1, text, c.context_in_dim), &dev)?,
            txt_ids: Tensor::zeros((1, text, 3), DType::F32, &dev)?,
            t: Tensor::new(&[0.6f32], &dev)?,
            y: Tensor::randn(0f32, 1.0, (1, c.vec_in_dim), &dev)?,
            guidance: Tensor::new(&[3.5f32], &dev)?,
        })
    }

    fn forward(&self, m: &FluxTransformer) -> Result<(f64, Tensor), BoxError> {
        let start = Instant::now();
        let out = m.forward(
            &self.img,
            &self.img_ids,
            &self.txt,
            &self.txt_ids,
            &self.t,
            &self.y,
            Some(&self.guidance),
        )?;
        Ok((start.elapsed().as_secs_f64() * 1e3, out))
    }
}

fn rel_l2(a: &Tensor, b: &Tensor) -> Result<f32, BoxError> {
    let diff = (a - b)?.sqr()?.sum_all()?.to_scalar::<f32>()?;
    let norm = b.sqr()?.sum_all()?.to_scalar::<f32>()?;
    Ok((diff / norm).sqrt())
}

fn main() -> Result<(), BoxError> {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let c = small_config();
    let dir = std::env::temp_dir().join(format!("flux-bench-quantized-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let tensors = support::random_transformer(&c)?;
    let f32_path = dir.join("small.safetensors");
    let map: HashMap<String, Tensor> = tensors.iter().cloned().collect();
    candle_core::safetensors::save(&map, &f32_path)?;
    drop(map);
    let types = [GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::BF16];
    let mut paths = vec![("f32", f32_path)];
    for ty in types {
        let path = dir.join(format!("small-{}.gguf", dtype_name(ty)));
        let start = Instant::now();
        let shapes: Vec<(String, Vec<usize>)> = tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.dims().to_vec()))
            .collect();
        gguf::write_flux(&path, &shapes, ty, |i| Ok(tensors[i].1.clone()))?;
        println!(
            "wrote {} in {:.0} ms",
            path.display(),
            start.elapsed().as_secs_f64() * 1e3
        );
        paths.push((dtype_name(ty), path));
    }
    drop(tensors);

    let mut models = Vec::new();
    for (name, path) in &paths {
        let blocks = match *name {
            "f32" => BlockResidency::Resident,
            _ => BlockResidency::streamed(2),
        };
        let opts = LoadOptions {
            blocks,
            ..LoadOptions::default()
        };
        let set = WeightSet::open(name, std::slice::from_ref(path))?;
        let bytes = set.loaded_bytes(DType::F32, true) as f64 / (1 << 20) as f64;
        let file = std::fs::metadata(path)?.len() as f64 / (1 << 20) as f64;
        let start = Instant::now();
        let m = load_transformer(&ModelFiles::transformer_only(path.clone()), &opts)?;
        println!(
            "{name}: file {file:.0} MiB, weights in memory {bytes:.0} MiB, loaded in {:.0} ms, peak RSS so far {:.0} MiB",
            start.elapsed().as_secs_f64() * 1e3,
            peak_rss_mib()
        );
        models.push((*name, m));
    }

    let inputs = Inputs::new(&c, 32, 128)?;
    println!(
        "{} threads, 1024 image + 128 text tokens, {rounds} rounds after a warm-up",
        candle_core::utils::get_num_threads()
    );
    let mut outputs: Vec<Tensor> = Vec::new();
    for (_, m) in &models {
        outputs.push(inputs.forward(m)?.1);
    }
    let mut times = vec![Vec::new(); models.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..models.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            times[i].push(inputs.forward(&models[i].1)?.0);
        }
        let line: Vec<String> = models
            .iter()
            .zip(&times)
            .map(|((n, _), t)| format!("{n} {:.0} ms", t[round]))
            .collect();
        println!("round {round}: {}", line.join(", "));
    }
    let mut f32_ms = times[0].clone();
    for (i, (name, _)) in models.iter().enumerate().skip(1) {
        let mut ratios: Vec<f64> = times[i].iter().zip(&times[0]).map(|(q, f)| q / f).collect();
        let mut ms = times[i].clone();
        println!(
            "{name}: median {:.0} ms vs f32 {:.0} ms, per-round ratio {:.3} (goal <= 1.15), rel L2 to f32 {:.2e}",
            median(&mut ms),
            median(&mut f32_ms),
            median(&mut ratios),
            rel_l2(&outputs[i], &outputs[0])?
        );
    }
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
