//! The engine runtime: one worker thread per engine owns the device, the loaded model and every
//! tensor; the host talks to it through a priority job queue and polls per-engine events.
//!
//! Every host call is non-blocking and O(1) apart from [`Engine::wait`], which takes a timeout.
//! Cancellation is cooperative: a queued job never starts; a running job stops before its next
//! denoising step or before decoding. Dropping the engine cancels everything and joins the worker.
//!
//! Memory budget: the host states how many bytes of device memory the engine may keep, or leaves
//! it at [`MEMORY_BUDGET_AUTO`]: the memory available when a model loads (plus what the engine
//! already holds). Loading a model whose transformer and autoencoder alone exceed it fails with an
//! error stating both numbers, before anything large is allocated. When the text
//! encoders do not fit beside them, they are loaded to encode a new prompt and released right
//! after (prompt embeddings stay cached, so a new seed on the same prompt needs no encoder). The
//! budget bounds what stays resident between stages: while a new prompt is encoded, the encoders
//! are briefly resident beside the transformer. Lowering the budget below the transformer and
//! autoencoder unloads the model, with a warning event naming both numbers, which later jobs'
//! errors repeat until a model is loaded again.

mod cache;
pub mod events;
pub mod job;
mod logging;
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
use worker::{Msg, Worker};

/// The budget that follows the machine: the memory available when a model loads (CPU: the
/// kernel's `MemAvailable`; other devices: not measured yet, so unlimited), plus what the engine
/// already holds.
pub const MEMORY_BUDGET_AUTO: u64 = u64::MAX;

/// Measures the memory available to a model load, in bytes.
pub type MemoryProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How an engine is set up.
pub struct EngineOptions {
    pub device: candle_core::Device,
    /// Bytes of device memory the engine may keep resident (default: [`MEMORY_BUDGET_AUTO`]).
    pub memory_budget: u64,
    /// What [`MEMORY_BUDGET_AUTO`] measures (default: the system's available memory; tests
    /// inject smaller machines).
    pub available_memory: Option<MemoryProbe>,
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
            available_memory: None,
            preview_every: 0,
            embedding_cache: 16,
            log_level: log::LevelFilter::Info,
            callback: None,
        }
    }
}

/// The memory the system has available, in bytes: Linux's `MemAvailable`; unlimited where it
/// cannot be read.
fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(u64::MAX)
}

/// What the engine holds in device memory, per component, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Residency {
    pub budget: u64,
    pub transformer: u64,
    pub autoencoder: u64,
    /// 0 while the text encoders are released.
    pub text_encoders: u64,
    /// True when the budget makes the engine release the text encoders after encoding.
    pub release_text_encoders: bool,
}

impl Residency {
    /// Bytes held now.
    pub fn total(&self) -> u64 {
        self.transformer + self.autoencoder + self.text_encoders
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
    residency: Mutex<Residency>,
    shutting_down: AtomicBool,
    preview_every: usize,
}

impl Shared {
    fn job(&self, id: JobId) -> Result<Arc<Job>> {
        self.jobs
            .lock()
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::invalid(format!("unknown or released job {}", id.0)))
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
    worker: Option<JoinHandle<()>>,
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
            residency: Mutex::new(Residency {
                budget: opts.memory_budget,
                ..Residency::default()
            }),
            shutting_down: AtomicBool::new(false),
            preview_every: opts.preview_every,
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let device = opts.device.clone();
        let probe = opts
            .available_memory
            .unwrap_or_else(|| Arc::new(available_memory));
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
            worker: Some(handle),
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

    /// Changes the memory budget; residency follows before the next job.
    pub fn set_memory_budget(&self, bytes: u64) {
        self.shared.budget.store(bytes, Ordering::Release);
        self.shared.residency.lock().budget = bytes;
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

    /// Cancels queued and running jobs and joins the worker (within one denoising step, or one
    /// model component of a load).
    /// Refused from the event callback, where it would wait for itself.
    pub fn shutdown(&mut self) -> Result<()> {
        if std::thread::current().id() == self.worker_id {
            return Err(Error::invalid(
                "the engine cannot be destroyed from its own event callback",
            ));
        }
        self.shared.shutting_down.store(true, Ordering::Release);
        for job in self.shared.jobs.lock().values() {
            job.cancel.store(true, Ordering::Release);
        }
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(handle) = self.worker.take() {
            let _ = handle.join();
        }
        // Jobs cancelled while running reported it; anything still queued was cancelled by the worker.
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
