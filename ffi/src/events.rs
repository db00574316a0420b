//! Runtime events as C `FluxEvent`s, with storage for the data their pointers refer to.

use std::ffi::{c_void, CString};

use flux_core::runtime::Event;

use crate::types::{FluxEvent, FluxEventCallback, FluxEventType};

/// Owns what a `FluxEvent`'s pointers point to.
#[derive(Default)]
pub struct EventStore {
    message: Option<CString>,
    preview: Vec<u8>,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn log_level(l: log::Level) -> i32 {
    l as i32
}

impl EventStore {
    /// Converts `e`, keeping its strings and pixels in `self`.
    pub fn convert(&mut self, e: &Event) -> FluxEvent {
        self.message = None;
        self.preview.clear();
        let mut out = FluxEvent {
            struct_size: std::mem::size_of::<FluxEvent>() as u32,
            kind: 0,
            job: 0,
            step: 0,
            total: 0,
            elapsed_ms: 0.0,
            eta_ms: 0.0,
            preview_width: 0,
            preview_height: 0,
            preview_rgb: std::ptr::null(),
            message: std::ptr::null(),
            log_level: 0,
            text_ms: 0.0,
            denoise_ms: 0.0,
            decode_ms: 0.0,
            embedding_cached: 0,
            reserved: 0,
        };
        let mut text = |s: &str| {
            let c = CString::new(s.replace('\0', " ")).unwrap_or_default();
            let p = c.as_ptr();
            self.message = Some(c);
            p
        };
        match e {
            Event::Queued { job } => (out.kind, out.job) = (FluxEventType::Queued as i32, job.0),
            Event::Started { job } => (out.kind, out.job) = (FluxEventType::Started as i32, job.0),
            Event::Progress {
                job,
                step,
                total,
                elapsed,
                eta,
            } => {
                (out.kind, out.job, out.step, out.total) = (
                    FluxEventType::Progress as i32,
                    job.0,
                    *step as u32,
                    *total as u32,
                );
                (out.elapsed_ms, out.eta_ms) = (ms(*elapsed), ms(*eta));
            }
            Event::Preview { job, step, image } => {
                (out.kind, out.job, out.step) =
                    (FluxEventType::Preview as i32, job.0, *step as u32);
                (out.preview_width, out.preview_height) = (image.width as u32, image.height as u32);
                self.preview.extend_from_slice(&image.data);
                out.preview_rgb = self.preview.as_ptr();
            }
            Event::Finished {
                job,
                timings,
                embedding_cached,
            } => {
                (out.kind, out.job) = (FluxEventType::Finished as i32, job.0);
                if let Some(t) = timings {
                    (out.text_ms, out.denoise_ms, out.decode_ms) =
                        (ms(t.text_encoding), ms(t.denoising), ms(t.decoding));
                }
                out.embedding_cached = u32::from(*embedding_cached);
            }
            Event::Failed { job, error } => {
                (out.kind, out.job) = (FluxEventType::Failed as i32, job.0);
                out.message = text(error);
            }
            Event::Cancelled { job } => {
                (out.kind, out.job) = (FluxEventType::Cancelled as i32, job.0)
            }
            Event::Log { level, message } => {
                (out.kind, out.log_level) = (FluxEventType::Log as i32, log_level(*level));
                out.message = text(message);
            }
            Event::Residency { reason, .. } => {
                out.kind = FluxEventType::Residency as i32;
                out.message = text(reason);
            }
        }
        out
    }
}

/// The host's user data, passed back untouched.
struct UserData(*mut c_void);
// SAFETY: the pointer is only handed back to the host's callback, which documents the thread it
// runs on; the library never dereferences it.
unsafe impl Send for UserData {}
// SAFETY: as above: shared only to be handed back.
unsafe impl Sync for UserData {}

impl UserData {
    /// The pointer (a method, so closures capture the whole `Send` wrapper, not the raw field).
    fn get(&self) -> *mut c_void {
        self.0
    }
}

/// Wraps a C callback as a runtime callback.
pub fn callback(
    cb: FluxEventCallback,
    user_data: *mut c_void,
) -> Option<flux_core::runtime::EventCallback> {
    let cb = cb?;
    let ud = UserData(user_data);
    Some(Box::new(move |e: &Event| {
        let mut store = EventStore::default();
        let fe = store.convert(e);
        // SAFETY: the host promised a valid function; the event outlives the call.
        unsafe { cb(&fe, ud.get()) };
    }))
}
