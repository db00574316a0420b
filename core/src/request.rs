//! One description of every image job: text-to-image, Kontext edit and image-to-image share the
//! sampling parameters (defined once, here) and differ only in the images they are given. Each
//! setting is checked when it is set, so a caller learns which value is wrong at once; a setting
//! never set takes the default written beside it. The C ABI's `FluxRequest` is this type.

use std::path::PathBuf;

use candle_core::Device;

use crate::error::{Error, Result};
use crate::image::ImageInput;
use crate::lora::LoraChoice;
use crate::pipeline::edit::{
    img2img_start, ImageToImage, KontextEdit, KONTEXT_RESOLUTIONS, MAX_REFERENCES,
};
use crate::pipeline::tools::{Mask, ToolInput};
use crate::pipeline::{validate_size, NegativePrompt, TextToImage, MAX_STEPS};
use crate::runtime::JobRequest;

/// Default output size of text-to-image (an edit takes its first reference's snapped size, an
/// image-to-image its init image's, rounded down to multiples of 16).
pub const DEFAULT_SIZE: (usize, usize) = (1024, 1024);
/// Most LoRAs one request applies.
pub const MAX_LORAS: usize = 16;
/// Shortest and longest T5 sequence accepted.
pub const T5_LENGTHS: std::ops::RangeInclusive<usize> = 2..=4096;

/// A job being described. Reusable: submitting it leaves it as it was.
#[derive(Debug, Clone)]
pub struct Request {
    prompt: Option<String>,
    size: Option<(usize, usize)>,
    seed: u64,
    steps: Option<usize>,
    guidance: Option<f32>,
    t5_len: Option<usize>,
    priority: i32,
    references: Vec<ImageInput>,
    snap: bool,
    init: Option<(ImageInput, f32)>,
    tool: Option<ToolInput>,
    redux: Vec<ImageInput>,
    negative: Option<NegativePrompt>,
    loras: Vec<LoraChoice>,
}

impl Default for Request {
    fn default() -> Self {
        Self {
            prompt: None,
            size: None,
            seed: 0,
            steps: None,
            guidance: None,
            t5_len: None,
            priority: 0,
            references: Vec::new(),
            snap: true,
            init: None,
            tool: None,
            redux: Vec::new(),
            negative: None,
            loras: Vec::new(),
        }
    }
}

