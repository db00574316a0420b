//! A job once submitted: cancel, status, wait, its error, its image (size, copy, save), release.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use flux_core::runtime::{CancelOutcome, JobId, JobOutput, JobRequest, JobState};

use crate::abi::{
    self, guard, non_null, string, write_opt, write_out, FfiError, FfiResult, Handle,
};
use crate::types::*;

fn state_code(s: JobState) -> i32 {
    (match s {
        JobState::Queued => FluxJobState::Queued,
        JobState::Running => FluxJobState::Running,
        JobState::Succeeded => FluxJobState::Succeeded,
        JobState::Failed => FluxJobState::Failed,
        JobState::Cancelled => FluxJobState::Cancelled,
    }) as i32
}

/// Cancels a job: a queued one never starts, a running one stops within one step (a model load:
/// after the component it is reading). Cancelling a finished job is harmless
/// (`FLUX_CANCEL_OUTCOME_ALREADY_FINISHED`). `out_outcome` may be NULL.
///
/// # Safety
/// Pointers must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn flux_job_cancel(
    engine: *mut FluxEngine,
    job: FluxJob,
    out_outcome: *mut i32,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        let outcome = h.engine.cancel(JobId(job))?;
        let code = match outcome {
            CancelOutcome::Dequeued => FluxCancelOutcome::Dequeued,
            CancelOutcome::Requested => FluxCancelOutcome::Requested,
            CancelOutcome::AlreadyFinished => FluxCancelOutcome::AlreadyFinished,
        };
        // SAFETY: NULL or valid for a write (the contract above).
        unsafe { write_opt(out_outcome, code as i32) };
        Ok(())
    })
}

/// A job's state and progress.
///
/// # Safety
/// `out` must point to a `FluxJobStatus` whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn flux_job_status(
    engine: *mut FluxEngine,
    job: FluxJob,
    out: *mut FluxJobStatus,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out, "out")?;
        let s = h.engine.status(JobId(job))?;
        let v = FluxJobStatus {
            struct_size: 0,
            state: state_code(s.state),
            step: s.step as u32,
            total: s.total as u32,
            has_result: u32::from(s.has_result),
        };
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        unsafe { write_out(out, &v, "out") }
    })
}

/// Blocks until the job ends or `timeout_ms` passes (TIMEOUT; the job goes on). `out_state`
/// (may be NULL) then holds the job's `FluxJobState`: the terminal one on success, QUEUED or
/// RUNNING on TIMEOUT. WRONG_THREAD in the callback.
///
/// # Safety
/// Pointers must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn flux_job_wait(
    engine: *mut FluxEngine,
    job: FluxJob,
    timeout_ms: u32,
    out_state: *mut i32,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        if h.engine.on_worker_thread() {
            return Err(FfiError::new(
                FluxResult::WrongThread,
                "flux_job_wait cannot be called from the event callback",
            ));
        }
        let state = h
            .engine
            .wait(JobId(job), Duration::from_millis(timeout_ms as u64))?;
        // SAFETY: NULL or valid for a write (the contract above).
        unsafe { write_opt(out_state, state_code(state)) };
        if !state.is_terminal() {
            return Err(FfiError::new(
                FluxResult::Timeout,
                format!("job {job} still {state:?} after {timeout_ms} ms"),
            ));
        }
        Ok(())
    })
}

/// OK for a job that has not failed; JOB_FAILED (with its error as the last error message) for
/// one that has.
///
/// # Safety
/// `engine` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_job_error(engine: *mut FluxEngine, job: FluxJob) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        match h.engine.status(JobId(job))?.error {
            Some(e) => Err(FfiError::new(FluxResult::JobFailed, e)),
            None => Ok(()),
        }
    })
}

/// Queues `request` on `h`'s engine and writes the job's handle to `out_job`.
pub(crate) fn submit(
    h: &Handle,
    request: JobRequest,
    priority: i32,
    out_job: *mut FluxJob,
) -> FfiResult {
    non_null(out_job, "out_job")?;
    let id = h.engine.submit(request, priority)?;
    // SAFETY: checked not NULL above; the exports calling this promise it is valid for a write.
    unsafe { out_job.write(id.0) };
    Ok(())
}

/// A finished image job's result (image and generation parameters), or the code saying why not.
pub(crate) fn finished(h: &Handle, job: FluxJob) -> FfiResult<Arc<flux_core::pipeline::Generated>> {
    match h.engine.result(JobId(job)) {
        Ok(JobOutput::Image(g)) => Ok(g),
        Ok(_) => Err(FfiError::new(
            FluxResult::NotReady,
            format!("job {job} did not produce an image"),
        )),
        Err(e) => match h.engine.status(JobId(job)) {
            Err(_) => Err(e.into()),
            Ok(_) => Err(FfiError::new(FluxResult::NotReady, e.to_string())),
        },
    }
}

/// Size of a finished job's image.
///
/// # Safety
/// Pointers must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn flux_job_image_size(
    engine: *mut FluxEngine,
    job: FluxJob,
    out_width: *mut u32,
    out_height: *mut u32,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        non_null(out_width, "out_width")?;
        non_null(out_height, "out_height")?;
        let g = finished(&h, job)?;
        let img = &g.image;
        // SAFETY: both checked not NULL above, and valid for writes (the contract above).
        unsafe {
            out_width.write(img.width as u32);
            out_height.write(img.height as u32);
        }
        Ok(())
    })
}

/// Writes a finished job's image to `path`: JPEG for `.jpg`/`.jpeg` (quality 95), otherwise
/// PNG carrying the generation parameters (prompt, seed, steps, guidance, size, variant).
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn flux_job_save_image(
    engine: *mut FluxEngine,
    job: FluxJob,
    path: *const c_char,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        // SAFETY: NULL or NUL-terminated (the contract above).
        let path = unsafe { string(path, "path") }?;
        let g = finished(&h, job)?;
        Ok(flux_core::image::export::save(
            path.as_ref(),
            &g.image,
            Some(&g.meta),
        )?)
    })
}

/// Forgets a job (cancelling it if it is still queued or running); its handle becomes invalid.
///
/// # Safety
/// `engine` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_job_release(engine: *mut FluxEngine, job: FluxJob) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        Ok(h.engine.release(JobId(job))?)
    })
}
