//! Engines: creating and destroying them, their settings (memory budget, reserve, residency
//! plan) and their events.

use std::mem::{offset_of, size_of};

use flux_core::runtime::EngineOptions;

use crate::abi::{
    self, guard, non_null, read_desc, write_defaults, write_out, FfiError, FfiResult, Handle,
};
use crate::enums::c_enum;
use crate::types::*;
use crate::{events, residency};

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`: CPU,
/// automatic budget, no previews, 16 cached prompts, INFO logs. Call it through the header's
/// inline `flux_engine_desc_init`, which passes the caller's `sizeof` (so a newer library never
/// writes past an older caller's struct).
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_desc_defaults(desc: *mut FluxEngineDesc, struct_size: u32) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, engine_desc_defaults()) };
}

fn engine_desc_defaults() -> FluxEngineDesc {
    FluxEngineDesc {
        struct_size: size_of::<FluxEngineDesc>() as u32,
        abi_version: FLUX_ABI_VERSION,
        device: FluxDevice::Cpu as i32,
        device_index: 0,
        memory_budget: FLUX_MEMORY_BUDGET_AUTO,
        preview_every: 0,
        embedding_cache: 16,
        log_level: FluxLogLevel::Info as i32,
        callback: None,
        user_data: std::ptr::null_mut(),
        memory_reserve: FLUX_MEMORY_RESERVE_DEFAULT,
    }
}

fn level_filter(v: i32) -> FfiResult<log::LevelFilter> {
    use log::LevelFilter as L;
    Ok(match c_enum(v, "log_level")? {
        FluxLogLevel::Off => L::Off,
        FluxLogLevel::Error => L::Error,
        FluxLogLevel::Warn => L::Warn,
        FluxLogLevel::Info => L::Info,
        FluxLogLevel::Debug => L::Debug,
        FluxLogLevel::Trace => L::Trace,
    })
}

fn device(kind: i32, index: u32) -> FfiResult<candle_core::Device> {
    match c_enum(kind, "device")? {
        FluxDevice::Cpu => Ok(candle_core::Device::Cpu),
        FluxDevice::Cuda => candle_core::Device::new_cuda(index as usize).map_err(|e| {
            let build = if cfg!(feature = "cuda") { "" } else { "not " };
            FfiError::new(
                FluxResult::Compute,
                format!(
                    "CUDA device {index} is unavailable ({e}); this library was {build}built \
                     with CUDA, and the CPU device (FLUX_DEVICE_CPU) always works"
                ),
            )
        }),
    }
}

/// Creates an engine and its worker thread. Fails with ABI_MISMATCH when `desc->abi_version`
/// differs from the library's.
///
/// # Safety
/// `desc` must be NULL or a valid `FluxEngineDesc`; `out_engine` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_create(
    desc: *const FluxEngineDesc,
    out_engine: *mut *mut FluxEngine,
) -> FluxResult {
    guard(|| {
        non_null(out_engine, "out_engine")?;
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let d = unsafe {
            read_desc(
                desc,
                end_of!(FluxEngineDesc, abi_version),
                engine_desc_defaults,
                "desc",
            )
        }?;
        if d.abi_version != FLUX_ABI_VERSION {
            return Err(FfiError::new(
                FluxResult::AbiMismatch,
                format!("the caller was built for ABI {}, this library implements ABI {FLUX_ABI_VERSION}", d.abi_version),
            ));
        }
        let opts = EngineOptions {
            device: device(d.device, d.device_index)?,
            memory_budget: d.memory_budget,
            memory_reserve: d.memory_reserve,
            available_memory: None,
            plan: None,
            preview_every: d.preview_every as usize,
            embedding_cache: d.embedding_cache as usize,
            log_level: level_filter(d.log_level)?,
            callback: events::callback(d.callback, d.user_data),
        };
        let engine = flux_core::runtime::Engine::new(opts)?;
        let handle = abi::register(Handle {
            engine,
            polled: Default::default(),
        });
        // SAFETY: checked not NULL above, and valid for a write (the contract above).
        unsafe { out_engine.write(handle) };
        Ok(())
    })
}

/// Cancels every job, joins the worker (within one denoising step, or one model component of a
/// load) and frees the engine. When it returns no event callback is running or will run, even
/// if another thread is inside a call on this engine (a `flux_job_wait` then returns).
/// NULL is accepted. Returns WRONG_THREAD from inside the event callback, on any thread
/// (nothing is freed).
///
/// # Safety
/// `engine` must be NULL or a handle from `flux_engine_create` (a destroyed one is detected).
#[no_mangle]
pub unsafe extern "C" fn flux_engine_destroy(engine: *mut FluxEngine) -> FluxResult {
    guard(|| {
        if engine.is_null() {
            return Ok(());
        }
        let handle = abi::engine(engine)?;
        if handle.engine.in_callback() {
            return Err(FfiError::new(
                FluxResult::WrongThread,
                "an engine cannot be destroyed from its own event callback",
            ));
        }
        drop(abi::unregister(engine));
        // Stopped here even while another thread is inside a call (a wait) and holds the
        // handle: no callback runs after destroy returns.
        handle.engine.shutdown().map_err(FfiError::from)
    })
}

/// The next event, or NO_EVENT (always, for an engine with a callback). Never blocks.
/// `out->struct_size` must be set; its pointers stay valid until the next poll on this engine.
/// The engine keeps the latest `FLUX_EVENT_QUEUE_CAPACITY` unread events: poll every frame, or
/// pass a callback.
///
/// # Safety
/// `out` must point to a `FluxEvent` whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_poll_event(
    engine: *mut FluxEngine,
    out: *mut FluxEvent,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        // SAFETY: a struct whose `struct_size` is set (the contract above). Checked before the
        // event is taken, so a bad size loses nothing.
        unsafe { abi::out_size(out, "out") }?;
        let Some(e) = h.engine.poll_event() else {
            return Err(FfiError::new(FluxResult::NoEvent, "no event"));
        };
        let mut store = h.polled.lock();
        let fe = store.convert(&e);
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        unsafe { write_out(out, &fe, "out") }
    })
}

/// Sets the memory budget in bytes (`FLUX_MEMORY_BUDGET_AUTO`: the memory available at the next
/// load, less the reserve). The residency plan is chosen again before the next denoising step of a
/// running job (which fails, saying why, when no plan fits) and before the next job. A budget no
/// plan fits unloads the model, with a RESIDENCY event naming the budget and the bytes needed,
/// which later jobs' errors repeat until a model is loaded again.
///
/// # Safety
/// `engine` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_set_memory_budget(
    engine: *mut FluxEngine,
    bytes: u64,
) -> FluxResult {
    guard(|| {
        abi::engine(engine)?.engine.set_memory_budget(bytes);
        Ok(())
    })
}

/// Sets the bytes `FLUX_MEMORY_BUDGET_AUTO` leaves free; it applies at the next load.
///
/// # Safety
/// `engine` must be NULL or a handle.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_set_memory_reserve(
    engine: *mut FluxEngine,
    bytes: u64,
) -> FluxResult {
    guard(|| {
        abi::engine(engine)?.engine.set_memory_reserve(bytes);
        Ok(())
    })
}

/// Writes the default plan (everything resident) into the first `struct_size` bytes of `plan`.
/// Call it through the header's inline `flux_residency_plan_init`.
///
/// # Safety
/// `plan` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_residency_plan_defaults(
    plan: *mut FluxResidencyPlan,
    struct_size: u32,
) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(plan, struct_size, residency::plan_defaults()) };
}

/// Forces a residency plan (NULL: chosen for the budget again, the default). It applies before
/// the next denoising step or job; a plan that does not fit the budget fails jobs with the bytes
/// needed and available.
///
/// # Safety
/// `engine` must be NULL or a handle; `plan` NULL or a valid `FluxResidencyPlan`.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_set_residency_plan(
    engine: *mut FluxEngine,
    plan: *const FluxResidencyPlan,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        let plan = match plan.is_null() {
            true => None,
            false => {
                let min = end_of!(FluxResidencyPlan, struct_size);
                // SAFETY: a struct whose `struct_size` is set (the contract above).
                let d = unsafe { read_desc(plan, min, residency::plan_defaults, "plan") }?;
                Some(residency::plan_from_c(&d)?)
            }
        };
        h.engine.set_plan(plan);
        Ok(())
    })
}

/// What the engine holds now, per component, and the plan that placed it.
///
/// # Safety
/// `out` must point to a `FluxResidency` whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_get_residency(
    engine: *mut FluxEngine,
    out: *mut FluxResidency,
) -> FluxResult {
    guard(|| {
        let r = abi::engine(engine)?.engine.residency();
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        unsafe { write_out(out, &residency::to_c(&r), "out") }
    })
}
