//! The worker thread: owns the device, the loaded model and every tensor; runs one job at a time.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::cache::EmbeddingCache;
use super::events::Event;
use super::job::{Job, JobOutput, JobRequest, JobState};
use super::{preview, MemoryProbe, Residency, Shared, MEMORY_BUDGET_AUTO};
use crate::error::{Error, Result};
use crate::model::autoencoder::AutoEncoder;
use crate::model::transformer::FluxTransformer;
use crate::model::{self, ComponentBytes, LoadOptions, ModelFiles, ModelInfo};
use crate::pipeline::{self, edit, Generated, Parts, PromptEncoder};
use crate::text::{PromptEmbedding, TextEncoders};

/// Messages to the worker.
pub(crate) enum Msg {
    /// A job was queued or the budget changed: look at the queue and the budget.
    Wake,
    /// Finish: cancel what is left and exit.
    Shutdown,
}

/// A loaded model and what it occupies.
struct Loaded {
    transformer: FluxTransformer,
    ae: AutoEncoder,
    text: Option<TextEncoders>,
    files: ModelFiles,
    opts: LoadOptions,
    bytes: ComponentBytes,
    info: ModelInfo,
}

/// Text encoding behind the embedding cache, loading and releasing the encoders as the
/// residency mode says.
struct CachedText<'a> {
    text: &'a mut Option<TextEncoders>,
    files: &'a ModelFiles,
    opts: &'a LoadOptions,
    cache: &'a mut EmbeddingCache,
    release_after_use: bool,
}

impl PromptEncoder for CachedText<'_> {
    fn embed(&mut self, prompt: &str, t5_len: usize) -> Result<PromptEmbedding> {
        if let Some(e) = self.cache.get(prompt, t5_len) {
            return Ok(e);
        }
        if self.text.is_none() {
            log::info!("loading the text encoders");
            *self.text = Some(model::load_text_encoders(self.files, self.opts)?);
        }
        let encoders = self
            .text
            .as_mut()
            .ok_or_else(|| Error::invalid("text encoders unavailable"))?;
        let emb = encoders.encode(prompt, t5_len)?;
        self.cache.put(prompt, t5_len, emb.clone());
        if self.release_after_use {
            log::info!("releasing the text encoders (memory budget)");
            *self.text = None;
        }
        Ok(emb)
    }
}

pub(crate) struct Worker {
    pub shared: Arc<Shared>,
    pub rx: Receiver<Msg>,
    pub device: candle_core::Device,
    pub cache: EmbeddingCache,
    model: Option<Loaded>,
    /// Measures the memory available to a load (for `MEMORY_BUDGET_AUTO`).
    probe: MemoryProbe,
    /// The automatic budget, measured at the last load (unlimited before one).
    auto_budget: u64,
    /// Why the model was unloaded by a lowered budget, for later jobs' errors.
    unloaded: Option<String>,
}

