//! Routes `log` records emitted on an engine's worker thread to that engine's events.
//!
//! `log` has one logger per process; the engine installs a router as that logger unless the
//! process already set one (then records go there and no `Log` events are produced). The router
//! forwards a record only to the engine whose worker thread emitted it, so events stay per engine.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Once};

use super::events::{Event, Events};

thread_local! {
    static SINK: RefCell<Option<(Arc<Events>, log::LevelFilter)>> = const { RefCell::new(None) };
    /// Set while a record is being forwarded: a callback that logs does not loop.
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

struct Router;

impl log::Log for Router {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        SINK.with(|s| {
            s.borrow()
                .as_ref()
                .is_some_and(|(_, level)| meta.level() <= *level)
        })
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if FORWARDING.with(Cell::get) {
            return;
        }
        let sink = SINK.with(|s| s.borrow().as_ref().map(|(e, _)| e.clone()));
        if let Some(events) = sink {
            FORWARDING.with(|f| f.set(true));
            // Guarded: a callback that panics on a log line (anywhere on the worker, in or out
            // of a job) is caught, not unwound through the engine.
            events.emit_guarded(Event::Log {
                level: record.level(),
                message: format!("{}: {}", record.target(), record.args()),
            });
            FORWARDING.with(|f| f.set(false));
        }
    }

    fn flush(&self) {}
}

/// Installs the router as the process logger, once, if no logger is set yet.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if log::set_boxed_logger(Box::new(Router)).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}

/// Makes the current (worker) thread's records go to `events`, up to `level`.
pub(crate) fn attach(events: Arc<Events>, level: log::LevelFilter) {
    SINK.with(|s| *s.borrow_mut() = Some((events, level)));
}
