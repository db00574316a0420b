//! The C++ face of the engine: a cxx bridge over `flux_core::runtime`, wrapped for C++ users by
//! `include/flux/engine.hpp` (RAII engine and jobs, exceptions, std::string / std::vector).
//! Errors become `rust::Error` exceptions carrying the engine's message.

use std::time::Duration;

use flux_core::image::RgbImage;
use flux_core::model::ModelFiles;
use flux_core::pipeline::edit::KontextEdit;
use flux_core::pipeline::TextToImage;
use flux_core::runtime::{self, EngineOptions, JobId, JobOutput, JobRequest, JobState};

#[cxx::bridge(namespace = "flux::ffi")]
mod bridge {
    /// A text-to-image request; 0 / negative fields take the variant's defaults.
    struct TextToImageRequest {
        prompt: String,
        width: u32,
        height: u32,
        seed: u64,
        steps: u32,
        guidance: f32,
        t5_len: u32,
        priority: i32,
    }

    /// An RGB8 image, rows top to bottom, tightly packed.
    struct Image {
        width: u32,
        height: u32,
        rgb: Vec<u8>,
    }

    /// An engine event (`kind` as in the C API's FluxEventType).
    struct Event {
        kind: i32,
        job: u64,
        step: u32,
        total: u32,
        message: String,
    }

    extern "Rust" {
        type Engine;
        fn new_engine(preview_every: u32, memory_budget: u64) -> Result<Box<Engine>>;
        fn load_model(self: &Engine, folder: &str) -> Result<u64>;
        fn submit_text_to_image(self: &Engine, request: &TextToImageRequest) -> Result<u64>;
        fn submit_edit(
            self: &Engine,
            prompt: &str,
            image: &Image,
            steps: u32,
            seed: u64,
            priority: i32,
        ) -> Result<u64>;
        /// Terminal state (as FluxJobState) or an exception on timeout.
        fn wait(self: &Engine, job: u64, timeout_ms: u32) -> Result<i32>;
        fn cancel(self: &Engine, job: u64) -> Result<i32>;
        fn state(self: &Engine, job: u64) -> Result<i32>;
        fn error(self: &Engine, job: u64) -> Result<String>;
        fn image(self: &Engine, job: u64) -> Result<Image>;
        fn release(self: &Engine, job: u64) -> Result<()>;
        fn poll_event(self: &Engine, out: &mut Event) -> bool;
    }
}

use bridge::{Event, Image, TextToImageRequest};

/// An engine owned by C++ through `rust::Box` (destroying it cancels jobs and joins the worker).
pub struct Engine(runtime::Engine);

fn new_engine(preview_every: u32, memory_budget: u64) -> flux_core::Result<Box<Engine>> {
    let opts = EngineOptions {
        preview_every: preview_every as usize,
        memory_budget,
        ..EngineOptions::default()
    };
    Ok(Box::new(Engine(runtime::Engine::new(opts)?)))
}

fn state_code(s: JobState) -> i32 {
    match s {
        JobState::Queued => 0,
        JobState::Running => 1,
        JobState::Succeeded => 2,
        JobState::Failed => 3,
        JobState::Cancelled => 4,
    }
}

fn opt(v: u32) -> Option<usize> {
    (v > 0).then_some(v as usize)
}

impl Engine {
    fn load_model(&self, folder: &str) -> flux_core::Result<u64> {
        let files = ModelFiles::from_folder(folder.as_ref())?;
        Ok(self
            .0
            .submit(
                JobRequest::LoadModel {
                    files,
                    dtype: None,
                    kontext: None,
                },
                runtime::job::PRIORITY_NORMAL,
            )?
            .0)
    }

    fn submit_text_to_image(&self, r: &TextToImageRequest) -> flux_core::Result<u64> {
        let (w, h) = (r.width as usize, r.height as usize);
        flux_core::pipeline::validate_size(w, h)?;
        let req = TextToImage {
            prompt: r.prompt.clone(),
            width: w,
            height: h,
            seed: r.seed,
            steps: opt(r.steps),
            guidance: (r.guidance >= 0.0).then_some(r.guidance),
            t5_len: opt(r.t5_len),
        };
        Ok(self.0.submit(JobRequest::TextToImage(req), r.priority)?.0)
    }

    fn submit_edit(
        &self,
        prompt: &str,
        image: &Image,
        steps: u32,
        seed: u64,
        priority: i32,
    ) -> flux_core::Result<u64> {
        let rgb = RgbImage {
            width: image.width as usize,
            height: image.height as usize,
            data: image.rgb.clone(),
        };
        let rgb = rgb.view().to_rgb()?;
        let mut edit = KontextEdit::new(prompt, rgb, seed);
        edit.steps = opt(steps);
        Ok(self.0.submit(JobRequest::Edit(edit), priority)?.0)
    }

    fn wait(&self, job: u64, timeout_ms: u32) -> flux_core::Result<i32> {
        let s = self
            .0
            .wait(JobId(job), Duration::from_millis(timeout_ms as u64))?;
        if !s.is_terminal() {
            return Err(flux_core::Error::InvalidArgument(format!(
                "job {job} did not finish within {timeout_ms} ms"
            )));
        }
        Ok(state_code(s))
    }

    fn cancel(&self, job: u64) -> flux_core::Result<i32> {
        Ok(self.0.cancel(JobId(job))? as i32)
    }

    fn state(&self, job: u64) -> flux_core::Result<i32> {
        Ok(state_code(self.0.status(JobId(job))?.state))
    }

    fn error(&self, job: u64) -> flux_core::Result<String> {
        Ok(self.0.status(JobId(job))?.error.unwrap_or_default())
    }

    fn image(&self, job: u64) -> flux_core::Result<Image> {
        match self.0.result(JobId(job))? {
            JobOutput::Image(g) => Ok(Image {
                width: g.image.width as u32,
                height: g.image.height as u32,
                rgb: g.image.data.clone(),
            }),
            _ => Err(flux_core::Error::InvalidArgument(format!(
                "job {job} has no image"
            ))),
        }
    }

    fn release(&self, job: u64) -> flux_core::Result<()> {
        self.0.release(JobId(job))
    }

    fn poll_event(&self, out: &mut Event) -> bool {
        use runtime::Event as E;
        let Some(e) = self.0.poll_event() else {
            return false;
        };
        *out = Event {
            kind: 0,
            job: 0,
            step: 0,
            total: 0,
            message: String::new(),
        };
        match e {
            E::Queued { job } => (out.kind, out.job) = (0, job.0),
            E::Started { job } => (out.kind, out.job) = (1, job.0),
            E::Progress {
                job, step, total, ..
            } => (out.kind, out.job, out.step, out.total) = (2, job.0, step as u32, total as u32),
            E::Preview { job, step, .. } => (out.kind, out.job, out.step) = (3, job.0, step as u32),
            E::Finished { job, .. } => (out.kind, out.job) = (4, job.0),
            E::Failed { job, error } => (out.kind, out.job, out.message) = (5, job.0, error),
            E::Cancelled { job } => (out.kind, out.job) = (6, job.0),
            E::Log { message, .. } => (out.kind, out.message) = (7, message),
            E::Residency { reason, .. } => (out.kind, out.message) = (8, reason),
        }
        true
    }
}
