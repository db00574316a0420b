//! Per-engine events: passed to the host's callback when it gave one, otherwise queued to be
//! polled, at most [`QUEUE_CAPACITY`] at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

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
    /// Where the model lives changed: loaded, moved to another plan by the budget, or unloaded
    /// because no plan fits (the reason then names the budget and the bytes needed).
    Residency {
        residency: super::Residency,
        reason: String,
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

/// Unread events an engine without a callback keeps. A host that polls rarely (or never, waiting
/// on jobs instead) loses the oldest events beyond this, not memory: with previews on, a long
/// editor session would otherwise pile up every step's image. Job states stay exact regardless.
pub const QUEUE_CAPACITY: usize = 1024;

pub(crate) struct Events {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    callback: Option<EventCallback>,
    dropped: AtomicU64,
}

impl Events {
    pub fn new(callback: Option<EventCallback>) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        Self {
            tx,
            rx,
            callback,
            dropped: AtomicU64::new(0),
        }
    }

    /// Passes the event to the callback if the host gave one (no lock is held meanwhile),
    /// otherwise queues it for [`poll`](Self::poll), dropping the oldest queued event when the
    /// queue is full: a host listening only through the callback never accumulates unread events.
    pub fn emit(&self, e: Event) {
        if let Some(cb) = &self.callback {
            return cb(&e);
        }
        let mut e = e;
        // The receiver lives as long as `self`, so the only failure is a full queue.
        while let Err(TrySendError::Full(back)) = self.tx.try_send(e) {
            if self.rx.try_recv().is_ok() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                log::warn!(
                    "{QUEUE_CAPACITY} events unread: dropping the oldest (poll more often, or \
                     pass an event callback)"
                );
            }
            e = back;
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log(i: usize) -> Event {
        Event::Log {
            level: log::Level::Info,
            message: i.to_string(),
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_events() {
        let events = Events::new(None);
        let extra = 10;
        for i in 0..QUEUE_CAPACITY + extra {
            events.emit(log(i));
        }
        assert_eq!(events.dropped(), extra as u64);
        let messages: Vec<String> = std::iter::from_fn(|| events.poll())
            .map(|e| match e {
                Event::Log { message, .. } => message,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let want: Vec<String> = (extra..QUEUE_CAPACITY + extra)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(messages, want);
    }
}
