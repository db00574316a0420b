//! Text-to-image: size checks, defaults, seeded noise, schedule, denoise, VAE decode.

pub mod edit;
pub mod noise;
pub mod packing;
pub mod sampler;
pub mod schedule;
pub mod tools;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::image::export::GenerationMeta;
use crate::image::ImageInput;
use crate::image::RgbImage;
use crate::lora::LoraChoice;
use crate::model::autoencoder::AutoEncoder;
use crate::model::redux::ReduxEncoder;
use crate::model::transformer::FluxTransformer;
use crate::model::{FluxModel, Variant};
use crate::text::PromptEmbedding;
use sampler::{Conditioning, Guides, StepHook};
use tools::ToolInput;

/// Largest accepted image side in pixels.
pub const MAX_SIDE: usize = 4096;
/// Largest accepted image area in pixels (4 MP; FLUX.1 is trained up to about 2 MP).
pub const MAX_PIXELS: usize = 2048 * 2048;
/// Most denoising steps accepted in one run.
pub const MAX_STEPS: usize = 1000;

/// Fails unless every value of `t` is finite, at the cost of one reduction: NaN or infinity
/// (corrupt or badly converted weights, an fp16 overflow, an extreme guidance) would otherwise
/// go on to decode as a black or noise image.
pub(crate) fn ensure_finite(t: &Tensor, what: impl FnOnce() -> String) -> Result<()> {
    // A sum in f32 is NaN or infinite as soon as one value is (and cannot overflow for finite
    // values of a latent's size).
    let sum = t
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    match sum.is_finite() {
        true => Ok(()),
        false => Err(Error::NonFinite(what())),
    }
}

/// The defaults users know from the reference CLI for each variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VariantDefaults {
    pub steps: usize,
    pub guidance: f32,
    /// T5 sequence length.
    pub t5_len: usize,
    /// Whether the schedule is shifted by the image size.
    pub shift: bool,
}

impl Variant {
    /// Defaults for text-to-image: dev 28 steps, guidance 3.5, 512 T5 tokens, shifted schedule;
    /// schnell 4 steps, 256 T5 tokens, unshifted.
    pub fn defaults(self) -> VariantDefaults {
        match self {
            Variant::Dev => VariantDefaults {
                steps: 28,
                guidance: 3.5,
                t5_len: 512,
                shift: true,
            },
            Variant::Schnell => VariantDefaults {
                steps: 4,
                guidance: 0.0,
                t5_len: 256,
                shift: false,
            },
        }
    }
}

fn nearest_valid(v: usize) -> usize {
    (((v + 8) / 16) * 16).clamp(16, MAX_SIDE)
}

/// Checks an output size: positive multiples of 16, each side ≤ [`MAX_SIDE`], area ≤ [`MAX_PIXELS`].
/// Runs before anything is allocated.
pub fn validate_size(width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 || !width.is_multiple_of(16) || !height.is_multiple_of(16) {
        return Err(Error::invalid(format!(
            "image size {width}x{height} must be positive multiples of 16; nearest valid size: {}x{}",
            nearest_valid(width),
            nearest_valid(height)
        )));
    }
    if width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_PIXELS {
        return Err(Error::invalid(format!(
            "image size {width}x{height} is too large: at most {MAX_SIDE} px a side and {MAX_PIXELS} px in all"
        )));
    }
    Ok(())
}

/// True classifier-free guidance (diffusers `true_cfg_scale`): each step also runs the
/// transformer on the negative prompt and takes `neg + scale · (pos − neg)`.
#[derive(Debug, Clone, PartialEq)]
pub struct NegativePrompt {
    pub prompt: String,
    /// Above 1 turns true CFG on (two transformer passes per step); 1 leaves it off.
    pub scale: f32,
}

impl NegativePrompt {
    /// Checks the scale: finite and ≥ 1.
    pub fn validate(&self) -> Result<()> {
        match self.scale.is_finite() && self.scale >= 1.0 {
            true => Ok(()),
            false => Err(Error::invalid(format!(
                "the true CFG scale must be a finite value ≥ 1 (1 = off), got {}",
                self.scale
            ))),
        }
    }

    /// The negative prompt when it turns true CFG on.
    pub fn active(negative: Option<&NegativePrompt>) -> Option<&NegativePrompt> {
        negative.filter(|n| n.scale > 1.0)
    }
}

