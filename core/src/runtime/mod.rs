//! The engine runtime: one worker thread per engine owns the device, the loaded model and every
//! tensor; the host talks to it through a priority job queue and polls per-engine events.
//!
//! Every host call is non-blocking and O(1) apart from [`Engine::wait`], which takes a timeout.
//! Cancellation is cooperative: a queued job never starts; a running job stops before its next
//! denoising step or before decoding. Dropping the engine cancels everything and joins the worker.
//!
//! Memory budget: the host states how many bytes of device memory the engine may keep, or leaves
//! it at [`MEMORY_BUDGET_AUTO`]: the memory available when a model loads (on the CPU what the
//! process can still get, [`crate::memory::available`]; free device memory on CUDA), less a
//! reserve the host sets, plus what the engine already holds. A residency plan ([`plan`]) then
//! decides where each part lives: everything resident, text encoders on the CPU or released
//! after encoding, transformer blocks streamed from host memory. A model that fits no plan is
//! refused before anything large is allocated, with an error stating the bytes needed and
//! available. The plan is chosen again when the budget changes (before the next denoising step
//! of a running job) and before each job, with an estimate of that job's activations; a budget no plan fits unloads the model, with a
//! [`Event::Residency`] naming the budget and the bytes needed, which later jobs' errors repeat.

mod cache;
pub mod events;
pub mod job;
mod logging;
pub mod plan;
mod preview;
mod worker;

use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use events::Events;
pub use events::{Event, EventCallback};
use job::Job;
pub use job::{CancelOutcome, JobId, JobOutput, JobRequest, JobState, JobStatus};
pub use plan::{Plan, TextPlacement};
use worker::{Msg, Worker};

/// The budget that follows the machine: the memory available when a model loads (CPU:
/// [`crate::memory::available`], which heeds cgroup and `ulimit` limits; CUDA: the device's free
/// memory), less the reserve, plus what the engine already holds.
pub const MEMORY_BUDGET_AUTO: u64 = u64::MAX;

/// The default memory reserve: what [`MEMORY_BUDGET_AUTO`] leaves to the host and the device's
/// own needs (CUDA context, library workspaces, allocator slack).
pub const MEMORY_RESERVE_DEFAULT: u64 = 512 << 20;

/// Measures the memory available to a model load on the compute device, in bytes.
pub type MemoryProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How an engine is set up.
pub struct EngineOptions {
    pub device: candle_core::Device,
    /// Bytes of device memory the engine may keep resident (default: [`MEMORY_BUDGET_AUTO`]).
    pub memory_budget: u64,
    /// Bytes [`MEMORY_BUDGET_AUTO`] leaves free (default: [`MEMORY_RESERVE_DEFAULT`]).
    pub memory_reserve: u64,
    /// What [`MEMORY_BUDGET_AUTO`] measures (default: [`crate::memory::available`] on the CPU,
    /// free device memory on CUDA; tests inject smaller machines).
    pub available_memory: Option<MemoryProbe>,
    /// A residency plan the host forces (default `None`: chosen for the budget).
    pub plan: Option<Plan>,
    /// Emit a preview every N steps (0: never).
    pub preview_every: usize,
    /// Prompt embeddings kept for reuse.
    pub embedding_cache: usize,
    /// Most verbose level of the `Log` events.
    pub log_level: log::LevelFilter,
    /// Called for every event instead of queueing it for [`Engine::poll_event`] (see
    /// [`EventCallback`] for the thread it runs on).
    pub callback: Option<EventCallback>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            device: candle_core::Device::Cpu,
            memory_budget: MEMORY_BUDGET_AUTO,
            memory_reserve: MEMORY_RESERVE_DEFAULT,
            available_memory: None,
            plan: None,
            preview_every: 0,
            embedding_cache: 16,
            log_level: log::LevelFilter::Info,
            callback: None,
        }
    }
}

/// What the engine holds, per component, and the plan that placed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    pub budget: u64,
    /// The plan in force (meaningful while a model is loaded).
    pub plan: Plan,
    /// Bytes of the transformer on the compute device (streamed: the blocks kept resident, the
    /// window's and what lies outside the blocks).
    pub transformer: u64,
    pub autoencoder: u64,
    /// Bytes of text encoders on the compute device (0 while released or on the CPU).
    pub text_encoders: u64,
    /// Bytes held in host memory besides the compute device: streamed blocks in their stored
    /// form and text encoders on the CPU (0 on the CPU device, where everything is counted above).
    pub host: u64,
    /// True when the text encoders are released after encoding.
    pub release_text_encoders: bool,
}

impl Default for Residency {
    fn default() -> Self {
        Self {
            budget: MEMORY_BUDGET_AUTO,
            plan: Plan::RESIDENT,
            transformer: 0,
            autoencoder: 0,
            text_encoders: 0,
            host: 0,
            release_text_encoders: false,
        }
    }
}

impl Residency {
    /// Bytes held now on the compute device and in host memory.
    pub fn total(&self) -> u64 {
        self.transformer + self.autoencoder + self.text_encoders + self.host
    }
}

