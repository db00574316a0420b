//! The Flux Engine C ABI: `extern "C"` wrappers over `flux_core::runtime`, one to one.
//!
//! Conventions (see the header): every fallible function returns a `FluxResult`; on failure
//! `flux_last_error_message()` gives the reason on the calling thread. No function unwinds or
//! aborts: each runs inside `catch_unwind`. Input structs start with `struct_size` and have an
//! `_init` function. Strings are UTF-8 and NUL-terminated. Memory the library allocates stays
//! the library's; results are copied into caller buffers.
//!
//! One module per domain, each export a few lines: `engine` (create, destroy, settings, events),
//! `model` (load, unload), `requests` (the jobs one submits), `jobs` (a submitted job and its
//! result), `images` (host and GPU images, inputs and outputs); `abi` holds the shared plumbing (guard, struct reading and
//! writing, handles), `enums` the C enums' conversions, `types` the C-visible types.

/// End offset of a field: the smallest `struct_size` that still covers it.
macro_rules! end_of {
    ($t:ty, $f:ident) => {
        offset_of!($t, $f) + $crate::size_of_field(|s: &$t| &s.$f)
    };
}

mod abi;
mod engine;
mod enums;
mod events;
mod images;
mod jobs;
mod model;
mod requests;
mod residency;
pub mod types;

use std::ffi::c_char;

// The exports, for Rust callers (the tests) as for C.
pub use engine::*;
pub use images::*;
pub use jobs::*;
pub use model::*;
pub use requests::*;

use types::FLUX_ABI_VERSION;

/// The size of the field `field` projects to.
pub(crate) fn size_of_field<T, F>(_field: impl Fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version, e.g. "0.1.0" (static string).
#[no_mangle]
pub extern "C" fn flux_version() -> *const c_char {
    VERSION.as_ptr() as *const c_char
}

/// The ABI version the library implements (`FLUX_ABI_VERSION` of its header).
#[no_mangle]
pub extern "C" fn flux_abi_version() -> u32 {
    FLUX_ABI_VERSION
}

/// The message of the calling thread's last call into the library: why it failed, or empty when
/// it succeeded. Valid until the next call on this thread; never NULL.
#[no_mangle]
pub extern "C" fn flux_last_error_message() -> *const c_char {
    abi::last_error()
}
