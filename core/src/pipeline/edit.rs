//! FLUX.1 Kontext editing (with several reference images) and image-to-image, on the same
//! sampler as text-to-image.
//!
//! Kontext: each reference image is snapped to the closest-aspect preferred resolution (Lanczos),
//! VAE-encoded (the scaled, shifted mean), packed, and appended after the target tokens at every
//! step with ids `(i + 1, row, col)` for reference `i` (the first id axis counts references, rows
//! and columns restart at 0 on each reference's own grid); the prediction is cut back to the
//! target tokens. The schedule shift depends on the target token count only.

use candle_core::Tensor;

use super::sampler::{self, Guides, ReferenceTokens, StepHook};
use super::{
    noise, packing, schedule, tools, Embeddings, NegativePrompt, Parts, Resolved, TextToImage,
};
use crate::error::{Error, Result};
use crate::image::{ImageInput, RgbImage};
use crate::model::autoencoder::AutoEncoder;
use crate::model::transformer::FluxTransformer;
use crate::model::Variant;

/// The 17 resolutions (width, height) Kontext was trained at (BFL `PREFERED_KONTEXT_RESOLUTIONS`).
pub const KONTEXT_RESOLUTIONS: [(usize, usize); 17] = [
    (672, 1568),
    (688, 1504),
    (720, 1456),
    (752, 1392),
    (800, 1328),
    (832, 1248),
    (880, 1184),
    (944, 1104),
    (1024, 1024),
    (1104, 944),
    (1184, 880),
    (1248, 832),
    (1328, 800),
    (1392, 752),
    (1456, 720),
    (1504, 688),
    (1568, 672),
];

/// Most reference images one edit accepts.
pub const MAX_REFERENCES: usize = 4;

/// Kontext defaults from the BFL CLI.
pub const KONTEXT_STEPS: usize = 30;
pub const KONTEXT_GUIDANCE: f32 = 2.5;

/// The size a reference is resized to: the listed resolution closest in aspect ratio (first one
/// on ties), or with `resolutions` empty the image's own size rounded down to multiples of 16.
pub fn snapped_size(width: usize, height: usize, resolutions: &[(usize, usize)]) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let best = resolutions
        .iter()
        .min_by(|a, b| {
            let da = (aspect - a.0 as f64 / a.1 as f64).abs();
            let db = (aspect - b.0 as f64 / b.1 as f64).abs();
            da.total_cmp(&db)
        })
        .copied();
    let (w, h) = best.unwrap_or((width, height));
    ((w / 16 * 16).max(16), (h / 16 * 16).max(16))
}

/// VAE-encodes references into packed tokens with ids `(i + 1, row, col)`.
pub fn reference_tokens(
    ae: &AutoEncoder,
    refs: &[RgbImage],
    dtype: candle_core::DType,
    device: &candle_core::Device,
) -> Result<ReferenceTokens> {
    let mut tokens = Vec::with_capacity(refs.len());
    let mut ids = Vec::with_capacity(refs.len());
    for (i, img) in refs.iter().enumerate() {
        let latent = ae.encode(&img.to_tensor(device)?.to_dtype(dtype)?)?;
        let (_, _, h, w) = latent.dims4()?;
        tokens.push(packing::pack(&latent)?);
        ids.push(packing::image_ids(1, h / 2, w / 2, (i + 1) as f32, device)?.to_dtype(dtype)?);
    }
    Ok(ReferenceTokens {
        tokens: Tensor::cat(&tokens, 1)?,
        ids: Tensor::cat(&ids, 1)?,
    })
}

/// Denoises `noise` (1, 16, h, w) with reference tokens appended at every step.
pub fn sample_with_references(
    model: &FluxTransformer,
    cond: &sampler::Conditioning,
    noise: &Tensor,
    refs: &ReferenceTokens,
    steps: usize,
    hook: &mut StepHook,
) -> Result<Tensor> {
    let guides = Guides {
        reference: Some(refs),
        ..Guides::default()
    };
    sample_guided(model, cond, noise, &guides, steps, hook)
}

/// Denoises `noise` (1, 16, h, w) on the shifted schedule with what `guides` adds.
fn sample_guided(
    model: &FluxTransformer,
    cond: &sampler::Conditioning,
    noise: &Tensor,
    guides: &Guides,
    steps: usize,
    hook: &mut StepHook,
) -> Result<Tensor> {
    super::sample(model, cond, guides, noise, steps, true, hook)
}

