//! FLUX.1's autoencoder (real shapes; its file is written sparse, so the weights read as zeros,
//! which costs the same to compute) decoding and encoding in tiles on this machine's CPU: time
//! and peak RSS at image sizes up to 4096², each size in a child process of its own so that each
//! peak is its own, beside the engine's estimate of a tile's activations.
//!
//! `cargo bench -p flux-core --bench tiled_vae -- [SIDE...]` (default 1024 2048 4096).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flux_core::model::{load_autoencoder, LoadOptions};
use flux_core::sparse::{self, Storage};
use support::{peak_rss_mib, BoxError};

fn main() -> Result<(), BoxError> {
    let args = support::args();
    if args.first().map(String::as_str) == Some("child") {
        return child(Path::new(&args[1]), args[2].parse()?, &args[3]);
    }
    let mut sides: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sides.is_empty() {
        sides = vec![1024, 2048, 4096];
    }
    let dir = std::env::temp_dir().join(format!("flux-bench-tiled-vae-{}", std::process::id()));
    sparse::write_flux1_dev_folder(&dir, Storage::Bf16)?;
    println!(
        "| side | stage | time (s) | peak RSS (MiB) | a tile's activations, estimated (MiB) |"
    );
    println!("|---|---|---|---|---|");
    for side in sides {
        for stage in ["decode", "encode"] {
            let out = Command::new(std::env::current_exe()?)
                .args(["child", &dir.to_string_lossy(), &side.to_string(), stage])
                .output()?;
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                eprintln!("{side}² {stage}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// One tiled decode (a latent for a `side`² image) or encode (a `side`² image).
fn child(dir: &Path, side: usize, stage: &str) -> Result<(), BoxError> {
    let files = flux_core::model::ModelFiles::from_folder(dir)?;
    let ae = load_autoencoder(&files, &LoadOptions::default())?;
    ae.set_tiled(true);
    let cpu = Device::Cpu;
    let input = match stage {
        "decode" => Tensor::zeros((1, 16, side / 8, side / 8), DType::F32, &cpu)?,
        _ => Tensor::zeros((1, 3, side, side), DType::F32, &cpu)?,
    };
    let before = peak_rss_mib();
    let start = Instant::now();
    let out = match stage {
        "decode" => ae.decode(&input)?,
        _ => ae.encode(&input)?,
    };
    let secs = start.elapsed().as_secs_f64();
    let tile = ae.activation_bytes(side * side, DType::F32, true) as f64 / (1 << 20) as f64;
    println!(
        "| {side}² | {stage} | {secs:.1} | {:.0} (weights and input {before:.0}) | {tile:.0} |",
        peak_rss_mib()
    );
    drop(out);
    Ok(())
}
