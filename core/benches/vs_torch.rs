//! The engine's FLUX transformer forward against diffusers' `FluxTransformer2DModel`, side by
//! side in one run, on the same weights and inputs.
//!
//! `vs_torch.py` (run with `FLUX_BENCH_PYTHON`, default `python3`, which needs torch, diffusers
//! and safetensors) builds a random model and saves it in the diffusers layout; this program
//! loads it through the engine's diffusers loader. Each case: one warm-up forward each, then
//! alternating rounds (the order flips every round), the per-round ratio engine / PyTorch,
//! medians, and the relative L2 distance between the two outputs.
//!
//! - CPU (default): the "small" model (hidden 1536, 12 heads of 128, 2 double + 4 single blocks,
//!   guidance on) in f32, 256 and 1024 image tokens (256², 512²) with 128 text tokens, the same
//!   thread count on both sides (candle's, e.g. `RAYON_NUM_THREADS`). Goal ratio ≤ 0.9.
//! - `--gpu` (a build with the `cuda` feature; `.ci/build-cuda` makes it): FLUX.1-dev's shapes in
//!   bf16 on CUDA device 0, 1024² (4096 image tokens) and a Kontext step with a 1024² reference
//!   (4096 + 4096), 512 text tokens; also 28 Euler steps end to end and each side's peak device
//!   memory. Goal ratio ≤ 0.75 (PyTorch eager, its SDPA attention).
//!
//! `cargo bench -p flux-core --bench vs_torch [-- ROUNDS] [--gpu]` (ROUNDS defaults to 9 on the CPU,
//! 5 on a GPU)

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flux_core::model::{self, transformer::FluxTransformer, LoadOptions, ModelFiles};

mod support;
use support::{median, peak_rss_mib, BoxError, Torch};

/// Starts `vs_torch.py` on the model folder `dir` and waits for it to be ready.
fn start_torch(dir: &Path, threads: usize, mode: &Mode) -> Result<Torch, BoxError> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/vs_torch.py");
    let mut args = vec![
        script.to_string(),
        dir.display().to_string(),
        "--threads".into(),
        threads.to_string(),
    ];
    args.extend(mode.python_args());
    let mut torch = Torch::start(&args)?;
    torch.expect("ready")?;
    Ok(torch)
}

