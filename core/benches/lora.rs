//! LoRA cost on the CPU, on the denoise benchmark's small config (hidden 768, 12 heads, 4 double +
//! 8 single blocks, random weights written in the BFL layout and loaded through the production
//! loader) at 256×256 (256 image tokens) with 256 T5 tokens: the time of one denoising step (one
//! transformer forward) with 0, 1 and 3 LoRAs of rank 16 on every dense layer (kohya files with
//! random factors), merged into the weights and as a run-time low-rank branch
//! (`FluxTransformer::set_adapters(.., allow_merge)`), and the time to switch from one LoRA set to
//! another. Prints medians and the ratios to the step without LoRAs.
//!
//! `cargo bench -p flux-core --bench lora [-- ROUNDS]` (default 7 timed forwards per case, in
//! alternating rounds after a warm-up round; 9 switches per case).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flux_core::lora::{formats, Adapters, LoraFile};
use flux_core::model::transformer::{self, Config, FluxTransformer};
use flux_core::model::{self, LoadOptions, ModelFiles};
use flux_core::pipeline::{noise, packing};

mod support;
use support::{median, peak_rss_mib, BoxError};

const RANK: usize = 16;
const SWITCHES: usize = 9;

/// Writes a kohya LoRA of rank [`RANK`] on every dense layer of `c` (alpha = rank, so scale 1)
/// with seeded random factors (down with standard deviation 1/√in, up 0.01: the outputs stay
/// near the model's; the values do not change the compute). Returns how many layers it covers.
fn write_kohya_lora(path: &Path, c: &Config, seed: u64) -> Result<usize, BoxError> {
    let cpu = Device::Cpu;
    let mut tensors = HashMap::new();
    let mut layers = 0;
    for (i, (name, shape)) in transformer::tensor_shapes(c).into_iter().enumerate() {
        let (Some(layer), [out, input]) = (name.strip_suffix(".weight"), shape.as_slice()) else {
            continue;
        };
        let module = format!("lora_unet_{}", layer.replace('.', "_"));
        // Every key must map back to the layer it was written for.
        let key = format!("{module}.lora_down.weight");
        match formats::parse(&key) {
            Some(k) if k.layer == layer => {}
            other => return Err(format!("{key} parses as {other:?}, not {layer}").into()),
        }
        let gaussian = |n: usize, std: f32, salt: u64| {
            let v = noise::gaussian(seed.wrapping_mul(1 << 20) + 2 * i as u64 + salt, n);
            v.into_iter().map(|x| x * std).collect::<Vec<f32>>()
        };
        let down = gaussian(RANK * input, 1.0 / (*input as f32).sqrt(), 0);
        let up = gaussian(out * RANK, 1e-2, 1);
        tensors.insert(key, Tensor::from_vec(down, (RANK, *input), &cpu)?);
        tensors.insert(
            format!("{module}.lora_up.weight"),
            Tensor::from_vec(up, (*out, RANK), &cpu)?,
        );
        tensors.insert(format!("{module}.alpha"), Tensor::new(RANK as f32, &cpu)?);
        layers += 1;
    }
    candle_core::safetensors::save(&tensors, path)?;
    Ok(layers)
}

/// The inputs of one denoising step at 256×256 with 256 text tokens.
struct Inputs {
    img: Tensor,
    img_ids: Tensor,
    txt: Tensor,
    txt_ids: Tensor,
    timesteps: Tensor,
    y: Tensor,
    guidance: Tensor,
}

impl Inputs {
    fn new(c: &Config, (height, width, txt_len): (usize, usize, usize)) -> Result<Self, BoxError> {
        let cpu = Device::Cpu;
        let (h, w) = packing::latent_size(height, width);
        let latent = noise::latent_noise(4, 16, h, w, &cpu)?;
        let gaussian = |seed, shape: &[usize]| {
            let n = shape.iter().product();
            Tensor::from_vec(noise::gaussian(seed, n), shape, &cpu)
        };
        Ok(Self {
            img: packing::pack(&latent)?,
            img_ids: packing::image_ids(1, h / 2, w / 2, 0.0, &cpu)?,
            txt: gaussian(2, &[1, txt_len, c.context_in_dim])?,
            txt_ids: packing::text_ids(1, txt_len, &cpu)?,
            timesteps: Tensor::new(&[0.7f32], &cpu)?,
            y: gaussian(3, &[1, c.vec_in_dim])?,
            guidance: Tensor::new(&[3.5f32], &cpu)?,
        })
    }

