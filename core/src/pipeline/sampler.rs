//! The Euler flow-matching sampler with a per-step hook (progress, previews, cancellation).

use std::ops::ControlFlow;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::transformer::FluxTransformer;

/// What the model is conditioned on, already on the model's device and dtype.
pub struct Conditioning {
    /// T5 tokens (B, L, d).
    pub txt: Tensor,
    /// Text ids (B, L, 3).
    pub txt_ids: Tensor,
    /// CLIP pooled vector (B, d).
    pub vec: Tensor,
    /// Distilled guidance (dev); ignored by schnell.
    pub guidance: f32,
}

/// Extra image tokens appended after the target tokens at every step (Kontext references);
/// never noised or updated, and cut from the prediction.
pub struct ReferenceTokens {
    /// Packed reference latents (B, N_ref, 64).
    pub tokens: Tensor,
    /// Their ids (B, N_ref, 3).
    pub ids: Tensor,
}

/// What a denoise adds to the plain text-to-image step; `Guides::default()` adds nothing.
#[derive(Default)]
pub struct Guides<'a> {
    /// Kontext reference tokens appended after the target tokens.
    pub reference: Option<&'a ReferenceTokens>,
    /// Fill or Canny/Depth conditioning (B, N, F) concatenated after the noisy latent's
    /// features at every step (BFL `img_cond`).
    pub features: Option<&'a Tensor>,
    /// True classifier-free guidance: a second pass on the negative prompt's conditioning per
    /// step, combined as `neg + scale · (pos − neg)` (diffusers `true_cfg_scale`).
    pub negative: Option<(&'a Conditioning, f32)>,
}

/// Progress of a running denoise, passed to the hook after each step.
pub struct StepInfo<'a> {
    /// Steps completed so far (1-based).
    pub step: usize,
    /// Steps this run will take.
    pub total: usize,
    /// Timestep reached.
    pub t: f32,
    /// The packed latent after this step (B, N, 64).
    pub latent: &'a Tensor,
    /// The target token grid (rows, cols) of `latent`.
    pub grid: (usize, usize),
}

/// The (rows, cols) grid of image ids (B, rows·cols, 3), from the last token's (row, col).
fn grid_of(img_ids: &Tensor) -> Result<(usize, usize)> {
    let n = img_ids.dim(1)?;
    let last = img_ids
        .get(0)?
        .get(n - 1)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    Ok((last[1] as usize + 1, last[2] as usize + 1))
}

/// A per-step callback; returning `Break` cancels the run.
pub type StepHook<'h> = dyn FnMut(&StepInfo) -> ControlFlow<()> + 'h;

/// Runs Euler steps `x += (t_next − t_cur) · v(x, t_cur)` over `timesteps` from the packed latent
/// `img`, with what `guides` adds to each step.
pub fn denoise(
    model: &FluxTransformer,
    img: Tensor,
    img_ids: &Tensor,
    cond: &Conditioning,
    guides: &Guides,
    timesteps: &[f32],
    hook: &mut StepHook,
) -> Result<Tensor> {
    let batch = img.dim(0)?;
    let n_target = img.dim(1)?;
    let dtype = model.dtype();
    let device = img.device().clone();
    let ids = match guides.reference {
        Some(r) => Tensor::cat(&[img_ids, &r.ids], 1)?,
        None => img_ids.clone(),
    };
    let reference = guides
        .reference
        .map(|r| r.tokens.to_dtype(dtype))
        .transpose()?;
    let features = guides.features.map(|f| f.to_dtype(dtype)).transpose()?;
    let total = timesteps.len().saturating_sub(1);
    let grid = grid_of(img_ids)?;
    let mut x = img.to_dtype(dtype)?;
    for (i, pair) in timesteps.windows(2).enumerate() {
        let (t_cur, t_next) = (pair[0], pair[1]);
        let t_vec = Tensor::full(t_cur, batch, &device)?.to_dtype(dtype)?;
        let mut input = match &features {
            Some(f) => Tensor::cat(&[&x, f], 2)?,
            None => x.clone(),
        };
        if let Some(r) = &reference {
            input = Tensor::cat(&[&input, r], 1)?;
        }
        let predict = |c: &Conditioning| -> Result<Tensor> {
            let guidance = Tensor::full(c.guidance, batch, &device)?.to_dtype(dtype)?;
            let pred = model.forward(
                &input,
                &ids,
                &c.txt,
                &c.txt_ids,
                &t_vec,
                &c.vec,
                Some(&guidance),
            )?;
            Ok(pred.narrow(1, 0, n_target)?)
        };
        let mut pred = predict(cond)?;
        if let Some((negative, scale)) = guides.negative {
            let neg = predict(negative)?;
            pred = (&neg + ((pred - &neg)? * f64::from(scale))?)?;
        }
        x = (x + (pred * f64::from(t_next - t_cur))?)?;
        super::ensure_finite(&x, || format!("the latent after step {} of {total}", i + 1))?;
        let info = StepInfo {
            step: i + 1,
            total,
            t: t_next,
            latent: &x,
            grid,
        };
        if hook(&info).is_break() {
            return Err(Error::Cancelled);
        }
    }
    Ok(x)
}
