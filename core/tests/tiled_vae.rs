//! The autoencoder tile by tile (a quarter of a tile's side overlapping, blended at the seams):
//! close to the whole-image result where both run, and peak memory a tile's whatever the image
//! size (measured by counting every allocation of this test binary). Smaller tiles than the
//! engine's 512 pixels keep the CPU time short; `cargo bench --bench tiled_vae` measures the
//! engine's tiles at 2048² and 4096².
//!
//! Tolerance: tiling is not exact — the autoencoder's mid-block attention and group norms see one
//! tile's statistics instead of the image's — so tiled and whole results are compared by their
//! mean absolute difference relative to the output's spread (below 5% on the tiny autoencoder's
//! random weights, whose statistics vary far more across an image than a trained model's).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::*;
use flux_core::model::autoencoder::{self, AutoEncoder};
use flux_core::model::names::Naming;
use flux_core::model::store::WeightSet;
use flux_core::model::weights::ModelWeights;
use flux_core::pipeline::noise;

/// The system allocator, counting the bytes live and the most seen since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Held by each test: the counters see every thread of the binary, so tests run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny_ae() -> AutoEncoder {
    let path = reference("ae_tiny.weights.safetensors");
    let set = WeightSet::open("autoencoder", &[path]).unwrap();
    let w = Arc::new(ModelWeights::new(set, Naming::Native));
    let config = autoencoder::infer_config(&w, None).unwrap();
    AutoEncoder::load(&w, config, DType::F32, &Device::Cpu).unwrap()
}

fn randn(seed: u64, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(noise::gaussian(seed, n), shape, &Device::Cpu).unwrap()
}

/// Mean |a − b| over the standard deviation of `b`.
fn relative_mean_error(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (values(a), values(b));
    let n = b.len() as f32;
    let mean = b.iter().sum::<f32>() / n;
    let std = (b.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    let mae = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / n;
    mae / std
}

#[test]
fn tiled_decode_and_encode_stay_close_to_the_whole_image() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ae = tiny_ae();
    // 48×40 latent cells: 384×320 pixels, tiles of 32 cells, uneven overlaps.
    let latent = randn(1, &[1, 16, 48, 40]);
    let whole = ae.decode(&latent).unwrap();
    ae.set_tile(32);
    let tiled = ae.decode(&latent).unwrap();
    assert_eq!(tiled.dims(), whole.dims());
    let err = relative_mean_error(&tiled, &whole);
    eprintln!("decode: tiled vs whole mean |Δ| / std = {err:.4}");
    assert!(err < 0.05, "decode: {err}");

    let image = whole.clamp(-1.0, 1.0).unwrap();
    let tiled = ae.encode(&image).unwrap();
    ae.set_tiled(false);
    let want = ae.encode(&image).unwrap();
    assert_eq!(tiled.dims(), want.dims());
    let err = relative_mean_error(&tiled, &want);
    eprintln!("encode: tiled vs whole mean |Δ| / std = {err:.4}");
    assert!(err < 0.05, "encode: {err}");

    // An image within one tile is not tiled: the same result bit for bit.
    let small = randn(2, &[1, 16, 24, 32]);
    let whole = values(&ae.decode(&small).unwrap());
    ae.set_tile(32);
    assert!(values(&ae.decode(&small).unwrap()) == whole);
}

/// The most bytes live while decoding `latent`, above what was live before.
fn peak_during(f: impl FnOnce() -> Tensor) -> (usize, Tensor) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let out = f();
    (PEAK.load(Ordering::SeqCst) - before, out)
}

#[test]
fn tiled_decode_peak_memory_stays_a_tiles_as_the_image_grows() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ae = tiny_ae();
    let cells = 16;
    ae.set_tile(cells);
    let tile_estimate = ae.activation_bytes((cells * 8).pow(2), DType::F32, false) as usize;
    // Warm up: the matmul kernels keep per-thread buffers from their first call.
    ae.decode(&randn(3, &[1, 16, 32, 32])).unwrap();
    let mut above = vec![];
    for side in [256usize, 768] {
        let latent = randn(3, &[1, 16, side / 8, side / 8]);
        let (peak, image) = peak_during(|| ae.decode(&latent).unwrap());
        assert_eq!(image.dims(), &[1, 3, side, side]);
        // The blended result (3 channels of sums, a plane of weights) and the output tensor
        // grow with the image; everything else is a tile's.
        let result = 4 * side * side * (3 + 1 + 3);
        let tiles = peak.saturating_sub(result);
        eprintln!(
            "{side}²: peak {} KiB, result {} KiB, a tile's estimate {} KiB",
            peak >> 10,
            result >> 10,
            tile_estimate >> 10
        );
        above.push(tiles);
    }
    // 9× the pixels, the same tile-sized working memory (within a quarter).
    assert!(above[1] <= above[0] + above[0] / 4, "{above:?}");
    assert!(above[1] <= tile_estimate, "{above:?}");
}