    /// One forward; its wall time in ms and its output.
    fn step(&self, t: &FluxTransformer) -> Result<(f64, Tensor), BoxError> {
        let start = Instant::now();
        let out = t.forward(
            &self.img,
            &self.img_ids,
            &self.txt,
            &self.txt_ids,
            &self.timesteps,
            &self.y,
            Some(&self.guidance),
        )?;
        // The CPU backend is synchronous; reading one value makes sure the result exists.
        out.flatten_all()?.get(0)?.to_scalar::<f32>()?;
        Ok((start.elapsed().as_secs_f64() * 1e3, out))
    }
}

/// Relative L2 distance between two tensors.
fn rel_l2(a: &Tensor, b: &Tensor) -> Result<f64, BoxError> {
    let diff = (a - b)?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    let norm = b.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    Ok((diff / norm).sqrt())
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), BoxError> {
    let rounds: usize = support::args()
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(7)
        .max(1);
    let config = support::small_config();
    let dir: PathBuf = std::env::temp_dir().join(format!("flux-lora-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&config, &dir, rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(config: &Config, dir: &Path, rounds: usize) -> Result<(), BoxError> {
    let weights = dir.join("flux1-dev.safetensors");
    flux_core::tiny::write_random_transformer(&weights, config, 1, DType::F32)?;
    let mut lora_paths = Vec::new();
    let mut covered = 0;
    for seed in 0..3 {
        let path = dir.join(format!("lora_{seed}.safetensors"));
        covered = write_kohya_lora(&path, config, seed + 1)?;
        lora_paths.push(path);
    }
    let opts = LoadOptions {
        axes_dim: Some(config.axes_dim.clone()),
        ..LoadOptions::default()
    };
    let mut t = model::load_transformer(&ModelFiles::transformer_only(weights), &opts)?;

    let start = Instant::now();
    let files = lora_paths
        .iter()
        .map(|p| LoraFile::open(p).map(Arc::new))
        .collect::<flux_core::Result<Vec<_>>>()?;
    let parse_ms = ms(start.elapsed()) / files.len() as f64;
    let lora_mib = files[0].bytes() as f64 / 1048576.0;
    let combine = |set: &[(Arc<LoraFile>, f32)]| -> Result<(f64, Arc<Adapters>), BoxError> {
        let start = Instant::now();
        let a = Adapters::new(set, |n| t.tensor_shape(n))?;
        Ok((ms(start.elapsed()), Arc::new(a)))
    };
    let one = [(files[0].clone(), 1.0)];
    let three: Vec<_> = files.iter().map(|f| (f.clone(), 1.0)).collect();
    let (combine_one_ms, set_one) = combine(&one)?;
    let (combine_three_ms, set_three) = combine(&three)?;
    // The sets switched to: another file alone, and the same three files at other strengths.
    let (_, set_one_b) = combine(&[(files[1].clone(), 0.8)])?;
    let strengths = [0.5, 0.8, 1.2];
    let three_b: Vec<_> = files
        .iter()
        .zip(strengths)
        .map(|(f, w)| (f.clone(), w))
        .collect();
    let (_, set_three_b) = combine(&three_b)?;

    let inputs = Inputs::new(config, (256, 256, 256))?;
    let dense_layers = transformer::tensor_shapes(config)
        .iter()
        .filter(|(_, s)| s.len() == 2)
        .count();
    println!(
        "config: hidden 768, 12 heads, 4 double + 8 single blocks, f32, CPU ({} threads); \
         256 image (256x256) + 256 text tokens",
        candle_core::utils::get_num_threads()
    );
    println!(
        "LoRAs: kohya, rank {RANK} on {covered} of {dense_layers} dense layers, {lora_mib:.1} MiB \
         each; parse {parse_ms:.0} ms/file, combine 1: {combine_one_ms:.0} ms, 3: \
         {combine_three_ms:.0} ms"
    );
    println!(
        "{rounds} timed forwards per case, in alternating rounds after a warm-up round; setting \
         the case's LoRAs before each is not timed\n"
    );

    // The step cases: name, set, merge.
    let cases: [(&str, Option<&Arc<Adapters>>, bool); 5] = [
        ("0 LoRAs", None, false),
        ("1 LoRA, merged", Some(&set_one), true),
        ("1 LoRA, branch", Some(&set_one), false),
        ("3 LoRAs, merged", Some(&set_three), true),
        ("3 LoRAs, branch", Some(&set_three), false),
    ];
    // One untimed warm-up round, then `rounds` rounds over every case, in an order rotated each
    // round so that a slow spell of a shared machine does not fall on one case.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut outputs: Vec<Option<Tensor>> = vec![None; cases.len()];
    for round in 0..=rounds {
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let (name, set, merge) = cases[i];
            let merged = t.set_adapters(set.cloned(), merge)?;
            if merged != (merge && set.is_some()) {
                return Err(format!("{name}: set_adapters merged = {merged}").into());
            }
            let (ms, out) = inputs.step(&t)?;
            match round {
                0 => outputs[i] = Some(out),
                _ => times[i].push(ms),
            }
        }
    }
    let outputs: Vec<Tensor> = outputs.into_iter().flatten().collect();
    let medians: Vec<f64> = times.iter_mut().map(|v| median(v)).collect();
    // Merged and branch must compute the same model.
    let agree = [
        rel_l2(&outputs[1], &outputs[2])?,
        rel_l2(&outputs[3], &outputs[4])?,
    ];
    let moved = rel_l2(&outputs[3], &outputs[0])?;

    println!("| step (one forward) | median ms | min ms | max ms | median vs 0 LoRAs |");
    println!("|---|---|---|---|---|");
    for (((name, _, _), m), v) in cases.iter().zip(&medians).zip(&times) {
        println!(
            "| {name} | {m:.0} | {:.0} | {:.0} | {:.3}x |",
            v[0],
            v[v.len() - 1],
            m / medians[0]
        );
    }
    println!(
        "\nmerged vs branch outputs: rel L2 {:.1e} (1 LoRA), {:.1e} (3 LoRAs); 3 LoRAs move the \
         output by {moved:.1e} rel L2",
        agree[0], agree[1]
    );

    // Switching: set_adapters from set A to set B and back, alternately; each switch timed.
    let switches: [(&str, &Arc<Adapters>, &Arc<Adapters>); 2] = [
        ("1 LoRA -> another 1 LoRA", &set_one, &set_one_b),
        (
            "3 LoRAs -> 3 LoRAs, other strengths",
            &set_three,
            &set_three_b,
        ),
    ];
    println!("\n| switch (set_adapters A -> B, median of {SWITCHES}) | merged ms | branch ms |");
    println!("|---|---|---|");
    for (name, a, b) in switches {
        let mut row = Vec::new();
        for merge in [true, false] {
            t.set_adapters(Some(a.clone()), merge)?;
            let mut times = Vec::with_capacity(SWITCHES);
            for i in 0..SWITCHES {
                let to = if i % 2 == 0 { b } else { a };
                let start = Instant::now();
                let merged = t.set_adapters(Some(to.clone()), merge)?;
                times.push(ms(start.elapsed()));
                if merged != merge {
                    return Err(format!("{name}: merged = {merged}").into());
                }
            }
            row.push(median(&mut times));
        }
        println!("| {name} | {:.1} | {:.2} |", row[0], row[1]);
    }
    for merge in [true, false] {
        t.set_adapters(Some(set_three.clone()), merge)?;
        let start = Instant::now();
        t.set_adapters(None, false)?;
        let mode = if merge { "merged" } else { "branch" };
        println!("3 LoRAs ({mode}) -> none: {:.0} ms", ms(start.elapsed()));
    }
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