/// A queued job's place: higher priority first, then first come first served.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    priority: i32,
    order: std::cmp::Reverse<u64>,
    id: JobId,
}

/// State shared by the host-facing handle and the worker.
pub(crate) struct Shared {
    jobs: Mutex<HashMap<JobId, Arc<Job>>>,
    queue: Mutex<BinaryHeap<Pending>>,
    next_id: AtomicU64,
    events: Arc<Events>,
    budget: AtomicU64,
    reserve: AtomicU64,
    /// A plan the host forces.
    forced_plan: Mutex<Option<Plan>>,
    residency: Mutex<Residency>,
    shutting_down: AtomicBool,
    /// Set when the host forced a plan, until the worker looks.
    plan_changed: AtomicBool,
    preview_every: usize,
}

impl Shared {
    fn job(&self, id: JobId) -> Result<Arc<Job>> {
        self.jobs
            .lock()
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownJob(id.0))
    }

    /// The next queued job, highest priority first.
    fn pop(&self) -> Option<Arc<Job>> {
        loop {
            let next = self.queue.lock().pop()?;
            if let Some(job) = self.jobs.lock().get(&next.id).cloned() {
                return Some(job);
            }
        }
    }

    /// Cancels every job that has not started (at shutdown).
    fn cancel_all_queued(&self) {
        let pending: Vec<JobId> = self.queue.lock().drain().map(|p| p.id).collect();
        for id in pending {
            if let Ok(job) = self.job(id) {
                job.conclude(JobState::Cancelled, None, None, || {
                    self.events.emit_guarded(Event::Cancelled { job: id })
                });
            }
        }
    }
}

/// An engine: a worker thread with its own device, model, job queue and events.
pub struct Engine {
    shared: Arc<Shared>,
    device: candle_core::Device,
    tx: Sender<Msg>,
    worker: Mutex<Option<JoinHandle<()>>>,
    worker_id: ThreadId,
}