impl Request {
    /// A request for `prompt` with every other setting at its default.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: Some(prompt.into()),
            ..Self::default()
        }
    }

    /// The prompt (required; may be empty).
    pub fn set_prompt(&mut self, prompt: impl Into<String>) {
        self.prompt = Some(prompt.into());
    }

    /// Output size: positive multiples of 16, at most 4096 a side and 4 MP.
    pub fn set_size(&mut self, width: usize, height: usize) -> Result<()> {
        validate_size(width, height)?;
        self.size = Some((width, height));
        Ok(())
    }

    /// Seed of the initial noise (default 0).
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Denoising steps, 1..=1000 (default: dev 28, schnell 4, Kontext 30).
    pub fn set_steps(&mut self, steps: usize) -> Result<()> {
        if !(1..=MAX_STEPS).contains(&steps) {
            return Err(Error::invalid(format!(
                "steps {steps} is not within 1..={MAX_STEPS}"
            )));
        }
        self.steps = Some(steps);
        Ok(())
    }

    /// Distilled guidance, finite and ≥ 0 (default: dev 3.5, Kontext 2.5; schnell ignores it).
    pub fn set_guidance(&mut self, guidance: f32) -> Result<()> {
        if !(guidance.is_finite() && guidance >= 0.0) {
            return Err(Error::invalid(format!(
                "guidance {guidance} is not a finite number ≥ 0"
            )));
        }
        self.guidance = Some(guidance);
        Ok(())
    }

    /// T5 sequence length in tokens, 2..=4096 (default: dev and Kontext 512, schnell 256).
    pub fn set_t5_length(&mut self, tokens: usize) -> Result<()> {
        if !T5_LENGTHS.contains(&tokens) {
            return Err(Error::invalid(format!(
                "T5 length {tokens} is not within {}..={}",
                T5_LENGTHS.start(),
                T5_LENGTHS.end()
            )));
        }
        self.t5_len = Some(tokens);
        Ok(())
    }

    /// Queue priority: higher runs first, equal ones in submission order (default 0).
    pub fn set_priority(&mut self, priority: i32) {
        self.priority = priority;
    }

    /// The queue priority.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// A negative prompt and the true CFG scale, finite and ≥ 1 (default: none; a scale above 1
    /// runs the transformer twice per step, 1 turns true CFG off).
    pub fn set_negative_prompt(&mut self, prompt: impl Into<String>, scale: f32) -> Result<()> {
        let negative = NegativePrompt {
            prompt: prompt.into(),
            scale,
        };
        negative.validate()?;
        self.negative = Some(negative);
        Ok(())
    }

    /// Fails when the request already has images of another kind than `adding`; Redux images go
    /// with `adding` when `goes_with_redux`.
    fn check_kind(&self, adding: &str, goes_with_redux: bool) -> Result<()> {
        let has = match () {
            _ if !self.references.is_empty() => "reference images (an edit)",
            _ if self.init.is_some() => "an init image (image-to-image)",
            _ if matches!(self.tool, Some(ToolInput::Fill { .. })) => "a Fill image and mask",
            _ if self.tool.is_some() => "a control image",
            _ if !self.redux.is_empty() && !goes_with_redux => "Redux images",
            _ => return Ok(()),
        };
        Err(Error::invalid(format!(
            "the request has {has}; it cannot also have {adding}"
        )))
    }

    /// Adds a Kontext reference image (up to 4; reference `i` gets position ids `(i + 1, row,
    /// col)`): the request becomes an edit.
    pub fn add_reference(&mut self, image: ImageInput) -> Result<()> {
        if self.references.is_empty() {
            self.check_kind("references", false)?;
        }
        if self.references.len() == MAX_REFERENCES {
            return Err(Error::invalid(format!(
                "a request takes at most {MAX_REFERENCES} reference images"
            )));
        }
        self.references.push(image);
        Ok(())
    }

    /// Whether references snap to the closest Kontext training resolution (default true) or keep
    /// their size.
    pub fn set_reference_snap(&mut self, snap: bool) {
        self.snap = snap;
    }

    /// Sets the init image of an image-to-image job and how much of the schedule runs, in
    /// (0, 1] (1: all of it, from pure noise).
    pub fn set_init_image(&mut self, image: ImageInput, strength: f32) -> Result<()> {
        if self.init.is_none() {
            self.check_kind("an init image", false)?;
        }
        img2img_start(1, strength)?;
        self.init = Some((image, strength));
        Ok(())
    }

    /// Sets the image and mask of a FLUX.1 Fill job (inpainting; outpainting is the image on a
    /// larger canvas with the new border masked): the mask has the image's size, 255 = repaint,
    /// 0 = keep, values between blend. The output is the model's whole image; the kept pixels are
    /// not pasted back.
    pub fn set_fill(&mut self, image: ImageInput, mask: Mask) -> Result<()> {
        if !matches!(self.tool, Some(ToolInput::Fill { .. })) {
            self.check_kind("a Fill image and mask", true)?;
        }
        if image.size() != (mask.width, mask.height) {
            let (w, h) = image.size();
            return Err(Error::invalid(format!(
                "the mask is {}x{} and the Fill image {w}x{h}: they must have the same size",
                mask.width, mask.height
            )));
        }
        self.tool = Some(ToolInput::Fill { image, mask });
        Ok(())
    }

    /// Sets the control image of a FLUX.1 Canny or Depth job: the host's ready edge map or depth
    /// map (grey in all three channels); the engine runs no detector.
    pub fn set_control_image(&mut self, image: ImageInput) -> Result<()> {
        if !matches!(self.tool, Some(ToolInput::Control(_))) {
            self.check_kind("a control image", true)?;
        }
        self.tool = Some(ToolInput::Control(image));
        Ok(())
    }

    /// Adds a FLUX.1 Redux image (up to 4): its tokens are appended after the prompt's, so the
    /// output takes after it (BFL's Redux runs with the empty prompt). Text-to-image, Fill and
    /// Canny/Depth jobs take them; the model folder needs the SigLIP folder and
    /// `flux1-redux-dev.safetensors`.
    pub fn add_redux_image(&mut self, image: ImageInput) -> Result<()> {
        if !self.references.is_empty() || self.init.is_some() {
            return Err(Error::invalid(
                "Redux images go with text-to-image, Fill and Canny/Depth jobs, not with \
                 references or an init image",
            ));
        }
        if self.redux.len() == MAX_REFERENCES {
            return Err(Error::invalid(format!(
                "a request takes at most {MAX_REFERENCES} Redux images"
            )));
        }
        self.redux.push(image);
        Ok(())
    }

    /// Removes the references, the init image, the Fill or control input and the Redux images
    /// (the request becomes text-to-image again).
    pub fn clear_images(&mut self) {
        self.references.clear();
        self.init = None;
        self.tool = None;
        self.redux.clear();
    }

    /// Adds a LoRA file at `strength` (any finite number; 1 is the file's own scale, negative
    /// values subtract it). The file must exist; it is read, and checked against the model, when
    /// the job runs (the engine keeps parsed files for later jobs). At most [`MAX_LORAS`].
    pub fn add_lora(&mut self, path: impl Into<PathBuf>, strength: f32) -> Result<()> {
        let path = path.into();
        if !strength.is_finite() {
            return Err(Error::invalid(format!(
                "the strength of LoRA '{}' is {strength}, not a finite number",
                path.display()
            )));
        }
        if !path.is_file() {
            return Err(Error::invalid(format!(
                "the LoRA file '{}' does not exist",
                path.display()
            )));
        }
        if self.loras.len() == MAX_LORAS {
            return Err(Error::invalid(format!(
                "a request takes at most {MAX_LORAS} LoRAs"
            )));
        }
        self.loras.push(LoraChoice { path, strength });
        Ok(())
    }

    /// Removes the LoRAs (the next job runs the model as loaded).
    pub fn clear_loras(&mut self) {
        self.loras.clear();
    }

    /// The job to run on an engine computing on `device`: GPU images must have been imported on
    /// that device.
    pub fn job(&self, device: &Device) -> Result<JobRequest> {
        let prompt = self
            .prompt
            .clone()
            .ok_or_else(|| Error::invalid("the request has no prompt"))?;
        let tool_image = self.tool.as_ref().map(|t| match t {
            ToolInput::Fill { image, .. } | ToolInput::Control(image) => image,
        });
        let inputs = self
            .references
            .iter()
            .chain(self.init.as_ref().map(|i| &i.0))
            .chain(tool_image)
            .chain(&self.redux);
        for input in inputs {
            if let ImageInput::Gpu { image, .. } = input {
                if !image.device().same_device(device) {
                    return Err(Error::invalid(
                        "a GPU image of the request was imported on another engine's device",
                    ));
                }
            }
        }
        let text = |(width, height)| TextToImage {
            prompt: prompt.clone(),
            width,
            height,
            seed: self.seed,
            steps: self.steps,
            guidance: self.guidance,
            t5_len: self.t5_len,
            loras: self.loras.clone(),
            negative: self.negative.clone(),
            tool: self.tool.clone(),
            redux: self.redux.clone(),
        };
        if !self.references.is_empty() {
            return Ok(JobRequest::Edit(KontextEdit {
                prompt,
                references: self.references.clone(),
                size: self.size,
                resolutions: match self.snap {
                    true => KONTEXT_RESOLUTIONS.to_vec(),
                    false => Vec::new(),
                },
                seed: self.seed,
                steps: self.steps,
                guidance: self.guidance,
                t5_len: self.t5_len,
                loras: self.loras.clone(),
                negative: self.negative.clone(),
            }));
        }
        // Image-to-image and the tools default to their image's size, rounded down to 16.
        let size_of = |image: &ImageInput, what: &str| match self.size {
            Some(size) => Ok(size),
            None => {
                let (w, h) = image.size();
                let size = (w / 16 * 16, h / 16 * 16);
                validate_size(size.0, size.1)
                    .map_err(|e| Error::invalid(format!("the {what}'s size: {e}")))?;
                Ok::<_, Error>(size)
            }
        };
        if let Some(image) = tool_image {
            return Ok(JobRequest::TextToImage(text(size_of(
                image,
                "Fill or control image",
            )?)));
        }
        if let Some((init, strength)) = &self.init {
            let size = size_of(init, "init image")?;
            return Ok(JobRequest::ImageToImage(ImageToImage {
                base: text(size),
                init: init.clone(),
                strength: *strength,
            }));
        }
        Ok(JobRequest::TextToImage(text(
            self.size.unwrap_or(DEFAULT_SIZE),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::RgbImage;

    fn image(width: usize, height: usize) -> ImageInput {
        RgbImage {
            width,
            height,
            data: vec![0; width * height * 3],
        }
        .into()
    }

    #[test]
    fn settings_are_checked_as_they_are_set_and_leave_the_request_unchanged() {
        let mut r = Request::new("x");
        assert!(r
            .set_size(1000, 512)
            .unwrap_err()
            .to_string()
            .contains("1008x512"));
        assert!(r.set_steps(0).is_err() && r.set_steps(1001).is_err());
        assert!(r.set_guidance(f32::NAN).is_err() && r.set_guidance(-1.0).is_err());
        assert!(r.set_t5_length(1).is_err() && r.set_t5_length(4097).is_err());
        let JobRequest::TextToImage(t) = r.job(&Device::Cpu).unwrap() else {
            panic!("a request without images is text-to-image")
        };
        assert_eq!(
            (t.width, t.height, t.steps, t.guidance, t.t5_len),
            (1024, 1024, None, None, None)
        );
        r.set_steps(7).unwrap();
        r.set_guidance(0.0).unwrap();
        let JobRequest::TextToImage(t) = r.job(&Device::Cpu).unwrap() else {
            panic!()
        };
        assert_eq!((t.steps, t.guidance), (Some(7), Some(0.0)));
    }

    #[test]
    fn images_choose_the_kind_of_job() {
        let mut r = Request::new("x");
        for _ in 0..MAX_REFERENCES {
            r.add_reference(image(64, 48)).unwrap();
        }
        assert!(r.add_reference(image(64, 48)).is_err(), "a fifth reference");
        assert!(
            r.set_init_image(image(64, 48), 0.5).is_err(),
            "init beside references"
        );
        assert!(
            matches!(r.job(&Device::Cpu).unwrap(), JobRequest::Edit(e) if e.references.len() == 4)
        );
        r.clear_images();
        assert!(r.set_init_image(image(100, 70), 0.0).is_err(), "strength 0");
        r.set_init_image(image(100, 70), 0.5).unwrap();
        assert!(
            r.add_reference(image(64, 48)).is_err(),
            "a reference beside an init image"
        );
        let JobRequest::ImageToImage(i) = r.job(&Device::Cpu).unwrap() else {
            panic!("an init image makes image-to-image")
        };
        assert_eq!((i.base.width, i.base.height, i.strength), (96, 64, 0.5));
        assert!(Request::default()
            .job(&Device::Cpu)
            .unwrap_err()
            .to_string()
            .contains("no prompt"));
    }

    #[test]
    fn loras_are_checked_when_added_and_go_with_every_kind_of_job() {
        let file =
            std::env::temp_dir().join(format!("flux-request-{}.safetensors", std::process::id()));
        std::fs::write(&file, b"not read until the job runs").unwrap();
        let mut r = Request::new("x");
        let e = r.add_lora(&file, f32::NAN).unwrap_err().to_string();
        assert!(e.contains("finite"), "{e}");
        let e = r.add_lora("/nonexistent.safetensors", 1.0).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        r.add_lora(&file, -0.5).unwrap();
        let want = vec![LoraChoice {
            path: file.clone(),
            strength: -0.5,
        }];
        assert_eq!(r.job(&Device::Cpu).unwrap().loras(), want.as_slice());
        r.add_reference(image(64, 48)).unwrap();
        assert_eq!(r.job(&Device::Cpu).unwrap().loras(), want.as_slice());
        r.clear_images();
        r.set_init_image(image(64, 48), 0.5).unwrap();
        assert_eq!(r.job(&Device::Cpu).unwrap().loras(), want.as_slice());
        for _ in 1..MAX_LORAS {
            r.add_lora(&file, 1.0).unwrap();
        }
        assert!(r.add_lora(&file, 1.0).is_err(), "one too many");
        r.clear_loras();
        assert!(r.job(&Device::Cpu).unwrap().loras().is_empty());
        std::fs::remove_file(file).unwrap();
    }
}
