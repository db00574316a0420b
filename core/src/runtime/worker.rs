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
use super::plan::{self, Limits, Plan, TextPlacement, Work};
use super::{preview, MemoryProbe, Residency, Shared, MEMORY_BUDGET_AUTO};
use crate::error::{Error, Result};
use crate::lora::{Adapters, LoraCache, LoraChoice};
use crate::model::autoencoder::AutoEncoder;
use crate::model::redux::ReduxEncoder;
use crate::model::transformer::FluxTransformer;
use crate::model::{self, ComponentBytes, LoadOptions, ModelFiles, ModelInfo};
use crate::pipeline::{self, edit, Generated, Parts, PromptEncoder};
use crate::text::{PromptEmbedding, TextEncoders};

/// Parsed LoRA files an engine keeps for later jobs (the most recently used).
const LORA_FILES_KEPT: usize = 8;

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
    /// Loaded at the first job with Redux images.
    redux: Option<ReduxEncoder>,
    files: ModelFiles,
    opts: LoadOptions,
    bytes: ComponentBytes,
    info: ModelInfo,
    plan: Plan,
}

/// Text encoding behind the embedding cache, loading and releasing the encoders as the plan
/// says.
struct CachedText<'a> {
    text: &'a mut Option<TextEncoders>,
    files: &'a ModelFiles,
    opts: &'a LoadOptions,
    cache: &'a mut EmbeddingCache,
    placement: TextPlacement,
}

/// Options that load the text encoders where `placement` puts them.
fn text_options(opts: &LoadOptions, placement: TextPlacement) -> LoadOptions {
    match placement {
        TextPlacement::Host => LoadOptions {
            device: candle_core::Device::Cpu,
            dtype: None,
            ..opts.clone()
        },
        _ => opts.clone(),
    }
}

impl PromptEncoder for CachedText<'_> {
    fn embed(&mut self, prompt: &str, t5_len: usize) -> Result<PromptEmbedding> {
        if let Some(e) = self.cache.get(prompt, t5_len) {
            return Ok(e);
        }
        if self.text.is_none() {
            log::info!("loading the text encoders");
            let opts = text_options(self.opts, self.placement);
            *self.text = Some(model::load_text_encoders(self.files, &opts)?);
        }
        let encoders = self
            .text
            .as_mut()
            .ok_or_else(|| Error::invalid("text encoders unavailable"))?;
        let mut emb = encoders.encode(prompt, t5_len)?;
        if self.placement == TextPlacement::Host {
            let (device, dtype) = (&self.opts.device, self.opts.compute_dtype());
            let moved = |t: &candle_core::Tensor| t.to_device(device)?.to_dtype(dtype);
            emb = PromptEmbedding {
                txt: moved(&emb.txt)?,
                vec: moved(&emb.vec)?,
            };
        }
        self.cache.put(prompt, t5_len, emb.clone());
        Ok(emb)
    }

    fn finished(&mut self) {
        if self.placement == TextPlacement::Released && self.text.is_some() {
            log::info!("releasing the text encoders (memory budget)");
            *self.text = None;
        }
    }
}

/// What a plan is chosen against: the budget, the reserve, host memory, the forced plan.
struct Planner<'a> {
    shared: &'a Shared,
    device_is_cpu: bool,
    /// The automatic budget measured at the last load.
    auto_budget: u64,
}

impl Planner<'_> {
    /// The budget in force: the host's, or the automatic one measured at the last load.
    fn budget(&self) -> u64 {
        match self.shared.budget.load(Ordering::Acquire) {
            MEMORY_BUDGET_AUTO => self.auto_budget,
            explicit => explicit,
        }
    }

    /// The memory a plan must fit in, `held_host` bytes of host memory being the engine's own.
    fn limits(&self, held_host: u64) -> Limits {
        let host = match self.device_is_cpu {
            true => 0,
            false => crate::memory::available().saturating_add(held_host),
        };
        Limits {
            budget: self.budget(),
            host,
            on_cpu: self.device_is_cpu,
        }
    }

    /// The plan for `bytes` with `work`'s activations, the model holding `held` now (whose
    /// host memory it may reuse).
    fn choose(
        &self,
        bytes: &ComponentBytes,
        work: &Work,
        held: Option<Plan>,
    ) -> std::result::Result<Plan, String> {
        let held_host = held.map_or(0, |p| p.need(bytes, &Work::NONE, self.device_is_cpu).host);
        let forced = *self.shared.forced_plan.lock();
        plan::choose(bytes, work, self.limits(held_host), forced)
    }
}

