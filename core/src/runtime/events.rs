//! Per-engine events: passed to the host's callback when it gave one, otherwise queued to be
//! polled.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::job::JobId;
use crate::image::RgbImage;
use crate::pipeline::StageTimings;

/// Something that happened in an engine.
#[derive(Debug, Clone)]
pub enum Event {
    Queued {
        job: JobId,
    },
    Started {
        job: JobId,
    },
    /// A denoising step finished.
    Progress {
        job: JobId,
        step: usize,
        total: usize,
        elapsed: Duration,
        eta: Duration,
    },
    /// A small RGB image (1/8 of the output size) of the current latent.
    Preview {
        job: JobId,
        step: usize,
        image: RgbImage,
    },
    /// The job succeeded; image jobs carry their stage timings and whether the prompt embedding
    /// came from the cache (text encoding skipped).
    Finished {
        job: JobId,
        timings: Option<StageTimings>,
        embedding_cached: bool,
    },
    Failed {
        job: JobId,
        error: String,
    },
    Cancelled {
        job: JobId,
    },
    /// A log record emitted by the engine's worker.
    Log {
        level: log::Level,
        message: String,
    },
}

/// A host callback for events. It runs on the engine's worker thread for everything the worker
/// does, and on the calling thread inside `submit` (Queued) and `cancel` (Cancelled of a queued job).
pub type EventCallback = Box<dyn Fn(&Event) + Send + Sync>;

pub(crate) struct Events {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    callback: Option<EventCallback>,
}

impl Events {
    pub fn new(callback: Option<EventCallback>) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Self { tx, rx, callback }
    }

    /// Passes the event to the callback if the host gave one (no lock is held meanwhile),
    /// otherwise queues it for [`poll`](Self::poll): a host listening only through the callback
    /// never accumulates unread events.
    pub fn emit(&self, e: Event) {
        match &self.callback {
            Some(cb) => cb(&e),
            // The receiver lives as long as `self`: sending cannot fail.
            None => drop(self.tx.send(e)),
        }
    }

    /// Like [`emit`](Self::emit), but a panicking callback is logged instead of unwinding:
    /// for events outside a job, where nothing could turn the panic into a failed job.
    pub fn emit_guarded(&self, e: Event) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.emit(e)));
        if outcome.is_err() {
            log::error!("the event callback panicked");
        }
    }

    /// The next event, without blocking.
    pub fn poll(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}