/// A Kontext edit request. Caller buffers become [`RgbImage`]s through
/// [`ImageView::to_rgb`](crate::image::ImageView::to_rgb), which validates size and stride; GPU
/// references are read when the job is prepared.
#[derive(Debug, Clone)]
pub struct KontextEdit {
    pub prompt: String,
    /// Reference images, at least one, at most [`MAX_REFERENCES`].
    pub references: Vec<ImageInput>,
    /// Output size; default: the first reference's snapped size.
    pub size: Option<(usize, usize)>,
    /// Resolutions references snap to; default [`KONTEXT_RESOLUTIONS`], empty turns snapping off.
    pub resolutions: Vec<(usize, usize)>,
    pub seed: u64,
    /// Default 30.
    pub steps: Option<usize>,
    /// Default 2.5.
    pub guidance: Option<f32>,
    /// T5 length, default 512.
    pub t5_len: Option<usize>,
    /// LoRAs an engine applies before running the job (as [`TextToImage::loras`]).
    pub loras: Vec<crate::lora::LoraChoice>,
    /// True CFG with a negative prompt; off when `None`.
    pub negative: Option<NegativePrompt>,
}

impl KontextEdit {
    /// An edit of one image with the BFL defaults.
    pub fn new(prompt: impl Into<String>, image: RgbImage, seed: u64) -> Self {
        Self {
            prompt: prompt.into(),
            references: vec![image.into()],
            size: None,
            resolutions: KONTEXT_RESOLUTIONS.to_vec(),
            seed,
            steps: None,
            guidance: None,
            t5_len: None,
            loras: Vec::new(),
            negative: None,
        }
    }

    /// Checks the request, reads (GPU references) and snaps the references, and resolves the
    /// defaults.
    pub fn prepare(&self, variant: Variant) -> Result<(Vec<RgbImage>, Resolved)> {
        if variant == Variant::Schnell {
            return Err(Error::invalid(
                "Kontext editing needs a dev (Kontext) model; this is a schnell model",
            ));
        }
        if self.references.is_empty() {
            return Err(Error::invalid(
                "a Kontext edit needs at least one reference image",
            ));
        }
        if self.references.len() > MAX_REFERENCES {
            return Err(Error::invalid(format!(
                "{} reference images given; at most {MAX_REFERENCES}",
                self.references.len()
            )));
        }
        let refs = self
            .references
            .iter()
            .map(|input| {
                let (w, h) = input.size();
                let (w, h) = snapped_size(w, h, &self.resolutions);
                super::validate_size(w, h)?;
                input.pixels()?.resized(w, h)
            })
            .collect::<Result<Vec<_>>>()?;
        let (width, height) = self.size.unwrap_or((refs[0].width, refs[0].height));
        let req = TextToImage {
            prompt: self.prompt.clone(),
            width,
            height,
            seed: self.seed,
            steps: Some(self.steps.unwrap_or(KONTEXT_STEPS)),
            guidance: Some(self.guidance.unwrap_or(KONTEXT_GUIDANCE)),
            t5_len: self.t5_len,
            loras: self.loras.clone(),
            negative: self.negative.clone(),
            tool: None,
            redux: Vec::new(),
        };
        Ok((refs, req.resolve(variant)?))
    }
}

/// Runs a prepared Kontext edit from the prompt embeddings; returns the final latent.
pub fn edit_from_embedding(
    transformer: &FluxTransformer,
    ae: &AutoEncoder,
    embs: &Embeddings,
    refs: &[RgbImage],
    r: &Resolved,
    hook: &mut StepHook,
) -> Result<Tensor> {
    if !transformer.is_kontext() {
        log::warn!("editing with a dev model that is not marked Kontext-trained: a plain dev model was not trained to follow reference images (set LoadOptions::kontext if it is a Kontext model)");
    }
    let device = embs.positive.txt.device();
    let tokens = reference_tokens(ae, refs, transformer.dtype(), device)?;
    let (h, w) = packing::latent_size(r.height, r.width);
    let noise = noise::latent_noise(r.seed, packing::LATENT_CHANNELS, h, w, device)?;
    let (cond, negative) = embs.conditioning(transformer, r.guidance)?;
    let guides = Guides {
        reference: Some(&tokens),
        negative: negative.as_ref().map(|(c, scale)| (c, *scale)),
        ..Guides::default()
    };
    sample_guided(transformer, &cond, &noise, &guides, r.steps, hook)
}