/// Runs a timed command (`run` or `steps`); returns ms and the peak device memory in MiB.
fn torch_timed(torch: &mut Torch, command: &str) -> Result<(f64, f64), BoxError> {
    torch.send(command)?;
    let line = torch.read_line()?;
    let bad = || format!("bad reply {line:?}");
    let (ms, peak) = line
        .strip_prefix("ms ")
        .and_then(|rest| rest.split_once(" peak_mib "))
        .ok_or_else(bad)?;
    Ok((ms.parse()?, peak.parse()?))
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
    fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self, BoxError> {
        let mut t = candle_core::safetensors::load(path, device)?;
        let mut take = |name: &str| -> Result<Tensor, BoxError> {
            Ok(t.remove(name)
                .ok_or(format!("{name} missing"))?
                .to_dtype(dtype)?)
        };
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

    fn velocity(&self, model: &FluxTransformer, img: &Tensor) -> flux_core::Result<Tensor> {
        model.forward(
            img,
            &self.img_ids,
            &self.txt,
            &self.txt_ids,
            &self.timesteps,
            &self.y,
            Some(&self.guidance),
        )
    }

    /// One timed forward: ms, the peak device memory in MiB (GPU) and the output.
    fn forward(&self, model: &FluxTransformer) -> Result<(f64, f64, Tensor), BoxError> {
        let (ms, peak, out) = timed(&self.img, || Ok(self.velocity(model, &self.img)?))?;
        Ok((ms, peak, out))
    }

    /// `k` Euler steps of 1/k on the first `n` (image) tokens, as `vs_torch.py` does.
    fn steps(&self, model: &FluxTransformer, n: usize, k: usize) -> Result<(f64, f64), BoxError> {
        let (ms, peak, _) = timed(&self.img, || {
            let mut img = self.img.clone();
            let total = img.dim(1)?;
            for _ in 0..k {
                let v = self.velocity(model, &img)?;
                let moved = (img.narrow(1, 0, n)? - (v.narrow(1, 0, n)? / k as f64)?)?;
                img = Tensor::cat(&[moved, img.narrow(1, n, total - n)?], 1)?;
            }
            Ok(img)
        })?;
        Ok((ms, peak))
    }
}

/// Times `work` on `like`'s device (waiting for the GPU), with that device's peak memory.
fn timed(
    like: &Tensor,
    work: impl FnOnce() -> Result<Tensor, BoxError>,
) -> Result<(f64, f64, Tensor), BoxError> {
    let device = like.device();
    device.synchronize()?;
    reset_device_peak(device);
    let start = Instant::now();
    let out = work()?;
    device.synchronize()?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    Ok((ms, device_peak_mib(device), out))
}

/// Relative L2 distance `|a − b| / |b|` and the largest absolute difference.
fn agreement(a: &Tensor, b: &Tensor) -> Result<(f64, f64), BoxError> {
    let diff = (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?;
    let norm = |t: &Tensor| -> candle_core::Result<f64> { t.sqr()?.sum_all()?.sqrt()?.to_scalar() };
    let rel = norm(&diff)? / norm(&b.to_dtype(DType::F64)?)?;
    let max_abs = diff.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    Ok((rel, max_abs))
}

/// What a run compares: the CPU (f32, "small" model) or a CUDA GPU (bf16, FLUX.1-dev shapes).
struct Mode {
    device: Device,
    dtype: DType,
    /// (image tokens, Kontext reference tokens) per case.
    cases: Vec<(usize, usize)>,
    text_tokens: usize,
    /// The ratio engine / PyTorch the run must reach, and the agreement bound (relative L2).
    goal: f64,
    agreement: f64,
    /// Timed rounds per case when the command line names none.
    rounds: usize,
}

impl Mode {
    fn new(gpu: bool) -> Result<Self, BoxError> {
        Ok(match gpu {
            false => Mode {
                device: Device::Cpu,
                dtype: DType::F32,
                cases: vec![(256, 0), (1024, 0)],
                text_tokens: 128,
                goal: 0.9,
                agreement: 1e-4,
                // A shared 2-core VM swings by ±20% within minutes: more rounds, steadier medians.
                rounds: 9,
            },
            true => Mode {
                device: Device::new_cuda(0).map_err(|e| {
                    format!("--gpu needs CUDA device 0 (a build with the cuda feature): {e}")
                })?,
                dtype: DType::BF16,
                cases: vec![(4096, 0), (4096, 4096)],
                text_tokens: 512,
                goal: 0.75,
                // bf16 through 57 blocks: both sides round differently at every layer.
                agreement: 3e-2,
                rounds: 5,
            },
        })
    }

    fn python_args(&self) -> Vec<String> {
        let (config, device) = match self.device.is_cuda() {
            true => ("dev", "cuda"),
            false => ("small", "cpu"),
        };
        ["--config", config, "--device", device, "--text-tokens"]
            .iter()
            .map(|s| s.to_string())
            .chain([self.text_tokens.to_string()])
            .collect()
    }
}

/// Alternating timed rounds for one case; returns the median ratio engine / PyTorch.
fn compare(
    model: &FluxTransformer,
    torch: &mut Torch,
    dir: &Path,
    mode: &Mode,
    (n, r): (usize, usize),
    rounds: usize,
) -> Result<f64, BoxError> {
    torch.send(&format!("inputs {n} {r}"))?;
    torch.expect("ok")?;
    let path = dir.join(format!("inputs_{n}_{r}.safetensors"));
    let inputs = Inputs::load(&path, &mode.device, mode.dtype)?;
    let side = (n as f64).sqrt() as usize * 16;
    let kontext = match r {
        0 => String::new(),
        r => format!(" + {r} reference (Kontext)"),
    };
    println!(
        "\n== {side}x{side}: {n} image{kontext} + {} text tokens ==",
        mode.text_tokens
    );
    let (warm_engine, _, mut out) = inputs.forward(model)?;
    let (warm_torch, _) = torch_timed(torch, &format!("run {n} {r}"))?;
    println!("warm-up: engine {warm_engine:.1} ms, PyTorch {warm_torch:.1} ms");
    let (mut engine_ms, mut torch_ms, mut ratios) = (vec![], vec![], vec![]);
    let (mut engine_peak, mut torch_peak) = (0f64, 0f64);
    for round in 0..rounds {
        let mut engine = || -> Result<f64, BoxError> {
            let (ms, peak, o) = inputs.forward(model)?;
            (out, engine_peak) = (o, engine_peak.max(peak));
            Ok(ms)
        };
        let (e, (t, tp)) = if round % 2 == 0 {
            (engine()?, torch_timed(torch, &format!("run {n} {r}"))?)
        } else {
            let t = torch_timed(torch, &format!("run {n} {r}"))?;
            (engine()?, t)
        };
        torch_peak = torch_peak.max(tp);
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
        "median: engine {:.1} ms, PyTorch {:.1} ms, per-round ratio engine/PyTorch {ratio:.3} (goal <= {}: {})",
        median(&mut engine_ms),
        median(&mut torch_ms),
        mode.goal,
        if ratio <= mode.goal { "met" } else { "NOT met" }
    );
    if mode.device.is_cuda() {
        println!("peak device memory: engine {engine_peak:.0} MiB, PyTorch {torch_peak:.0} MiB");
        if r == 0 {
            let steps = 28;
            let (e, ep) = inputs.steps(model, n, steps)?;
            let (t, tp) = torch_timed(torch, &format!("steps {n} {r} {steps}"))?;
            println!(
                "{steps} steps: engine {e:.0} ms (peak {ep:.0} MiB), PyTorch {t:.0} ms (peak {tp:.0} MiB), ratio {:.3}",
                e / t
            );
        }
    }
    torch.send(&format!("save {n} {r}"))?;
    torch.expect("ok")?;
    let reference = candle_core::safetensors::load(
        dir.join(format!("torch_out_{n}_{r}.safetensors")),
        &Device::Cpu,
    )?;
    let out = out.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let (rel, max_abs) = agreement(&out, &reference["out"])?;
    println!(
        "agreement: relative L2 {rel:.2e}, max abs {max_abs:.2e} (goal rel L2 <= {:.0e}: {})",
        mode.agreement,
        if rel <= mode.agreement {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(ratio)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = Mode::new(args.iter().any(|a| a == "--gpu"))?;
    let rounds: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(mode.rounds);
    let threads = candle_core::utils::get_num_threads();
    let dir: PathBuf = std::env::temp_dir().join(format!("flux-vs-torch-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<(), BoxError> {
        let mut torch = start_torch(&dir, threads, &mode)?;
        let start = Instant::now();
        let files = ModelFiles::transformer_only(dir.join("transformer"));
        let opts = LoadOptions {
            device: mode.device.clone(),
            dtype: Some(mode.dtype),
            ..LoadOptions::default()
        };
        let model = model::load_transformer(&files, &opts)?;
        println!(
            "engine: loaded the diffusers folder in {:.0} ms, peak RSS {:.0} MiB; {:?}, {:?}, {threads} threads",
            start.elapsed().as_secs_f64() * 1e3,
            peak_rss_mib(),
            mode.dtype,
            mode.device.location(),
        );
        let ratios = mode
            .cases
            .iter()
            .map(|&case| compare(&model, &mut torch, &dir, &mode, case, rounds))
            .collect::<Result<Vec<_>, _>>()?;
        let summary: Vec<String> = mode
            .cases
            .iter()
            .zip(&ratios)
            .map(|((n, r), ratio)| match r {
                0 => format!("{ratio:.3} at {n} image tokens"),
                r => format!("{ratio:.3} at {n} image + {r} reference tokens"),
            })
            .collect();
        println!(
            "\nsummary: median ratio engine/PyTorch {}",
            summary.join(", ")
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Peak device memory in use since the last [`reset_device_peak`], in MiB: the high-water mark
/// of the CUDA memory pool candle allocates from (weights included); 0 on the CPU.
fn device_peak_mib(device: &candle_core::Device) -> f64 {
    #[cfg(feature = "cuda")]
    if let Some(pool) = cuda_pool(device) {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let mut bytes = 0u64;
        let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
        // SAFETY: a live pool; the attribute is a u64 written to a live local.
        unsafe { sys::cuMemPoolGetAttribute(pool, attr, &mut bytes as *mut u64 as *mut _) };
        return bytes as f64 / (1 << 20) as f64;
    }
    let _ = device;
    0.0
}

/// Starts a new peak for [`device_peak_mib`] (no-op on the CPU).
fn reset_device_peak(device: &candle_core::Device) {
    #[cfg(feature = "cuda")]
    if let Some(pool) = cuda_pool(device) {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let mut zero = 0u64;
        let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
        // SAFETY: a live pool; the attribute is a u64 read from a live local.
        unsafe { sys::cuMemPoolSetAttribute(pool, attr, &mut zero as *mut u64 as *mut _) };
    }
    let _ = device;
}

#[cfg(feature = "cuda")]
fn cuda_pool(
    device: &candle_core::Device,
) -> Option<candle_core::cuda_backend::cudarc::driver::sys::CUmemoryPool> {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let candle_core::Device::Cuda(d) = device else {
        return None;
    };
    let ctx = d.cuda_stream().context().clone();
    let mut pool = std::mem::MaybeUninit::uninit();
    // SAFETY: the device of a live context; `pool` receives the handle.
    let r = unsafe { sys::cuDeviceGetDefaultMemPool(pool.as_mut_ptr(), ctx.cu_device()) };
    // SAFETY: on success the driver wrote the handle.
    (r == sys::CUresult::CUDA_SUCCESS).then(|| unsafe { pool.assume_init() })
}
