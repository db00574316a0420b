//! Jobs: what the host asks for, their states and results.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::model::{ModelFiles, ModelInfo};
use crate::pipeline::edit::{ImageToImage, KontextEdit};
use crate::pipeline::{Generated, TextToImage};

/// A job's handle: unique within its engine, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// Priority for interactive work (a preview the artist is waiting for).
pub const PRIORITY_INTERACTIVE: i32 = 100;
/// The default priority.
pub const PRIORITY_NORMAL: i32 = 0;
/// Priority for background batches (variations).
pub const PRIORITY_BATCH: i32 = -100;

/// What a job does.
#[derive(Debug, Clone)]
pub enum JobRequest {
    /// Load a model (replacing the current one). `dtype` and `kontext` as in `LoadOptions`.
    LoadModel {
        files: ModelFiles,
        dtype: Option<candle_core::DType>,
        kontext: Option<bool>,
    },
    /// Free the current model.
    UnloadModel,
    TextToImage(TextToImage),
    Edit(KontextEdit),
    ImageToImage(ImageToImage),
}

impl JobRequest {
    /// Short name for logs and events.
    pub fn kind(&self) -> &'static str {
        match self {
            JobRequest::LoadModel { .. } => "load-model",
            JobRequest::UnloadModel => "unload-model",
            JobRequest::TextToImage(_) => "text-to-image",
            JobRequest::Edit(_) => "edit",
            JobRequest::ImageToImage(_) => "image-to-image",
        }
    }

    /// The LoRAs an image job asks for (none for the others).
    pub fn loras(&self) -> &[crate::lora::LoraChoice] {
        match self {
            JobRequest::TextToImage(r) => &r.loras,
            JobRequest::ImageToImage(r) => &r.base.loras,
            JobRequest::Edit(r) => &r.loras,
            JobRequest::LoadModel { .. } | JobRequest::UnloadModel => &[],
        }
    }
}

/// Where a job is in its life. Every job reaches exactly one of the last three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Succeeded, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What a succeeded job produced. An image is shared, so reading it never copies its pixels.
#[derive(Debug, Clone)]
pub enum JobOutput {
    Image(Arc<Generated>),
    Model(Box<ModelInfo>),
    Unloaded,
}

/// A snapshot of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    pub state: JobState,
    /// Denoising steps done and planned (0/0 before the first step or for model jobs).
    pub step: usize,
    pub total: usize,
    /// The error of a failed job.
    pub error: Option<String>,
    /// Whether a result is still held (not yet taken).
    pub has_result: bool,
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued and will never start.
    Dequeued,
    /// The job is running and stops before its next step or before decoding.
    Requested,
    /// The job had already finished; nothing changed.
    AlreadyFinished,
}

pub(crate) struct Slot {
    pub state: JobState,
    pub step: usize,
    pub total: usize,
    pub error: Option<String>,
    pub output: Option<JobOutput>,
    pub request: Option<JobRequest>,
    /// Set once the terminal event has been emitted; `wait` returns only then.
    pub reported: bool,
}

/// A job as the engine keeps it.
pub(crate) struct Job {
    pub id: JobId,
    pub cancel: AtomicBool,
    pub slot: Mutex<Slot>,
    pub done: Condvar,
}

impl Job {
    /// `Err(Cancelled)` once a cancel was requested: for work between its stages.
    pub fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Acquire) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

impl Job {
    pub fn new(id: JobId, request: JobRequest) -> Self {
        let slot = Slot {
            state: JobState::Queued,
            step: 0,
            total: 0,
            error: None,
            output: None,
            request: Some(request),
            reported: false,
        };
        Self {
            id,
            cancel: AtomicBool::new(false),
            slot: Mutex::new(slot),
            done: Condvar::new(),
        }
    }

    pub fn status(&self) -> JobStatus {
        let s = self.slot.lock();
        JobStatus {
            state: s.state,
            step: s.step,
            total: s.total,
            error: s.error.clone(),
            has_result: s.output.is_some(),
        }
    }

    /// Moves a non-terminal job to a terminal state; false when it already had one.
    fn finish(&self, state: JobState, output: Option<JobOutput>, error: Option<String>) -> bool {
        let mut s = self.slot.lock();
        if s.state.is_terminal() {
            return false;
        }
        s.state = state;
        s.output = output;
        s.error = error;
        s.request = None;
        true
    }

    /// Ends the job once: terminal state, then its terminal event, then waiters are woken, so a
    /// host returning from `wait` always finds the event queued. False when it had already ended.
    pub fn conclude(
        &self,
        state: JobState,
        output: Option<JobOutput>,
        error: Option<String>,
        emit: impl FnOnce(),
    ) -> bool {
        if !self.finish(state, output, error) {
            return false;
        }
        emit();
        self.slot.lock().reported = true;
        self.done.notify_all();
        true
    }
}