/// A text-to-image request; `None` fields take the model's defaults.
#[derive(Debug, Clone)]
pub struct TextToImage {
    pub prompt: String,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    pub steps: Option<usize>,
    pub guidance: Option<f32>,
    pub t5_len: Option<usize>,
    /// LoRAs an engine applies before running the job (`runtime::Engine`); the pipeline
    /// functions use the model as it is (see `FluxTransformer::set_adapters`).
    pub loras: Vec<LoraChoice>,
    /// True CFG with a negative prompt; off when `None`.
    pub negative: Option<NegativePrompt>,
    /// The input of a FLUX.1 Fill or Canny/Depth model; required by those models, refused by
    /// others. Its defaults replace the variant's.
    pub tool: Option<ToolInput>,
    /// FLUX.1 Redux images: each one's tokens are appended after the prompt's T5 tokens (needs
    /// the Redux files beside the model). BFL's Redux runs with the empty prompt.
    pub redux: Vec<ImageInput>,
}

impl TextToImage {
    /// A 1024×1024 request with the variant defaults.
    pub fn new(prompt: impl Into<String>, seed: u64) -> Self {
        Self {
            prompt: prompt.into(),
            width: 1024,
            height: 1024,
            seed,
            steps: None,
            guidance: None,
            t5_len: None,
            loras: Vec::new(),
            negative: None,
            tool: None,
            redux: Vec::new(),
        }
    }

    /// Validates the request and fills in the defaults of `variant`, or of its tool input's model.
    pub fn resolve(&self, variant: Variant) -> Result<Resolved> {
        validate_size(self.width, self.height)?;
        if let Some(n) = &self.negative {
            n.validate()?;
        }
        let d = match &self.tool {
            Some(input) => input.tool().defaults(),
            None => variant.defaults(),
        };
        let steps = self.steps.unwrap_or(d.steps);
        if steps == 0 || steps > MAX_STEPS {
            return Err(Error::invalid(format!(
                "steps must be in 1..={MAX_STEPS}, got {steps}"
            )));
        }
        let guidance = self.guidance.unwrap_or(d.guidance);
        if !guidance.is_finite() || guidance < 0.0 {
            return Err(Error::invalid(format!(
                "guidance must be a finite value ≥ 0, got {guidance}"
            )));
        }
        let t5_len = self.t5_len.unwrap_or(d.t5_len);
        if !(2..=4096).contains(&t5_len) {
            return Err(Error::invalid(format!(
                "the T5 sequence length must be in 2..=4096, got {t5_len}"
            )));
        }
        Ok(Resolved {
            width: self.width,
            height: self.height,
            seed: self.seed,
            steps,
            guidance,
            t5_len,
            shift: d.shift,
        })
    }
}

/// A validated request with every default applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    pub steps: usize,
    pub guidance: f32,
    pub t5_len: usize,
    pub shift: bool,
}

/// Wall time of each stage of a generation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    pub text_encoding: Duration,
    pub denoising: Duration,
    pub decoding: Duration,
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Generated {
    pub image: RgbImage,
    /// The same pixels kept on the GPU (CUDA engines only), for writing into host GPU memory.
    pub gpu_pixels: Option<crate::interop::GpuPixels>,
    /// Final latent (1, 16, h, w).
    pub latent: Tensor,
    pub meta: GenerationMeta,
    pub timings: StageTimings,
}

/// The prompt's embedding, and with true CFG the negative prompt's and its scale.
pub struct Embeddings {
    pub positive: PromptEmbedding,
    pub negative: Option<(PromptEmbedding, f32)>,
}

impl Embeddings {
    /// The embeddings with `tokens` (1, N, T5 width) appended after the prompt's T5 tokens (the
    /// negative prompt's stay as they are).
    pub fn with_image_tokens(&self, tokens: Option<&Tensor>) -> Result<Embeddings> {
        let mut positive = self.positive.clone();
        if let Some(tokens) = tokens {
            let tokens = tokens.to_dtype(positive.txt.dtype())?;
            positive.txt = Tensor::cat(&[&positive.txt, &tokens], 1)?;
        }
        Ok(Embeddings {
            positive,
            negative: self.negative.clone(),
        })
    }

    /// The conditioning of the prompt and of the negative prompt at `guidance` (the same for
    /// both, as diffusers feeds it).
    pub fn conditioning(
        &self,
        model: &FluxTransformer,
        guidance: f32,
    ) -> Result<(Conditioning, Option<(Conditioning, f32)>)> {
        let negative = match &self.negative {
            Some((emb, scale)) => Some((conditioning(model, emb, guidance)?, *scale)),
            None => None,
        };
        Ok((conditioning(model, &self.positive, guidance)?, negative))
    }
}