/// What a model of `b` holds under `plan`, its text encoders loaded or not.
fn residency_of(
    b: &ComponentBytes,
    text_loaded: bool,
    plan: Plan,
    budget: u64,
    on_cpu: bool,
) -> Residency {
    let (transformer, blocks_host) = plan.transformer_bytes(b);
    let (text_device, text_host) = match (text_loaded, plan.text) {
        (false, _) => (0, 0),
        (true, TextPlacement::Host) => (0, b.text_encoders_host),
        (true, _) => (b.text_encoders, 0),
    };
    // On the CPU there is one memory: host-held parts count with their component.
    let (transformer, text_encoders, host) = match on_cpu {
        true => (transformer + blocks_host, text_device + text_host, 0),
        false => (transformer, text_device, blocks_host + text_host),
    };
    Residency {
        budget,
        plan,
        transformer,
        autoencoder: b.autoencoder,
        text_encoders,
        host,
        release_text_encoders: plan.text == TextPlacement::Released,
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
    /// The activations of the last image job, which a budget change plans for.
    last_work: Work,
    /// LoRA files parsed for earlier jobs.
    lora_files: LoraCache,
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
            lora_files: LoraCache::new(LORA_FILES_KEPT),
            probe,
            auto_budget: u64::MAX,
            unloaded: None,
            last_work: Work::NONE,
        }
    }

    pub fn run(mut self) {
        // A panic outside a job (while planning, or in the host's callback) must not end the
        // worker, or every later job would wait forever: the model is dropped and work goes on.
        while let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| self.serve())) {
            let what = crate::error::panic_message(panic.as_ref());
            self.unload(format!(
                "internal error (panic) outside a job: {what}; the model was unloaded"
            ));
        }
        self.shared.cancel_all_queued();
        self.model = None;
        self.publish_residency();
    }

    /// Runs queued jobs as messages arrive, until shutdown.
    fn serve(&mut self) {
        while let Ok(msg) = self.rx.recv() {
            if matches!(msg, Msg::Shutdown) {
                break;
            }
            self.replan();
            // Checked before taking a job: one taken and then left would never end.
            while !self.shared.shutting_down.load(Ordering::Acquire) {
                let Some(job) = self.shared.pop() else { break };
                // The budget may have changed while the previous job ran.
                self.replan();
                self.run_job(&job);
            }
            if self.shared.shutting_down.load(Ordering::Acquire) {
                break;
            }
        }
    }

    fn planner(&self) -> Planner<'_> {
        Planner {
            shared: &self.shared,
            device_is_cpu: self.device.is_cpu(),
            auto_budget: self.auto_budget,
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

    /// Chooses the plan again for the budget in force and the last job's activations, and moves
    /// the model to it; a budget no plan fits unloads the model and says why.
    fn replan(&mut self) {
        self.shared.plan_changed.store(false, Ordering::Release);
        let Some(m) = &self.model else {
            self.publish_residency();
            return;
        };
        let planner = self.planner();
        let budget = planner.budget();
        let chosen = planner.choose(&m.bytes, &self.last_work, Some(m.plan));
        match chosen {
            Ok(plan) => {
                // A failure unloads the model and says why.
                let _ = self.apply_plan(plan, true);
            }
            Err(need) => self.unload(format!(
                "the memory budget is {budget} bytes and {need}; the model was unloaded"
            )),
        }
    }

    /// Unloads the model for `why`, which a residency event and later jobs' errors repeat.
    fn unload(&mut self, why: String) {
        log::warn!("{why}");
        self.unloaded = Some(why.clone());
        self.model = None;
        self.cache.clear();
        self.publish_residency();
        self.emit_residency(why);
    }

    /// Moves the loaded model to `plan`, reporting a change (with an event when `announce`).
    fn apply_plan(&mut self, plan: Plan, announce: bool) -> Result<()> {
        let Some(m) = &mut self.model else {
            return Ok(());
        };
        if m.plan == plan {
            return Ok(());
        }
        if m.text.is_some() && m.plan.text != plan.text {
            log::info!("releasing the text encoders (residency plan)");
            m.text = None;
        }
        if let Err(e) = m.transformer.set_residency(plan.blocks) {
            let why = format!(
                "moving the model to a new residency plan ({}) failed: {e}; the model was unloaded",
                plan.describe()
            );
            self.unload(why.clone());
            return Err(Error::invalid(why));
        }
        m.ae.set_tiled(plan.tiled_vae);
        m.plan = plan;
        self.publish_residency();
        if announce {
            let why = format!("residency: {}", plan.describe());
            log::info!("{why}");
            self.emit_residency(why);
        }
        Ok(())
    }

    fn emit_residency(&self, reason: String) {
        let residency = *self.shared.residency.lock();
        self.shared
            .events
            .emit_guarded(Event::Residency { residency, reason });
    }

    fn publish_residency(&self) {
        let budget = self.planner().budget();
        let r = match &self.model {
            Some(m) => residency_of(
                &m.bytes,
                m.text.is_some(),
                m.plan,
                budget,
                self.device.is_cpu(),
            ),
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
                    ..LoadOptions::default()
                };
                let info = self.load(job, files, opts)?;
                Ok((JobOutput::Model(Box::new(info)), false))
            }
            JobRequest::UnloadModel => {
                self.unloaded = None;
                self.model = None;
                self.cache.clear();
                Ok((JobOutput::Unloaded, false))
            }
            image_job => {
                self.apply_loras(image_job.loras())?;
                let (prompt, t5_len) = self.prompt_of(image_job)?;
                let cached = self.cache.contains(&prompt, t5_len);
                let generated = self.generate(job, image_job)?;
                Ok((JobOutput::Image(Arc::new(generated)), cached))
            }
        }
    }

    /// Loads the model component by component with the plan its bytes and the budget allow;
    /// a cancel stops it after the current component.
    fn load(&mut self, job: &Job, files: &ModelFiles, mut opts: LoadOptions) -> Result<ModelInfo> {
        let bytes = model::component_bytes(files, &opts)?;
        let auto = self.shared.budget.load(Ordering::Acquire) == MEMORY_BUDGET_AUTO;
        if auto {
            let held = self.model.as_ref().map_or(0, |m| m.bytes.total());
            let reserve = self.shared.reserve.load(Ordering::Acquire);
            self.auto_budget = (self.probe)().saturating_add(held).saturating_sub(reserve);
        }
        let plan = self
            .planner()
            .choose(&bytes, &Work::NONE, None)
            .map_err(|need| {
                let what = match auto {
                    true => "the memory available less the reserve",
                    false => "the memory budget",
                };
                Error::invalid(format!("cannot load the model: {need} ({what})"))
            })?;
        log::info!("residency: {}", plan.describe());
        let need = plan.need(&bytes, &Work::NONE, self.device.is_cpu());
        let host = match self.device.is_cpu() {
            true => need.device,
            false => need.host,
        };
        crate::memory::ensure_free(host, || {
            format!("the model in host memory ({})", plan.describe())
        })?;
        opts.blocks = plan.blocks;
        let transformer = model::load_transformer(files, &opts)?;
        job.check_cancel()?;
        let ae = model::load_autoencoder(files, &opts)?;
        ae.set_tiled(plan.tiled_vae);
        job.check_cancel()?;
        let text = match plan.text {
            TextPlacement::Released => None,
            placement => Some(model::load_text_encoders(
                files,
                &text_options(&opts, placement),
            )?),
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
            redux: None,
            files: files.clone(),
            opts,
            bytes,
            info: info.clone(),
            plan,
        });
        self.publish_residency();
        self.emit_residency(format!("model loaded; residency: {}", plan.describe()));
        Ok(info)
    }

    /// Puts the LoRAs `wanted` on the model (nothing to do when they are in force already).
    /// They are merged into the weights when the model is resident with whole weights and the
    /// budget holds a copy of the layers they change (the originals are kept, to be put back
    /// exactly); otherwise they run as low-rank branches. A file or strength that does not fit
    /// fails the job and leaves the LoRAs in force as they were.
    fn apply_loras(&mut self, wanted: &[LoraChoice]) -> Result<()> {
        let (budget, on_cpu) = (self.planner().budget(), self.device.is_cpu());
        let no_model = self.no_model();
        let m = self.model.as_mut().ok_or(no_model)?;
        if m.transformer.loras() == wanted {
            return Ok(());
        }
        if wanted.is_empty() {
            m.transformer.set_adapters(None, false)?;
            log::info!("LoRAs removed");
            return Ok(());
        }
        let mut files = Vec::with_capacity(wanted.len());
        for choice in wanted {
            let (file, read) = self.lora_files.get(&choice.path)?;
            let unknown = file.unknown_keys();
            if read && !unknown.is_empty() {
                log::warn!(
                    "LoRA '{}': {} keys are not for FLUX's transformer or not understood, and                      are ignored (e.g. {})",
                    choice.path.display(),
                    unknown.len(),
                    crate::lora::examples(unknown)
                );
            }
            files.push((file, choice.strength));
        }
        let t = &mut m.transformer;
        let adapters = Adapters::new(&files, |name| t.tensor_shape(name))?;
        let copies = t.merge_cost(&adapters);
        let held = m.plan.need(&m.bytes, &self.last_work, on_cpu).device;
        let fits = held.saturating_add(copies) <= budget
            && (!on_cpu || crate::memory::ensure_free(copies, String::new).is_ok());
        let layers = adapters.layer_count();
        let merged = t.set_adapters(Some(Arc::new(adapters)), fits)?;
        let names: Vec<String> = wanted.iter().map(LoraChoice::describe).collect();
        log::info!(
            "LoRA {} on {layers} layers: {}",
            names.join(", "),
            match merged {
                true => "merged into the weights",
                false => "run as low-rank branches beside the weights",
            }
        );
        Ok(())
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
        let (_, t5_len) = self.prompt_of(request)?;
        let m = self.model.as_ref().ok_or_else(|| self.no_model())?;
        let work = plan::job_work(&m.transformer, &m.ae, request, t5_len);
        self.last_work = work;
        let on_cpu = self.device.is_cpu();
        let planner = self.planner();
        let budget = planner.budget();
        let plan = planner
            .choose(&m.bytes, &work, Some(m.plan))
            .map_err(|need| {
                Error::invalid(format!(
                    "this job needs about {} bytes of activations beside the model's weights (whole, {} with the autoencoder tiled), and {need} (the memory budget is {budget} bytes)", work.peak(false), work.peak(true)
                ))
            })?;
        self.apply_plan(plan, true)?;
        if on_cpu {
            crate::memory::ensure_free(work.peak(plan.tiled_vae), || {
                "this job's activations".into()
            })?;
        }
        let auto_budget = self.auto_budget;
        let m = self.model.as_mut().expect("checked above");
        let redux_job = matches!(request, JobRequest::TextToImage(r) if !r.redux.is_empty());
        if let (true, None, Some(files)) = (redux_job, &m.redux, &m.files.redux) {
            log::info!("loading the Redux encoder (SigLIP and its projection)");
            m.redux = Some(ReduxEncoder::load(
                files,
                m.opts.compute_dtype(),
                &m.opts.device,
            )?);
        }
        // A plan the budget forces between steps, applied to the model once the job ends, or
        // why none fits.
        let mut replanned: Option<Plan> = None;
        let mut refused: Option<String> = None;
        let mut text = CachedText {
            text: &mut m.text,
            files: &m.files,
            opts: &m.opts,
            cache: &mut self.cache,
            placement: m.plan.text,
        };
        let parts_transformer = &m.transformer;
        let parts_ae = &m.ae;
        let parts = Parts {
            transformer: parts_transformer,
            ae: parts_ae,
            text: &mut text,
            redux: m.redux.as_ref(),
        };
        let (bytes, info_plan) = (&m.bytes, m.plan);
        let mut seen_budget = budget;
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
            // A budget (or forced plan) changed during the job takes effect before the next step.
            let planner = Planner {
                shared,
                device_is_cpu: on_cpu,
                auto_budget,
            };
            let plan_changed = shared.plan_changed.swap(false, Ordering::AcqRel);
            if planner.budget() != seen_budget || plan_changed {
                seen_budget = planner.budget();
                let current = replanned.unwrap_or(info_plan);
                // Moving to the residency the blocks have already costs nothing.
                let moved = planner.choose(bytes, &work, Some(current)).and_then(|p| {
                    let set = parts_transformer.set_residency(p.blocks);
                    set.map(|_| p).map_err(|e| e.to_string())
                });
                match moved {
                    Ok(p) => {
                        if p != current {
                            // The encoders are loaded while denoising unless released.
                            let text = info_plan.text != TextPlacement::Released;
                            let r = residency_of(bytes, text, p, seen_budget, on_cpu);
                            *shared.residency.lock() = r;
                            let reason = format!("residency (during the job): {}", p.describe());
                            log::info!("{reason}");
                            shared.events.emit(Event::Residency {
                                residency: r,
                                reason,
                            });
                        }
                        parts_ae.set_tiled(p.tiled_vae);
                        replanned = Some(p);
                    }
                    Err(need) => {
                        refused = Some(format!(
                            "the memory budget was changed to {seen_budget} bytes during the job, and {need}"
                        ));
                        return ControlFlow::Break(());
                    }
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
        let result = match request {
            JobRequest::TextToImage(r) => pipeline::generate(parts, r, &mut hook),
            JobRequest::Edit(r) => edit::edit(parts, r, &mut hook),
            JobRequest::ImageToImage(r) => edit::img2img(parts, r, &mut hook),
            _ => Err(Error::invalid("not an image job")),
        };
        match refused {
            Some(why) => {
                // The blocks may be part-way to another plan: settle them (or unload).
                self.replan();
                Err(Error::invalid(why))
            }
            None => {
                if let Some(plan) = replanned {
                    // The blocks are there already and the change was reported: this records it.
                    self.apply_plan(plan, false)?;
                }
                result
            }
        }
    }
}
