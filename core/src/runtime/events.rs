//! Per-engine events: passed to the host's callback when it gave one, otherwise queued to be
//! polled, at most [`QUEUE_CAPACITY`] at a time.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::RwLock;

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
    /// The host's callback; `None` once closed. Read-locked while it runs, so that closing
    /// waits for a running call.
    callback: RwLock<Option<EventCallback>>,
    dropped: AtomicU64,
}

thread_local! {
    /// The events (by address) whose callback this thread is inside.
    static INSIDE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl Events {
    pub fn new(callback: Option<EventCallback>) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        Self {
            tx,
            rx,
            callback: RwLock::new(callback),
            dropped: AtomicU64::new(0),
        }
    }

    /// Passes the event to the callback if the host gave one (no lock is held meanwhile),
    /// otherwise queues it for [`poll`](Self::poll), dropping the oldest queued event when the
    /// queue is full: a host listening only through the callback never accumulates unread events.
    pub fn emit(&self, e: Event) {
        // Recursive: a callback may cause events itself (cancelling a queued job) even while
        // `close` waits for the lock.
        let callback = self.callback.read_recursive();
        if let Some(cb) = callback.as_ref() {
            let id = self as *const Self as usize;
            INSIDE.with(|v| v.borrow_mut().push(id));
            // Popped on unwind too: a panicking callback is caught further up.
            struct Pop;
            impl Drop for Pop {
                fn drop(&mut self) {
                    INSIDE.with(|v| v.borrow_mut().pop());
                }
            }
            let _pop = Pop;
            return cb(&e);
        }
        drop(callback);
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

    /// Stops calling the callback, once any call running on another thread has returned: after
    /// this no callback starts. Must not be called from inside the callback (it would wait for
    /// itself): see [`in_callback`](Self::in_callback).
    pub fn close(&self) {
        self.callback.write().take();
    }

    /// True on a thread that is inside this engine's callback.
    pub fn in_callback(&self) -> bool {
        let id = self as *const Self as usize;
        INSIDE.with(|v| v.borrow().contains(&id))
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