/// Moves a prompt embedding to the transformer's dtype and builds its conditioning.
pub fn conditioning(
    model: &FluxTransformer,
    emb: &PromptEmbedding,
    guidance: f32,
) -> Result<Conditioning> {
    let dtype = model.dtype();
    let txt = emb.txt.to_dtype(dtype)?;
    let (b, len, _) = txt.dims3()?;
    Ok(Conditioning {
        txt_ids: packing::text_ids(b, len, txt.device())?.to_dtype(dtype)?,
        vec: emb.vec.to_dtype(dtype)?,
        txt,
        guidance,
    })
}

/// Denoises `noise` (1, 16, h, w) into a final latent of the same shape, with what `guides` adds
/// to each step; the token grid is (h/2, w/2).
pub fn sample(
    model: &FluxTransformer,
    cond: &Conditioning,
    guides: &Guides,
    noise: &Tensor,
    steps: usize,
    shift: bool,
    hook: &mut StepHook,
) -> Result<Tensor> {
    let (_, _, h, w) = noise.dims4()?;
    let (rows, cols) = (h / 2, w / 2);
    let img = packing::pack(noise)?;
    let ids = packing::image_ids(1, rows, cols, 0.0, noise.device())?.to_dtype(model.dtype())?;
    let ts = schedule::timesteps(steps, rows * cols, shift);
    let x = sampler::denoise(model, img, &ids, cond, guides, &ts, hook)?;
    packing::unpack(&x, rows, cols)
}

/// Generates from the prompt embeddings: seeded noise, the tool input's conditioning (encoded
/// with `ae`), denoise; returns the final latent.
pub fn generate_from_embedding(
    (transformer, ae): (&FluxTransformer, &AutoEncoder),
    embs: &Embeddings,
    tool: Option<&ToolInput>,
    r: &Resolved,
    hook: &mut StepHook,
) -> Result<Tensor> {
    let device = embs.positive.txt.device();
    let (h, w) = packing::latent_size(r.height, r.width);
    let noise = noise::latent_noise(r.seed, packing::LATENT_CHANNELS, h, w, device)?;
    let (cond, negative) = embs.conditioning(transformer, r.guidance)?;
    let size = (r.width, r.height);
    let features = tool
        .map(|t| t.features(ae, size, transformer.dtype(), device))
        .transpose()?;
    let guides = Guides {
        features: features.as_ref(),
        negative: negative.as_ref().map(|(c, scale)| (c, *scale)),
        ..Guides::default()
    };
    sample(transformer, &cond, &guides, &noise, r.steps, r.shift, hook)
}

/// Something that turns a prompt into its conditioning: the text encoders, or the runtime's
/// cache in front of them.
pub trait PromptEncoder {
    /// Embeds `prompt` with `t5_len` T5 tokens.
    fn embed(&mut self, prompt: &str, t5_len: usize) -> Result<PromptEmbedding>;

    /// Called once a job's prompts are embedded (the prompt, and the negative one with true
    /// CFG), so that encoders the memory plan releases are released once, after both.
    fn finished(&mut self) {}
}

impl PromptEncoder for crate::text::TextEncoders {
    fn embed(&mut self, prompt: &str, t5_len: usize) -> Result<PromptEmbedding> {
        self.encode(prompt, t5_len)
    }
}

/// The components a job runs on.
pub struct Parts<'a> {
    pub transformer: &'a FluxTransformer,
    pub ae: &'a AutoEncoder,
    pub text: &'a mut dyn PromptEncoder,
    /// The Redux encoder, when the model has one.
    pub redux: Option<&'a ReduxEncoder>,
}

impl<'a> From<&'a mut FluxModel> for Parts<'a> {
    fn from(m: &'a mut FluxModel) -> Self {
        Parts {
            transformer: &m.transformer,
            ae: &m.ae,
            text: &mut m.text,
            redux: m.redux.as_ref(),
        }
    }
}

/// The Redux tokens of `images`, one after the other (1, N, T5 width), or `None` without images.
pub fn redux_tokens(
    encoder: Option<&ReduxEncoder>,
    images: &[ImageInput],
) -> Result<Option<Tensor>> {
    if images.is_empty() {
        return Ok(None);
    }
    let encoder = encoder.ok_or_else(|| {
        Error::invalid(
            "the job has Redux images, but the model has no Redux encoder: put the SigLIP folder \
             (siglip*/) and flux1-redux-dev.safetensors beside the model",
        )
    })?;
    let tokens = images
        .iter()
        .map(|image| {
            let pixels = image.pixels()?;
            encoder.tokens(&pixels)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Tensor::cat(&tokens, 1)?))
}

