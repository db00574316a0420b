//! Loading and unloading a model: the model desc and the files it names.

use std::mem::{offset_of, size_of};

use flux_core::model::ModelFiles;
use flux_core::runtime::JobRequest;

use crate::abi::{self, guard, opt_string, read_desc, string, write_defaults, FfiResult};
use crate::enums::c_enum;
use crate::jobs::submit;
use crate::types::*;

/// Writes defaults into the first `struct_size` bytes of `desc` and sets its `struct_size`: no
/// paths, default dtype, Kontext detected, normal priority. Call it through the header's inline
/// `flux_model_desc_init`, which passes the caller's `sizeof` (so a newer library never writes
/// past an older caller's struct).
///
/// # Safety
/// `desc` must be NULL or point to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flux_model_desc_defaults(desc: *mut FluxModelDesc, struct_size: u32) {
    // SAFETY: the contract above, which is `write_defaults`'.
    unsafe { write_defaults(desc, struct_size, model_desc_defaults()) };
}

fn model_desc_defaults() -> FluxModelDesc {
    let null = std::ptr::null();
    FluxModelDesc {
        struct_size: size_of::<FluxModelDesc>() as u32,
        folder: null,
        transformer: null,
        ae: null,
        t5: null,
        clip: null,
        t5_tokenizer: null,
        clip_tokenizer: null,
        dtype: FluxDtype::Default as i32,
        kontext: FluxKontext::Detect as i32,
        priority: FLUX_PRIORITY_NORMAL,
        reserved: 0,
    }
}

unsafe fn model_files(d: &FluxModelDesc) -> FfiResult<ModelFiles> {
    // SAFETY: the desc's strings are NULL or NUL-terminated (the contract above).
    if let Some(folder) = unsafe { opt_string(d.folder, "desc.folder") }? {
        return Ok(ModelFiles::from_folder(folder.as_ref())?);
    }
    // SAFETY: as above.
    let path = |p, what| unsafe { string(p, what) }.map(std::path::PathBuf::from);
    Ok(ModelFiles {
        transformer: path(d.transformer, "desc.transformer (or desc.folder)")?,
        ae: path(d.ae, "desc.ae")?,
        t5: path(d.t5, "desc.t5")?,
        clip: path(d.clip, "desc.clip")?,
        t5_tokenizer: path(d.t5_tokenizer, "desc.t5_tokenizer")?,
        clip_tokenizer: path(d.clip_tokenizer, "desc.clip_tokenizer")?,
        model_index: None,
        redux: None,
    })
}

/// Queues loading a model (replacing the current one). Files are located now (a missing folder
/// or unknown layout fails here); weights load on the worker (watch the job).
///
/// # Safety
/// Pointers must be NULL or valid; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_load_model(
    engine: *mut FluxEngine,
    desc: *const FluxModelDesc,
    out_job: *mut FluxJob,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        let min = end_of!(FluxModelDesc, folder);
        // SAFETY: NULL or a struct whose `struct_size` is set (the contract above).
        let d = unsafe { read_desc(desc, min, model_desc_defaults, "desc") }?;
        let dtype = match c_enum(d.dtype, "dtype")? {
            FluxDtype::Default => None,
            FluxDtype::F32 => Some(candle_core::DType::F32),
            FluxDtype::Bf16 => Some(candle_core::DType::BF16),
            FluxDtype::F16 => Some(candle_core::DType::F16),
        };
        let kontext = match c_enum(d.kontext, "desc.kontext")? {
            FluxKontext::Detect => None,
            FluxKontext::No => Some(false),
            FluxKontext::Yes => Some(true),
        };
        // SAFETY: the desc's strings are NULL or NUL-terminated (the contract above).
        let files = unsafe { model_files(&d) }?;
        submit(
            &h,
            JobRequest::LoadModel {
                files,
                dtype,
                kontext,
            },
            d.priority,
            out_job,
        )
    })
}

/// Queues unloading the model.
///
/// # Safety
/// Pointers must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn flux_engine_unload_model(
    engine: *mut FluxEngine,
    priority: i32,
    out_job: *mut FluxJob,
) -> FluxResult {
    guard(|| {
        let h = abi::engine(engine)?;
        submit(&h, JobRequest::UnloadModel, priority, out_job)
    })
}
