//! The flow-matching timestep schedule (reference `get_schedule`), evaluated in f32 the way the
//! reference's tensor arithmetic does, so shifted schedules start at 0.99999994 as theirs do.

/// Image-token count at which the shift is 0.5 (256×256 px).
const BASE_TOKENS: f64 = 256.0;
/// Image-token count at which the shift is 1.15 (1024×1024 px).
const MAX_TOKENS: f64 = 4096.0;
const BASE_SHIFT: f64 = 0.5;
const MAX_SHIFT: f64 = 1.15;

/// The shift `mu`, linear in the number of target image tokens (256 -> 0.5, 4096 -> 1.15).
pub fn mu(image_tokens: usize) -> f64 {
    BASE_SHIFT
        + (MAX_SHIFT - BASE_SHIFT) / (MAX_TOKENS - BASE_TOKENS)
            * (image_tokens as f64 - BASE_TOKENS)
}

/// `steps + 1` timesteps from 1 to 0; shifted by `mu(image_tokens)` when `shift` (dev, Kontext).
pub fn timesteps(steps: usize, image_tokens: usize, shift: bool) -> Vec<f32> {
    let n = steps + 1;
    let step = -1.0 / steps as f64;
    // torch.linspace(1, 0, n): from the start for the first half, from the end for the rest.
    let linear = (0..n).map(|i| {
        if i < n / 2 {
            (1.0 + step * i as f64) as f32
        } else {
            (0.0 - step * (n - 1 - i) as f64) as f32
        }
    });
    if !shift {
        return linear.collect();
    }
    let e = mu(image_tokens).exp() as f32;
    linear
        .map(|t| (1.0f32 / (e + (1.0 / t - 1.0))) * e)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let s = timesteps(28, 4096, true);
        assert_eq!(s.len(), 29);
        assert_eq!(*s.last().unwrap(), 0.0);
        assert!(s.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(timesteps(4, 12, false), vec![1.0, 0.75, 0.5, 0.25, 0.0]);
    }
}