/// Encodes `prompt` (and the negative prompt when it turns true CFG on), runs `denoise` (the
/// stage that turns the embeddings into a final latent: text-to-image, edit or img2img),
/// decodes, and times each stage.
pub fn run_timed(
    parts: Parts,
    (prompt, negative): (&str, Option<&NegativePrompt>),
    r: &Resolved,
    hook: &mut StepHook,
    denoise: impl FnOnce(&FluxTransformer, &AutoEncoder, &Embeddings, &mut StepHook) -> Result<Tensor>,
) -> Result<Generated> {
    let start = Instant::now();
    let mut embed = |prompt: &str| -> Result<PromptEmbedding> {
        let emb = parts.text.embed(prompt, r.t5_len)?;
        ensure_finite(&emb.txt, || "the T5 encoder's output".into())?;
        ensure_finite(&emb.vec, || "the CLIP encoder's output".into())?;
        Ok(emb)
    };
    let embs = (|| {
        Ok::<_, Error>(Embeddings {
            positive: embed(prompt)?,
            negative: match NegativePrompt::active(negative) {
                Some(n) => Some((embed(&n.prompt)?, n.scale)),
                None => None,
            },
        })
    })();
    parts.text.finished();
    let embs = embs?;
    let text_encoding = start.elapsed();
    let start = Instant::now();
    let latent = denoise(parts.transformer, parts.ae, &embs, hook)?;
    let denoising = start.elapsed();
    let start = Instant::now();
    let decoded = parts.ae.decode(&latent)?;
    ensure_finite(&decoded, || "the autoencoder's decoded image".into())?;
    let gpu_pixels = crate::interop::GpuPixels::keep(&decoded)?;
    let image = match &gpu_pixels {
        Some(pixels) => pixels.to_rgb()?,
        None => RgbImage::from_tensor(&decoded)?,
    };
    let decoding = start.elapsed();
    let meta = GenerationMeta {
        prompt: prompt.to_string(),
        seed: r.seed,
        steps: r.steps,
        guidance: r.guidance,
        width: r.width,
        height: r.height,
        variant: match parts.transformer.tool() {
            Some(tool) => format!("{}-{}", parts.transformer.variant().name(), tool.name()),
            None => parts.transformer.variant().name().to_string(),
        },
        loras: parts.transformer.loras().to_vec(),
        negative: NegativePrompt::active(negative).cloned(),
    };
    Ok(Generated {
        image,
        gpu_pixels,
        latent,
        meta,
        timings: StageTimings {
            text_encoding,
            denoising,
            decoding,
        },
    })
}

/// Text-to-image with a loaded model (`&mut FluxModel` or [`Parts`]). The hook sees every step
/// and may cancel.
pub fn generate<'a>(
    model: impl Into<Parts<'a>>,
    req: &TextToImage,
    hook: &mut StepHook,
) -> Result<Generated> {
    let parts = model.into();
    let r = req.resolve(parts.transformer.variant())?;
    tools::check_input(parts.transformer.tool(), req.tool.as_ref())?;
    let tokens = redux_tokens(parts.redux, &req.redux)?;
    let prompts = (req.prompt.as_str(), req.negative.as_ref());
    run_timed(parts, prompts, &r, hook, |t, ae, embs, hook| {
        let embs = embs.with_image_tokens(tokens.as_ref())?;
        generate_from_embedding((t, ae), &embs, req.tool.as_ref(), &r, hook)
    })
}

/// A hook that never cancels.
pub fn no_hook() -> impl FnMut(&sampler::StepInfo) -> ControlFlow<()> {
    |_| ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_validation_names_nearest_size() {
        assert!(validate_size(1024, 768).is_ok());
        let e = validate_size(1000, 770).unwrap_err().to_string();
        assert!(e.contains("1008x768"), "{e}");
        assert!(validate_size(0, 64).is_err());
        assert!(validate_size(64, 8)
            .unwrap_err()
            .to_string()
            .contains("64x16"));
        assert!(validate_size(16, 4112)
            .unwrap_err()
            .to_string()
            .contains("too large"));
        assert!(validate_size(4096, 4096)
            .unwrap_err()
            .to_string()
            .contains("too large"));
        assert!(validate_size(usize::MAX - 15, 16).is_err());
    }

    #[test]
    fn defaults_and_limits() {
        let r = TextToImage::new("x", 1).resolve(Variant::Dev).unwrap();
        assert_eq!(
            (r.steps, r.guidance, r.t5_len, r.shift, r.width),
            (28, 3.5, 512, true, 1024)
        );
        let r = TextToImage::new("x", 1).resolve(Variant::Schnell).unwrap();
        assert_eq!((r.steps, r.t5_len, r.shift), (4, 256, false));
        let mut q = TextToImage::new("x", 1);
        q.steps = Some(0);
        assert!(q.resolve(Variant::Dev).is_err());
        q.steps = Some(4);
        q.guidance = Some(f32::NAN);
        assert!(q.resolve(Variant::Dev).is_err());
    }
}