/// Kontext edit with a loaded model (`&mut FluxModel` or [`Parts`]).
pub fn edit<'a>(
    model: impl Into<Parts<'a>>,
    req: &KontextEdit,
    hook: &mut StepHook,
) -> Result<super::Generated> {
    let model = model.into();
    tools::check_input(model.transformer.tool(), None)?;
    let (refs, r) = req.prepare(model.transformer.variant())?;
    let prompts = (req.prompt.as_str(), req.negative.as_ref());
    super::run_timed(model, prompts, &r, hook, |t, ae, embs, hook| {
        edit_from_embedding(t, ae, embs, &refs, &r, hook)
    })
}

/// An image-to-image request: `strength` in (0, 1] is how much of the schedule runs
/// (1 = all of it, starting from pure noise, i.e. exactly text-to-image for the seed).
#[derive(Debug, Clone)]
pub struct ImageToImage {
    pub base: TextToImage,
    pub init: ImageInput,
    pub strength: f32,
}

/// Index of the first schedule step an img2img run takes: `steps − round(steps · strength)`.
pub fn img2img_start(steps: usize, strength: f32) -> Result<usize> {
    if !(strength > 0.0 && strength <= 1.0) {
        return Err(Error::invalid(format!(
            "strength must be in (0, 1], got {strength}"
        )));
    }
    let run = ((steps as f32 * strength).round() as usize).clamp(1, steps);
    Ok(steps - run)
}

/// Image-to-image from a prompt embedding: the init image (resized to the output size) is
/// encoded and mixed with the seed's noise at the schedule point `t` where the run starts,
/// `x = t·noise + (1 − t)·latent`; only the remaining steps run.
pub fn img2img_from_embedding(
    transformer: &FluxTransformer,
    ae: &AutoEncoder,
    embs: &Embeddings,
    init: &RgbImage,
    strength: f32,
    r: &Resolved,
    hook: &mut StepHook,
) -> Result<Tensor> {
    let device = embs.positive.txt.device();
    let (h, w) = packing::latent_size(r.height, r.width);
    let noise = noise::latent_noise(r.seed, packing::LATENT_CHANNELS, h, w, device)?
        .to_dtype(transformer.dtype())?;
    let (rows, cols) = (h / 2, w / 2);
    let ts = schedule::timesteps(r.steps, rows * cols, r.shift);
    let start = img2img_start(r.steps, strength)?;
    let x0 = if start == 0 {
        noise
    } else {
        let latent = ae.encode(
            &init
                .resized(r.width, r.height)?
                .to_tensor(device)?
                .to_dtype(transformer.dtype())?,
        )?;
        let t = f64::from(ts[start]);
        ((noise * t)? + (latent * (1.0 - t))?)?
    };
    let (cond, negative) = embs.conditioning(transformer, r.guidance)?;
    let ids = packing::image_ids(1, rows, cols, 0.0, device)?.to_dtype(transformer.dtype())?;
    let guides = Guides {
        negative: negative.as_ref().map(|(c, scale)| (c, *scale)),
        ..Guides::default()
    };
    let x = sampler::denoise(
        transformer,
        packing::pack(&x0)?,
        &ids,
        &cond,
        &guides,
        &ts[start..],
        hook,
    )?;
    packing::unpack(&x, rows, cols)
}

/// Image-to-image with a loaded model (`&mut FluxModel` or [`Parts`]).
pub fn img2img<'a>(
    model: impl Into<Parts<'a>>,
    req: &ImageToImage,
    hook: &mut StepHook,
) -> Result<super::Generated> {
    let model = model.into();
    let r = req.base.resolve(model.transformer.variant())?;
    img2img_start(r.steps, req.strength)?;
    tools::check_input(model.transformer.tool(), req.base.tool.as_ref())?;
    if req.base.tool.is_some() {
        return Err(Error::invalid(
            "image-to-image takes no Fill or control input: give the image as the Fill image",
        ));
    }
    let init = req.init.pixels()?;
    let prompts = (req.base.prompt.as_str(), req.base.negative.as_ref());
    super::run_timed(model, prompts, &r, hook, |t, ae, embs, hook| {
        img2img_from_embedding(t, ae, embs, &init, req.strength, &r, hook)
    })
}
