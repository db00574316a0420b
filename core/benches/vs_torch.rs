//! The engine's FLUX transformer forward against diffusers' `FluxTransformer2DModel` on the CPU,
//! side by side in one run, on the same weights and inputs.
//!
//! `vs_torch.py` (run with `FLUX_BENCH_PYTHON`, default `python3`, which needs torch, diffusers
//! and safetensors) builds the "small" random model (hidden 1536, 12 heads of 128, 2 double +
//! 4 single blocks, guidance on) and saves it in the diffusers layout; this program loads it
//! through the engine's diffusers loader. For 256 and 1024 image tokens (256² and 512² images)
//! with 128 text tokens: one warm-up forward each, then alternating rounds (the order flips every
//! round), the per-round ratio engine / PyTorch, medians, and the relative L2 distance between
//! the two outputs. Both sides use the same thread count (candle's, e.g. `RAYON_NUM_THREADS`).
//!
//! `cargo bench -p flux-core --bench vs_torch [-- ROUNDS]`

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flux_core::model::{self, transformer::FluxTransformer, LoadOptions, ModelFiles};

mod support;
use support::{median, peak_rss_mib};

type BoxError = Box<dyn std::error::Error>;

/// The PyTorch process and its command pipe.
struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Torch {
    fn start(dir: &Path, threads: usize) -> Result<Self, BoxError> {
        let python = std::env::var("FLUX_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/vs_torch.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg(dir)
            .args(["--threads", &threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e} (set FLUX_BENCH_PYTHON)"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut torch = Self {
            child,
            stdin,
            stdout,
        };
        torch.expect("ready")?;
        Ok(torch)
    }

    fn read_line(&mut self) -> Result<String, BoxError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("the PyTorch process exited (see its error above)".into());
        }
        Ok(line.trim().to_string())
    }

    fn expect(&mut self, want: &str) -> Result<(), BoxError> {
        match self.read_line()? {
            line if line == want => Ok(()),
            line => Err(format!("PyTorch answered {line:?}, expected {want:?}").into()),
        }
    }

    fn send(&mut self, command: &str) -> Result<(), BoxError> {
        writeln!(self.stdin, "{command}")?;
        Ok(self.stdin.flush()?)
    }

    /// One timed forward on the inputs for `n` image tokens, in ms.
    fn run(&mut self, n: usize) -> Result<f64, BoxError> {
        self.send(&format!("run {n}"))?;
        let line = self.read_line()?;
        let ms = line
            .strip_prefix("ms ")
            .ok_or(format!("bad reply {line:?}"))?;
        Ok(ms.parse()?)
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = self.send("quit");
        let _ = self.child.wait();
    }
}

/// One case's inputs, as written by `vs_torch.py` (diffusers conventions: ids without batch).
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
    fn load(path: &Path) -> Result<Self, BoxError> {
        let mut t = candle_core::safetensors::load(path, &Device::Cpu)?;
        let mut take = |name: &str| t.remove(name).ok_or(format!("{name} missing"));
        Ok(Self {
            img: take("img")?,
            img_ids: take("img_ids")?.unsqueeze(0)?,
            txt: take("txt")?,
            txt_ids: take("txt_ids")?.unsqueeze(0)?,
            timesteps: take("timesteps")?,
            y: take("y")?,
            guidance: take("guidance")?,
        })
    }

    /// One timed forward, in ms, and its output.
    fn forward(&self, model: &FluxTransformer) -> Result<(f64, Tensor), BoxError> {
        let start = Instant::now();
        let out = model.forward(
            &self.img,
            &self.img_ids,
            &self.txt,
            &self.txt_ids,
            &self.timesteps,
            &self.y,
            Some(&self.guidance),
        )?;
        Ok((start.elapsed().as_secs_f64() * 1e3, out))
    }
}

/// Relative L2 distance `|a − b| / |b|` and the largest absolute difference.
fn agreement(a: &Tensor, b: &Tensor) -> Result<(f64, f64), BoxError> {
    let diff = (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?;
    let norm = |t: &Tensor| -> candle_core::Result<f64> { t.sqr()?.sum_all()?.sqrt()?.to_scalar() };
    let rel = norm(&diff)? / norm(&b.to_dtype(DType::F64)?)?;
    let max_abs = diff.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    Ok((rel, max_abs))
}

/// Alternating timed rounds for `n` image tokens; returns the median ratio engine / PyTorch.
fn compare(
    model: &FluxTransformer,
    torch: &mut Torch,
    dir: &Path,
    n: usize,
    rounds: usize,
) -> Result<f64, BoxError> {
    torch.send(&format!("inputs {n}"))?;
    torch.expect("ok")?;
    let inputs = Inputs::load(&dir.join(format!("inputs_{n}.safetensors")))?;
    let side = (n as f64).sqrt() as usize * 16;
    println!(
        "\n== {side}x{side}: {n} image + {} text tokens ==",
        inputs.txt.dim(1)?
    );
    let (warm_engine, mut out) = inputs.forward(model)?;
    let warm_torch = torch.run(n)?;
    println!("warm-up: engine {warm_engine:.1} ms, PyTorch {warm_torch:.1} ms");
    let (mut engine_ms, mut torch_ms, mut ratios) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let (e, t) = if round % 2 == 0 {
            let (e, o) = inputs.forward(model)?;
            out = o;
            (e, torch.run(n)?)
        } else {
            let t = torch.run(n)?;
            let (e, o) = inputs.forward(model)?;
            out = o;
            (e, t)
        };
        println!(
            "round {}: engine {e:8.1} ms  PyTorch {t:8.1} ms  ratio {:.3}",
            round + 1,
            e / t
        );
        engine_ms.push(e);
        torch_ms.push(t);
        ratios.push(e / t);
    }
    let ratio = median(&mut ratios);
    println!(
        "median: engine {:.1} ms, PyTorch {:.1} ms, per-round ratio engine/PyTorch {ratio:.3} (goal <= 0.9: {})",
        median(&mut engine_ms),
        median(&mut torch_ms),
        if ratio <= 0.9 { "met" } else { "NOT met" }
    );
    torch.send(&format!("save {n}"))?;
    torch.expect("ok")?;
    let reference = candle_core::safetensors::load(
        dir.join(format!("torch_out_{n}.safetensors")),
        &Device::Cpu,
    )?;
    let (rel, max_abs) = agreement(&out, &reference["out"])?;
    println!(
        "agreement: relative L2 {rel:.2e}, max abs {max_abs:.2e} (goal rel L2 <= 1e-4: {})",
        if rel <= 1e-4 { "met" } else { "NOT met" }
    );
    Ok(ratio)
}

fn main() -> Result<(), BoxError> {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let threads = candle_core::utils::get_num_threads();
    let dir: PathBuf = std::env::temp_dir().join(format!("flux-vs-torch-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<(), BoxError> {
        let mut torch = Torch::start(&dir, threads)?;
        let start = Instant::now();
        let files = ModelFiles::transformer_only(dir.join("transformer"));
        let model = model::load_transformer(&files, &LoadOptions::default())?;
        println!(
            "engine: loaded the diffusers folder in {:.0} ms, peak RSS {:.0} MiB; f32, CPU, {threads} threads",
            start.elapsed().as_secs_f64() * 1e3,
            peak_rss_mib()
        );
        let ratios = [256, 1024]
            .iter()
            .map(|&n| compare(&model, &mut torch, &dir, n, rounds))
            .collect::<Result<Vec<_>, _>>()?;
        println!(
            "\nsummary: median ratio engine/PyTorch {:.3} at 256 tokens, {:.3} at 1024 tokens",
            ratios[0], ratios[1]
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
