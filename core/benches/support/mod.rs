//! Helpers shared by the benchmark programs (each uses some of them).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

pub type BoxError = Box<dyn std::error::Error>;

/// A PyTorch process (`FLUX_BENCH_PYTHON`, default `python3`) spoken to in lines: commands on its
/// stdin, replies on its stdout. Dropping it closes its stdin (its command loop ends) and waits.
pub struct Torch {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Torch {
    /// Starts the Python with `args` (a script and its options, or `-c` and code).
    pub fn start(args: &[String]) -> Result<Self, BoxError> {
        let python = std::env::var("FLUX_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e} (set FLUX_BENCH_PYTHON)"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout,
        })
    }

    /// The next reply line, trimmed.
    pub fn read_line(&mut self) -> Result<String, BoxError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("the PyTorch process exited (see its error above)".into());
        }
        Ok(line.trim().to_string())
    }

    /// Reads a reply that must be `want`.
    pub fn expect(&mut self, want: &str) -> Result<(), BoxError> {
        match self.read_line()? {
            line if line == want => Ok(()),
            line => Err(format!("PyTorch answered {line:?}, expected {want:?}").into()),
        }
    }

    pub fn send(&mut self, command: &str) -> Result<(), BoxError> {
        let stdin = self.stdin.as_mut().ok_or("the PyTorch process is closed")?;
        writeln!(stdin, "{command}")?;
        Ok(stdin.flush()?)
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Peak resident set size of this process so far, in MiB (Linux `VmHWM`; NaN elsewhere).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(f64::NAN) / 1024.0
}

/// Median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This bench's arguments, without the `--bench` cargo adds.
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}

/// The small config the denoise and LoRA benchmarks run: hidden 768 (12 heads), 4 double and 8
/// single blocks, FLUX.1's text and latent widths.
pub fn small_config() -> flux_core::model::transformer::Config {
    flux_core::model::transformer::Config {
        in_channels: 64,
        out_channels: 64,
        vec_in_dim: 768,
        context_in_dim: 4096,
        hidden_size: 768,
        mlp_ratio: 4.0,
        num_heads: 12,
        depth: 4,
        depth_single_blocks: 8,
        axes_dim: vec![8, 28, 28],
        theta: 10_000,
        qkv_bias: true,
        guidance_embed: true,
    }
}

/// Every tensor of a transformer of `c` with random values (N(0, 0.02); norm scales near 1).
pub fn random_transformer(
    c: &flux_core::model::transformer::Config,
) -> Result<Vec<(String, candle_core::Tensor)>, BoxError> {
    use candle_core::{Device, Tensor};
    let tensors = flux_core::model::transformer::tensor_shapes(c)
        .into_iter()
        .map(|(name, shape)| {
            let x = Tensor::randn(0f32, 0.02, shape, &Device::Cpu)?;
            let x = match name.ends_with(".scale") {
                true => (x + 1.0)?,
                false => x,
            };
            Ok((name, x))
        })
        .collect::<Result<_, candle_core::Error>>()?;
    Ok(tensors)
}

/// Per-step wall times of one sampling run, the first (warm-up) step dropped, sorted.
pub struct StepTimes {
    pub sorted_ms: Vec<f64>,
    pub median: f64,
}

impl StepTimes {
    pub fn print(&self, what: &str) {
        let v = &self.sorted_ms;
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "{what}: {} timed steps, median {:.1} ms/step, mean {mean:.1}, min {:.1}, max {:.1}",
            v.len(),
            self.median,
            v[0],
            v[v.len() - 1]
        );
    }
}

pub fn time_steps(
    run: impl FnOnce(
        &mut flux_core::pipeline::sampler::StepHook,
    ) -> flux_core::Result<candle_core::Tensor>,
) -> flux_core::Result<StepTimes> {
    let mut marks = vec![Instant::now()];
    let mut hook = |_: &flux_core::pipeline::sampler::StepInfo| {
        marks.push(Instant::now());
        ControlFlow::Continue(())
    };
    run(&mut hook)?;
    let mut sorted_ms: Vec<f64> = marks
        .windows(2)
        .skip(1)
        .map(|m| (m[1] - m[0]).as_secs_f64() * 1e3)
        .collect();
    let median = median(&mut sorted_ms);
    Ok(StepTimes { sorted_ms, median })
}
