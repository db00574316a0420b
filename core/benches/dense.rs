//! The engine's dense layers (the GEMMs that are ~85% of the CPU forward) at the FLUX "small"
//! config's shapes with 1024 image + 128 text tokens, in GFLOP/s, beside PyTorch's
//! `F.linear` on the same shapes and thread count when `FLUX_BENCH_PYTHON` names a Python with
//! torch. Interleaved rounds and medians: the figure issue 8's GEMM work moves.
//!
//! `cargo bench -p flux-core --bench dense [-- ROUNDS]`

use std::time::Instant;

use candle_core::{Device, Tensor};
use flux_core::model::layers::Dense;

mod support;
use support::{median, BoxError, Torch};

/// (rows, inputs, outputs, what): the transformer's dense layers for 1152 joint tokens.
const SHAPES: [(usize, usize, usize, &str); 6] = [
    (1024, 1536, 4608, "double block image qkv"),
    (1024, 1536, 6144, "double block image MLP in"),
    (1024, 6144, 1536, "double block image MLP out"),
    (128, 1536, 4608, "double block text qkv"),
    (1152, 1536, 10752, "single block linear1"),
    (1152, 7680, 1536, "single block linear2"),
];

/// Starts a PyTorch process that, each time it reads a line, times one `F.linear` per shape
/// (same order) and prints the seconds.
fn start_torch(threads: usize) -> Result<Torch, BoxError> {
    let shapes: Vec<String> = SHAPES
        .iter()
        .map(|(m, k, n, _)| format!("({m},{k},{n})"))
        .collect();
    let script = format!(
        "import sys, time, torch\n\
         import torch.nn.functional as F\n\
         torch.set_num_threads({threads})\n\
         cases = [(torch.randn(m, k), torch.randn(n, k), torch.randn(n)) for m, k, n in [{}]]\n\
         for x, w, b in cases: F.linear(x, w, b)\n\
         for _ in sys.stdin:\n\
         \x20   ts = []\n\
         \x20   for x, w, b in cases:\n\
         \x20       s = time.perf_counter(); F.linear(x, w, b); ts.append(time.perf_counter() - s)\n\
         \x20   print(*ts, flush=True)\n",
        shapes.join(",")
    );
    Torch::start(&["-c".into(), script])
}

/// One PyTorch round: seconds per shape.
fn torch_round(torch: &mut Torch) -> Result<Vec<f64>, BoxError> {
    torch.send("go")?;
    let line = torch.read_line()?;
    let secs = line.split_whitespace().map(str::parse::<f64>);
    Ok(secs.collect::<Result<_, _>>()?)
}

fn main() -> Result<(), BoxError> {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let threads = candle_core::utils::get_num_threads();
    let mut torch = match std::env::var_os("FLUX_BENCH_PYTHON") {
        Some(_) => Some(start_torch(threads)?),
        None => None,
    };
    let dev = Device::Cpu;
    let mut cases = Vec::with_capacity(SHAPES.len());
    for &(m, k, n, _) in &SHAPES {
        let layer = Dense::new(
            Tensor::randn(0f32, 0.02, (n, k), &dev)?,
            Some(Tensor::randn(0f32, 0.02, n, &dev)?),
        )?;
        let x = Tensor::randn(0f32, 1.0, (1, m, k), &dev)?;
        layer.forward(&x)?;
        cases.push((layer, x));
    }
    // Rounds alternate the two sides so both see the same machine.
    let mut engine_times = vec![Vec::with_capacity(rounds); SHAPES.len()];
    let mut torch_times = vec![Vec::with_capacity(rounds); SHAPES.len()];
    for _ in 0..rounds {
        for (i, (layer, x)) in cases.iter().enumerate() {
            let start = Instant::now();
            layer.forward(x)?;
            engine_times[i].push(start.elapsed().as_secs_f64());
        }
        if let Some(t) = torch.as_mut() {
            for (i, secs) in torch_round(t)?.into_iter().enumerate() {
                torch_times[i].push(secs);
            }
        }
    }
    println!(
        "dense layers, f32 on the CPU, {threads} threads, median of {rounds} alternating rounds"
    );
    let (mut flops_total, mut engine_total, mut torch_total) = (0.0, 0.0, 0.0);
    for (i, &(m, k, n, what)) in SHAPES.iter().enumerate() {
        let flops = 2.0 * (m * k * n) as f64;
        let secs = median(&mut engine_times[i]);
        (flops_total, engine_total) = (flops_total + flops, engine_total + secs);
        let mut line = format!(
            "{m:>5}×{k:<5}→{n:<6} {what:<28} engine {:6.1} GFLOP/s",
            flops / secs / 1e9
        );
        if torch.is_some() {
            let t = median(&mut torch_times[i]);
            torch_total += t;
            line += &format!("  PyTorch {:6.1} GFLOP/s", flops / t / 1e9);
        }
        println!("{line}");
    }
    let mut line = format!(
        "all: engine {:.1} GFLOP/s",
        flops_total / engine_total / 1e9
    );
    match torch {
        Some(_) => {
            line += &format!(
                ", PyTorch {:.1} GFLOP/s, time ratio engine/PyTorch {:.3}",
                flops_total / torch_total / 1e9,
                engine_total / torch_total
            )
        }
        None => line += " (set FLUX_BENCH_PYTHON to a Python with torch for its figures)",
    }
    println!("{line}");
    Ok(())
}