impl Engine {
    /// Starts the worker thread.
    pub fn new(opts: EngineOptions) -> Result<Self> {
        logging::install();
        let events = Arc::new(Events::new(opts.callback));
        let shared = Arc::new(Shared {
            jobs: Mutex::new(HashMap::new()),
            queue: Mutex::new(BinaryHeap::new()),
            next_id: AtomicU64::new(1),
            events: events.clone(),
            budget: AtomicU64::new(opts.memory_budget),
            reserve: AtomicU64::new(opts.memory_reserve),
            forced_plan: Mutex::new(opts.plan),
            residency: Mutex::new(Residency {
                budget: opts.memory_budget,
                ..Residency::default()
            }),
            shutting_down: AtomicBool::new(false),
            plan_changed: AtomicBool::new(false),
            preview_every: opts.preview_every,
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let device = opts.device.clone();
        let probe = opts.available_memory.unwrap_or_else(|| {
            let device = opts.device.clone();
            Arc::new(move || crate::memory::available_on(&device))
        });
        let worker = Worker::new(
            shared.clone(),
            rx,
            opts.device,
            cache::EmbeddingCache::new(opts.embedding_cache),
            probe,
        );
        let level = opts.log_level;
        let handle = std::thread::Builder::new()
            .name("flux-engine".into())
            .spawn(move || {
                logging::attach(events, level);
                worker.run();
            })
            .map_err(|e| Error::invalid(format!("cannot start the worker thread: {e}")))?;
        let worker_id = handle.thread().id();
        Ok(Self {
            shared,
            device,
            tx,
            worker: Mutex::new(Some(handle)),
            worker_id,
        })
    }

    /// Queues a job and returns its handle at once. Higher `priority` runs first (see
    /// [`job::PRIORITY_INTERACTIVE`]); equal priorities run in submission order.
    pub fn submit(&self, request: JobRequest, priority: i32) -> Result<JobId> {
        if self.shared.shutting_down.load(Ordering::Acquire) {
            return Err(Error::invalid("the engine is shutting down"));
        }
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let id = JobId(n);
        self.shared
            .jobs
            .lock()
            .insert(id, Arc::new(Job::new(id, request)));
        self.shared.queue.lock().push(Pending {
            priority,
            order: std::cmp::Reverse(n),
            id,
        });
        self.shared.events.emit(Event::Queued { job: id });
        let _ = self.tx.send(Msg::Wake);
        Ok(id)
    }

    /// A snapshot of a job's state.
    pub fn status(&self, id: JobId) -> Result<JobStatus> {
        Ok(self.shared.job(id)?.status())
    }

    /// Cancels a job: a queued one never starts, a running one stops within one step (a model
    /// load: after the component it is reading).
    pub fn cancel(&self, id: JobId) -> Result<CancelOutcome> {
        let job = self.shared.job(id)?;
        job.cancel.store(true, Ordering::Release);
        let state = job.slot.lock().state;
        match state {
            JobState::Queued => {
                let events = &self.shared.events;
                match job.conclude(JobState::Cancelled, None, None, || {
                    events.emit(Event::Cancelled { job: id })
                }) {
                    true => Ok(CancelOutcome::Dequeued),
                    false => Ok(CancelOutcome::AlreadyFinished),
                }
            }
            JobState::Running => Ok(CancelOutcome::Requested),
            _ => Ok(CancelOutcome::AlreadyFinished),
        }
    }

    /// The device the engine computes on.
    pub fn device(&self) -> &candle_core::Device {
        &self.device
    }

    /// A finished job's result, shared with the engine (which keeps it until released).
    pub fn result(&self, id: JobId) -> Result<JobOutput> {
        let job = self.shared.job(id)?;
        let slot = job.slot.lock();
        slot.output
            .clone()
            .ok_or_else(|| Error::invalid(format!("job {} has no result ({:?})", id.0, slot.state)))
    }

    /// Moves a finished job's result out of the engine.
    pub fn take_result(&self, id: JobId) -> Result<JobOutput> {
        let job = self.shared.job(id)?;
        let mut slot = job.slot.lock();
        let state = slot.state;
        slot.output
            .take()
            .ok_or_else(|| Error::invalid(format!("job {} has no result ({state:?})", id.0)))
    }

    /// Forgets a job (cancelling it if it has not finished); its handle becomes invalid.
    pub fn release(&self, id: JobId) -> Result<()> {
        self.cancel(id)?;
        self.shared.jobs.lock().remove(&id);
        Ok(())
    }

    /// The next event, or `None` when there is none (always, with a callback). Never blocks.
    /// At most [`events::QUEUE_CAPACITY`] unread events are kept; older ones are dropped.
    pub fn poll_event(&self) -> Option<Event> {
        self.shared.events.poll()
    }

    /// How many events were dropped unread because the poll queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.shared.events.dropped()
    }

    /// Blocks until the job reaches a terminal state or `timeout` passes; returns its state then.
    /// Must not be called from the event callback (the worker would wait for itself).
    pub fn wait(&self, id: JobId, timeout: Duration) -> Result<JobState> {
        if std::thread::current().id() == self.worker_id {
            return Err(Error::invalid(
                "wait cannot be called from the event callback",
            ));
        }
        let job = self.shared.job(id)?;
        let deadline = Instant::now() + timeout;
        let mut slot = job.slot.lock();
        while !slot.reported {
            if job.done.wait_until(&mut slot, deadline).timed_out() {
                break;
            }
        }
        Ok(slot.state)
    }

    /// Changes the memory budget; residency follows before the next denoising step (or the
    /// next job).
    pub fn set_memory_budget(&self, bytes: u64) {
        self.shared.budget.store(bytes, Ordering::Release);
        self.shared.residency.lock().budget = bytes;
        let _ = self.tx.send(Msg::Wake);
    }

    /// Changes the reserve [`MEMORY_BUDGET_AUTO`] leaves free; it applies at the next load.
    pub fn set_memory_reserve(&self, bytes: u64) {
        self.shared.reserve.store(bytes, Ordering::Release);
    }

    /// Forces a residency plan (`None`: chosen for the budget again); it applies before the next
    /// denoising step (or the next job). A forced plan that does not fit the budget fails jobs
    /// with the bytes needed and available.
    pub fn set_plan(&self, plan: Option<Plan>) {
        *self.shared.forced_plan.lock() = plan;
        self.shared.plan_changed.store(true, Ordering::Release);
        let _ = self.tx.send(Msg::Wake);
    }

    /// What the engine holds now, per component.
    pub fn residency(&self) -> Residency {
        *self.shared.residency.lock()
    }

    /// True on the engine's worker thread (inside the event callback).
    pub fn on_worker_thread(&self) -> bool {
        std::thread::current().id() == self.worker_id
    }

    /// True inside the event callback, on the worker thread or on a host thread (a `submit` or
    /// `cancel` that emits), where [`shutdown`](Self::shutdown) would wait for itself.
    pub fn in_callback(&self) -> bool {
        self.on_worker_thread() || self.shared.events.in_callback()
    }

    /// Cancels queued and running jobs, joins the worker (within one denoising step, or one
    /// model component of a load) and stops the callback: when it returns, no callback runs or
    /// starts, whatever other references to the engine remain. Later submits are refused.
    /// From inside the callback it cannot wait for itself: it stops the engine (the worker ends
    /// after the callback returns) and returns an error.
    pub fn shutdown(&self) -> Result<()> {
        self.shared.shutting_down.store(true, Ordering::Release);
        for job in self.shared.jobs.lock().values() {
            job.cancel.store(true, Ordering::Release);
        }
        let _ = self.tx.send(Msg::Shutdown);
        if self.in_callback() {
            return Err(Error::invalid(
                "the engine cannot be destroyed from its own event callback",
            ));
        }
        if let Some(handle) = self.worker.lock().take() {
            let _ = handle.join();
        }
        // Jobs cancelled while running reported it; anything still queued was cancelled by the
        // worker. A submit that raced with this may still be emitting: close waits for it.
        self.shared.events.close();
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::error!("{e}; the worker ends on its own after the callback returns");
        }
    }
}