impl Worker {
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Msg>,
        device: candle_core::Device,
        cache: EmbeddingCache,
        probe: MemoryProbe,
    ) -> Self {
        Self {
            shared,
            rx,
            device,
            cache,
            model: None,
            probe,
            auto_budget: u64::MAX,
            unloaded: None,
        }
    }

    pub fn run(mut self) {
        while let Ok(msg) = self.rx.recv() {
            if matches!(msg, Msg::Shutdown) {
                break;
            }
            self.apply_budget();
            while let Some(job) = self.shared.pop() {
                if self.shared.shutting_down.load(Ordering::Acquire) {
                    break;
                }
                // The budget may have changed while the previous job ran.
                self.apply_budget();
                self.run_job(&job);
            }
            if self.shared.shutting_down.load(Ordering::Acquire) {
                break;
            }
        }
        self.shared.cancel_all_queued();
        self.model = None;
        self.publish_residency();
    }

    /// The budget in force: the host's, or the automatic one measured at the last load.
    fn budget(&self) -> u64 {
        match self.shared.budget.load(Ordering::Acquire) {
            MEMORY_BUDGET_AUTO => self.auto_budget,
            explicit => explicit,
        }
    }

    /// The error for a job that needs a model when none is loaded (saying why, when a lowered
    /// budget unloaded it).
    fn no_model(&self) -> Error {
        match &self.unloaded {
            Some(why) => Error::invalid(format!("no model is loaded: {why}")),
            None => Error::invalid("no model is loaded"),
        }
    }

    /// Re-evaluates residency after a budget change.
    fn apply_budget(&mut self) {
        let budget = self.budget();
        if let Some(m) = &mut self.model {
            let needed = m.bytes.transformer + m.bytes.autoencoder;
            if needed > budget {
                let why = format!(
                    "the memory budget was lowered to {budget} bytes, below the {needed} bytes the model's transformer and autoencoder need, and the model was unloaded"
                );
                log::warn!("{why}");
                self.unloaded = Some(why);
                self.model = None;
                self.cache.clear();
            } else if m.bytes.total() > budget && m.text.is_some() {
                log::info!("releasing the text encoders (memory budget lowered)");
                m.text = None;
            }
        }
        self.publish_residency();
    }

    fn publish_residency(&self) {
        let budget = self.budget();
        let r = match &self.model {
            Some(m) => Residency {
                budget,
                transformer: m.bytes.transformer,
                autoencoder: m.bytes.autoencoder,
                text_encoders: if m.text.is_some() {
                    m.bytes.text_encoders
                } else {
                    0
                },
                release_text_encoders: m.bytes.total() > budget,
            },
            None => Residency {
                budget,
                ..Residency::default()
            },
        };
        *self.shared.residency.lock() = r;
    }

    fn run_job(&mut self, job: &Arc<Job>) {
        let request = {
            let mut slot = job.slot.lock();
            if slot.state != JobState::Queued {
                return;
            }
            slot.state = JobState::Running;
            slot.request.take()
        };
        let Some(request) = request else { return };
        let events = self.shared.events.clone();
        events.emit_guarded(Event::Started { job: job.id });
        log::debug!("job {} ({}) started", job.id.0, request.kind());
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.execute(job, &request)));
        let outcome = match outcome {
            Ok(r) => r,
            Err(panic) => {
                let what = crate::error::panic_message(panic.as_ref());
                Err(Error::invalid(format!(
                    "internal error (panic) in the job: {what}"
                )))
            }
        };
        self.publish_residency();
        match outcome {
            Ok((output, cached)) => {
                let timings = match &output {
                    JobOutput::Image(g) => Some(g.timings),
                    _ => None,
                };
                job.conclude(JobState::Succeeded, Some(output), None, || {
                    events.emit_guarded(Event::Finished {
                        job: job.id,
                        timings,
                        embedding_cached: cached,
                    })
                });
            }
            Err(Error::Cancelled) => {
                job.conclude(JobState::Cancelled, None, None, || {
                    events.emit_guarded(Event::Cancelled { job: job.id })
                });
            }
            Err(e) => {
                let msg = e.to_string();
                log::warn!("job {} failed: {msg}", job.id.0);
                job.conclude(JobState::Failed, None, Some(msg.clone()), || {
                    events.emit_guarded(Event::Failed {
                        job: job.id,
                        error: msg,
                    })
                });
            }
        }
    }

    /// Runs one request; returns its output and whether the prompt embedding was cached.
    fn execute(&mut self, job: &Arc<Job>, request: &JobRequest) -> Result<(JobOutput, bool)> {
        match request {
            JobRequest::LoadModel {
                files,
                dtype,
                kontext,
            } => {
                self.model = None;
                self.cache.clear();
                let opts = LoadOptions {
                    device: self.device.clone(),
                    dtype: *dtype,
                    kontext: *kontext,
                    axes_dim: None,
                };
                let info = self.load(job, files, opts)?;
                Ok((JobOutput::Model(info), false))
            }
            JobRequest::UnloadModel => {
                self.unloaded = None;
                self.model = None;
                self.cache.clear();
                Ok((JobOutput::Unloaded, false))
            }
            image_job => {
                let (prompt, t5_len) = self.prompt_of(image_job)?;
                let cached = self.cache.contains(&prompt, t5_len);
                let generated = self.generate(job, image_job)?;
                Ok((JobOutput::Image(Arc::new(generated)), cached))
            }
        }
    }

    /// Loads the model component by component; a cancel stops it after the current one.
    fn load(&mut self, job: &Job, files: &ModelFiles, opts: LoadOptions) -> Result<ModelInfo> {
        let bytes = model::component_bytes(files, &opts)?;
        let auto = self.shared.budget.load(Ordering::Acquire) == MEMORY_BUDGET_AUTO;
        if auto && self.device.is_cpu() {
            let held = self.model.as_ref().map_or(0, |m| m.bytes.total());
            self.auto_budget = (self.probe)().saturating_add(held);
        }
        let budget = self.budget();
        let needed = bytes.transformer + bytes.autoencoder;
        if needed > budget {
            let what = match auto {
                true => "the memory available",
                false => "the memory budget",
            };
            return Err(Error::invalid(format!(
                "the model needs {needed} bytes for the transformer and autoencoder, more than {what} ({budget} bytes)"
            )));
        }
        let transformer = model::load_transformer(files, &opts)?;
        job.check_cancel()?;
        let ae = model::load_autoencoder(files, &opts)?;
        job.check_cancel()?;
        let text = if bytes.total() <= budget {
            Some(model::load_text_encoders(files, &opts)?)
        } else {
            None
        };
        job.check_cancel()?;
        let info = ModelInfo {
            variant: transformer.variant(),
            kontext: transformer.is_kontext(),
            files: files.clone(),
            dtype: opts.compute_dtype(),
        };
        self.unloaded = None;
        self.model = Some(Loaded {
            transformer,
            ae,
            text,
            files: files.clone(),
            opts,
            bytes,
            info: info.clone(),
        });
        Ok(info)
    }

    fn prompt_of(&self, request: &JobRequest) -> Result<(String, usize)> {
        let variant = self
            .model
            .as_ref()
            .ok_or_else(|| self.no_model())?
            .info
            .variant;
        Ok(match request {
            JobRequest::TextToImage(r) => (r.prompt.clone(), r.resolve(variant)?.t5_len),
            JobRequest::ImageToImage(r) => (r.base.prompt.clone(), r.base.resolve(variant)?.t5_len),
            JobRequest::Edit(r) => (
                r.prompt.clone(),
                r.t5_len.unwrap_or(variant.defaults().t5_len),
            ),
            _ => (String::new(), 0),
        })
    }

    fn generate(&mut self, job: &Arc<Job>, request: &JobRequest) -> Result<Generated> {
        let budget = self.budget();
        if self.model.is_none() {
            return Err(self.no_model());
        }
        let m = self.model.as_mut().expect("checked above");
        let release = m.bytes.total() > budget;
        let mut text = CachedText {
            text: &mut m.text,
            files: &m.files,
            opts: &m.opts,
            cache: &mut self.cache,
            release_after_use: release,
        };
        let parts = Parts {
            transformer: &m.transformer,
            ae: &m.ae,
            text: &mut text,
        };
        let shared = &self.shared;
        let preview_every = shared.preview_every;
        let start = Instant::now();
        let mut hook = |s: &pipeline::sampler::StepInfo| {
            {
                let mut slot = job.slot.lock();
                slot.step = s.step;
                slot.total = s.total;
            }
            let elapsed = start.elapsed();
            let eta = elapsed.mul_f64((s.total - s.step) as f64 / s.step.max(1) as f64);
            shared.events.emit(Event::Progress {
                job: job.id,
                step: s.step,
                total: s.total,
                elapsed,
                eta,
            });
            if preview_every > 0 && s.step.is_multiple_of(preview_every) && s.step < s.total {
                match preview::preview(s.latent, s.grid.0, s.grid.1) {
                    Ok(image) => shared.events.emit(Event::Preview {
                        job: job.id,
                        step: s.step,
                        image,
                    }),
                    Err(e) => log::warn!("preview failed: {e}"),
                }
            }
            // Checked after every step: the next step, or the decode after the last, never runs.
            if job.cancel.load(Ordering::Acquire) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        job.check_cancel()?;
        match request {
            JobRequest::TextToImage(r) => pipeline::generate(parts, r, &mut hook),
            JobRequest::Edit(r) => edit::edit(parts, r, &mut hook),
            JobRequest::ImageToImage(r) => edit::img2img(parts, r, &mut hook),
            _ => Err(Error::invalid("not an image job")),
        }
    }
}
