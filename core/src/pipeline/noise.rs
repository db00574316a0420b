//! Portable seeded noise: the same seed gives bit-identical noise on every OS, CPU and GPU.
//!
//! The generator is SplitMix64 (Steele, Lea & Flood 2014) over the seed; each pair of outputs gives
//! two standard normals by the Box–Muller transform, evaluated in f64 with the pure-Rust `libm`
//! functions (not the platform's math library, whose last bits differ between systems) and
//! rounded to f32. Noise is always made on the CPU and then moved to the device.

use candle_core::{Device, Tensor};

use crate::error::Result;

/// SplitMix64: a 64-bit generator with a fixed, documented output sequence.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: the top 53 bits, offset so that 0 never occurs.
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `n` standard-normal samples from `seed`.
pub fn gaussian(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u1, u2) = (rng.unit(), rng.unit());
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let theta = 2.0 * std::f64::consts::PI * u2;
        out.push((r * libm::cos(theta)) as f32);
        out.push((r * libm::sin(theta)) as f32);
    }
    out.truncate(n);
    out
}

/// Initial latent noise (1, channels, h, w) for `seed`, on `device` (f32).
pub fn latent_noise(
    seed: u64,
    channels: usize,
    h: usize,
    w: usize,
    device: &Device,
) -> Result<Tensor> {
    let data = gaussian(seed, channels * h * w);
    Ok(Tensor::from_vec(data, (1, channels, h, w), &Device::Cpu)?.to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sequence_and_statistics() {
        // Pinned values: a change here changes every user's seeds.
        let first = gaussian(42, 4);
        let again = gaussian(42, 4);
        assert_eq!(first, again);
        assert_ne!(gaussian(43, 4), first);
        let many = gaussian(7, 200_000);
        let mean = many.iter().map(|&x| x as f64).sum::<f64>() / many.len() as f64;
        let var = many.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / many.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        // Prefix property: a longer request starts with the shorter one.
        assert_eq!(&gaussian(42, 7)[..4], &first[..]);
    }

    #[test]
    fn pinned_bits() {
        let bits: Vec<u32> = gaussian(0, 3).iter().map(|x| x.to_bits()).collect();
        assert_eq!(bits, PINNED_SEED0);
    }

    /// The first three samples for seed 0, recorded when the generator was written.
    const PINNED_SEED0: [u32; 3] = [3202863069, 1045741727, 1076470663];
}
