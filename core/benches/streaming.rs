//! Transformer blocks resident against streamed, on this machine's CPU: step time and peak RSS
//! with the plan the engine picks for budgets of 100%, 50% and 25% of the resident (f32) weights.
//!
//! `cargo bench -p flux-core --bench streaming -- [ROUNDS] [FILE...]`. Without files it writes a
//! narrow FLUX (hidden 768, 6 heads of 128, FLUX.1's 19 double + 38 single blocks: 0.74 G
//! parameters, so that a quarter of the weights holds several blocks) with random weights as f32
//! safetensors, Q8_0 and Q4_K GGUF and runs forwards at 1024 image + 128 text tokens; full-size
//! files (`cargo bench --bench full_size` writes them) run one forward at 256 image + 512 text
//! tokens. Each file and budget runs in a child process of its own, so each peak RSS is its own.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use flux_core::model::gguf;
use flux_core::model::transformer::Config;
use flux_core::model::{load_transformer, transformer_bytes, LoadOptions, ModelFiles};
use flux_core::runtime::plan::{self, Limits, Plan, Work};
use support::{median, peak_rss_mib, BoxError};

fn narrow_config() -> Config {
    Config {
        hidden_size: 768,
        num_heads: 6,
        ..Config::flux1_dev()
    }
}

/// Writes the narrow config as f32, Q8_0 and Q4_K files into `dir`.
fn narrow_files(dir: &Path) -> Result<Vec<PathBuf>, BoxError> {
    let c = narrow_config();
    let tensors = support::random_transformer(&c)?;
    let f32_path = dir.join("narrow-f32.safetensors");
    let map: HashMap<String, Tensor> = tensors.iter().cloned().collect();
    candle_core::safetensors::save(&map, &f32_path)?;
    let mut paths = vec![f32_path];
    let shapes: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.dims().to_vec()))
        .collect();
    for (ty, name) in [(GgmlDType::Q8_0, "Q8_0"), (GgmlDType::Q4K, "Q4_K")] {
        let path = dir.join(format!("narrow-{name}.gguf"));
        gguf::write_flux(&path, &shapes, ty, |i| Ok(tensors[i].1.clone()))?;
        paths.push(path);
    }
    Ok(paths)
}

/// The plan the engine picks for the transformer at `path` within `fraction` of its resident
/// bytes (no text encoders or autoencoder beside it, no activations counted).
fn plan_for(path: &Path, fraction: f64) -> Result<(Plan, u64), BoxError> {
    let bytes = transformer_bytes(path, DType::F32, true)?;
    let budget = (bytes.transformer() as f64 * fraction) as u64;
    let limits = Limits {
        budget,
        host: 0,
        on_cpu: true,
    };
    Ok((plan::choose(&bytes, &Work::NONE, limits, None)?, budget))
}

/// The child: loads `path` with the plan for `fraction` and times forwards.
fn child(path: &Path, fraction: f64, rounds: usize) -> Result<(), BoxError> {
    let (p, budget) = plan_for(path, fraction)?;
    let opts = LoadOptions {
        blocks: p.blocks,
        ..LoadOptions::default()
    };
    let start = Instant::now();
    let m = load_transformer(&ModelFiles::transformer_only(path.to_path_buf()), &opts)?;
    let load = start.elapsed().as_secs_f64();
    let c = m.config().clone();
    let full = c.hidden_size == 3072;
    let (side, text) = if full { (16, 512) } else { (32, 128) };
    let dev = Device::Cpu;
    let n = side * side;
    let ids: Vec<f32> = (0..n)
        .flat_map(|i| [0.0, (i / side) as f32, (i % side) as f32])
        .collect();
    let img = Tensor::randn(0f32, 1.0, (1, n, c.in_channels), &dev)?;
    let img_ids = Tensor::from_vec(ids, (1, n, 3), &dev)?;
    let txt = Tensor::randn(0f32, 1.0, (1, text, c.context_in_dim), &dev)?;
    let txt_ids = Tensor::zeros((1, text, 3), DType::F32, &dev)?;
    let y = Tensor::randn(0f32, 1.0, (1, c.vec_in_dim), &dev)?;
    let (t, g) = (Tensor::new(&[0.6f32], &dev)?, Tensor::new(&[3.5f32], &dev)?);
    let step = || -> Result<f64, BoxError> {
        let start = Instant::now();
        m.forward(&img, &img_ids, &txt, &txt_ids, &t, &y, Some(&g))?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    if !full {
        step()?;
    }
    let mut times = (0..rounds).map(|_| step()).collect::<Result<Vec<_>, _>>()?;
    println!(
        "  {:>3.0}% budget ({:.2} GiB): {:?}: load {load:.1} s, step median {:.0} ms over {rounds}, peak RSS {:.2} GiB",
        fraction * 100.0,
        budget as f64 / (1u64 << 30) as f64,
        p.blocks,
        median(&mut times),
        peak_rss_mib() / 1024.0
    );
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = support::args();
    if args.first().map(String::as_str) == Some("child") {
        return child(Path::new(&args[1]), args[2].parse()?, args[3].parse()?);
    }
    let rounds: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
    let mut files: Vec<PathBuf> = args
        .iter()
        .filter(|a| a.parse::<usize>().is_err())
        .map(PathBuf::from)
        .collect();
    let dir = std::env::temp_dir().join(format!("flux-bench-streaming-{}", std::process::id()));
    if files.is_empty() {
        std::fs::create_dir_all(&dir)?;
        files = narrow_files(&dir)?;
    }
    println!(
        "{} threads; budgets as a share of the resident f32 transformer",
        candle_core::utils::get_num_threads()
    );
    for path in &files {
        let bytes = transformer_bytes(path, DType::F32, true)?;
        let full = bytes.transformer() > 16 << 30;
        println!(
            "{}: resident {:.2} GiB, stored blocks {:.2} GiB",
            path.display(),
            bytes.transformer() as f64 / (1u64 << 30) as f64,
            bytes.stored_blocks() as f64 / (1u64 << 30) as f64
        );
        for fraction in [1.0, 0.5, 0.25] {
            let budget = (bytes.transformer() as f64 * fraction) as u64;
            if budget > flux_core::memory::available() {
                println!(
                    "  {:>3.0}%: skipped, more than this machine's available memory",
                    fraction * 100.0
                );
                continue;
            }
            let rounds = if full { 1 } else { rounds };
            let out = Command::new(std::env::current_exe()?)
                .args(["child", &path.to_string_lossy(), &fraction.to_string()])
                .arg(rounds.to_string())
                .output()?;
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                println!("  {:>3.0}%: {}", fraction * 100.0, err.trim());
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
