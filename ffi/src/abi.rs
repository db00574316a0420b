//! Plumbing shared by every export: panic and error capture, the thread-local error message,
//! versioned struct reading/writing, strings, and the registry of live engines.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use flux_core::runtime::Engine;
use parking_lot::Mutex;

use crate::events::EventStore;
use crate::types::{FluxEngine, FluxResult};

/// An error on its way to C: a code and the sentence for `flux_last_error_message`.
pub struct FfiError {
    pub code: FluxResult,
    pub message: String,
}

impl FfiError {
    pub fn new(code: FluxResult, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<flux_core::Error> for FfiError {
    fn from(e: flux_core::Error) -> Self {
        use flux_core::Error as E;
        let code = match &e {
            E::InvalidArgument(_) => FluxResult::InvalidArgument,
            E::Io { .. } => FluxResult::Io,
            E::CorruptFile { .. } => FluxResult::CorruptFile,
            E::MissingTensor { .. } => FluxResult::MissingTensor,
            E::BadTensor { .. } => FluxResult::BadTensor,
            E::UnknownLayout(_) => FluxResult::UnknownLayout,
            E::Tokenizer { .. } => FluxResult::Tokenizer,
            E::Cancelled => FluxResult::Cancelled,
            E::Compute(_) | E::Image(_) | E::OutOfMemory { .. } | E::NonFinite(_) => {
                FluxResult::Compute
            }
            E::Unsupported(_) => FluxResult::Unsupported,
            E::Timeout(_) => FluxResult::Timeout,
            E::UnknownJob(_) => FluxResult::UnknownJob,
            E::BufferTooSmall { .. } => FluxResult::BufferTooSmall,
        };
        Self::new(code, e.to_string())
    }
}

pub type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The calling thread's last error message (valid until the next call on this thread).
pub fn last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs an export: errors become codes with a message, panics become `INTERNAL`; success clears
/// the message (so it always belongs to the last call).
pub fn guard(f: impl FnOnce() -> FfiResult) -> FluxResult {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last_error("");
            FluxResult::Ok
        }
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.code
        }
        Err(panic) => {
            let what = flux_core::error::panic_message(panic.as_ref());
            set_last_error(&format!("internal error: {what}"));
            FluxResult::Internal
        }
    }
}

/// Fails with NULL_POINTER when `p` is null.
pub fn non_null<T>(p: *const T, what: &str) -> FfiResult {
    if p.is_null() {
        Err(FfiError::new(
            FluxResult::NullPointer,
            format!("{what} is NULL"),
        ))
    } else {
        Ok(())
    }
}

/// A required UTF-8 string.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string.
pub unsafe fn string(p: *const c_char, what: &str) -> FfiResult<String> {
    non_null(p, what)?;
    // SAFETY: not NULL, so a NUL-terminated string (the caller's promise).
    let bytes = unsafe { CStr::from_ptr(p) };
    bytes.to_str().map(str::to_string).map_err(|e| {
        FfiError::new(
            FluxResult::InvalidUtf8,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}

/// An optional UTF-8 string (NULL = absent).
///
/// # Safety
/// As [`string`].
pub unsafe fn opt_string(p: *const c_char, what: &str) -> FfiResult<Option<String>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's promise, which is `string`'s.
        unsafe { string(p, what) }.map(Some)
    }
}

/// Largest `struct_size` accepted: anything above is a corrupted value, not a newer header.
const MAX_STRUCT_SIZE: u32 = 1 << 16;

/// Reads a versioned input struct: `defaults()`, then the caller's first `struct_size`
/// bytes. A caller compiled against an older, smaller struct gets defaults for the newer
/// fields; a larger size (a newer header) is accepted and its unknown trailing fields ignored.
/// Sizes below `min_size` (the first version's required fields) are rejected.
///
/// # Safety
/// `p` must be NULL or point to at least `struct_size` readable bytes starting with a `u32` size.
pub unsafe fn read_desc<T>(
    p: *const T,
    min_size: usize,
    defaults: fn() -> T,
    what: &str,
) -> FfiResult<T> {
    non_null(p, what)?;
    // SAFETY: not NULL, so it starts with a readable u32 (the caller's promise).
    let size = unsafe { std::ptr::read_unaligned(p as *const u32) };
    if (size as usize) < min_size || size > MAX_STRUCT_SIZE {
        return Err(FfiError::new(
            FluxResult::BadStructSize,
            format!(
                "{what}.struct_size is {size}; expected at least {min_size} (sizeof is {})",
                std::mem::size_of::<T>()
            ),
        ));
    }
    let mut out = defaults();
    let n = (size as usize).min(std::mem::size_of::<T>());
    // SAFETY: the caller's `struct_size` bytes are readable and `out` has room for `n`; the
    // ABI's structs are plain data (integers, floats, pointers) valid for any bytes.
    unsafe { std::ptr::copy_nonoverlapping(p as *const u8, &mut out as *mut T as *mut u8, n) };
    Ok(out)
}

/// The caller's `struct_size` of an output struct, checked before anything is taken to fill it
/// (an event is not polled into a struct that cannot receive it).
///
/// # Safety
/// `p` must be NULL or point to at least `struct_size` writable bytes starting with a `u32` size.
pub unsafe fn out_size<T>(p: *mut T, what: &str) -> FfiResult<usize> {
    non_null(p, what)?;
    // SAFETY: not NULL, so it starts with a readable u32 (the caller's promise).
    let size = unsafe { std::ptr::read_unaligned(p as *const u32) };
    match (4..=MAX_STRUCT_SIZE).contains(&size) {
        true => Ok(size as usize),
        false => Err(FfiError::new(
            FluxResult::BadStructSize,
            format!("{what}.struct_size is {size}"),
        )),
    }
}

/// Writes an output struct: as many bytes as the caller's `struct_size` covers, and zeros past
/// the fields this library knows (a newer caller's fields read as zero, never as garbage).
///
/// # Safety
/// `p` must be NULL or point to at least `struct_size` writable bytes starting with a `u32` size.
pub unsafe fn write_out<T>(p: *mut T, value: &T, what: &str) -> FfiResult {
    // SAFETY: the caller's promise, which is `out_size`'s.
    let size = unsafe { out_size(p, what) }?;
    let known = std::mem::size_of::<T>();
    let n = size.min(known);
    // Skip the caller's struct_size (the first 4 bytes), fill the rest of what fits.
    // SAFETY: 4 ≤ n ≤ both the caller's writable `struct_size` bytes and `size_of::<T>()`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (value as *const T as *const u8).add(4),
            (p as *mut u8).add(4),
            n - 4,
        )
    };
    if size > known {
        // SAFETY: bytes `known..size` are within the caller's writable `struct_size`.
        unsafe { std::ptr::write_bytes((p as *mut u8).add(known), 0, size - known) };
    }
    Ok(())
}

/// Writes the first `struct_size` bytes of `defaults` to `p` (unless NULL) and stores
/// `struct_size` in its first field: the caller's struct, however old, is never overrun.
///
/// # Safety
/// `p` must be NULL or valid for writes of `struct_size` bytes; `T` starts with a `u32` size.
pub unsafe fn write_defaults<T>(p: *mut T, struct_size: u32, defaults: T) {
    if p.is_null() {
        return;
    }
    let n = (struct_size as usize).min(std::mem::size_of::<T>());
    // SAFETY: `p` is writable for `struct_size` ≥ n bytes, and `defaults` has n.
    unsafe { std::ptr::copy_nonoverlapping(&defaults as *const T as *const u8, p as *mut u8, n) };
    if n >= 4 {
        // SAFETY: the first field is a u32 within the n bytes written above.
        unsafe { std::ptr::write_unaligned(p as *mut u32, struct_size) };
    }
}

/// Writes `v` through an output pointer that may be NULL (then nothing is written).
///
/// # Safety
/// `p` must be NULL or valid for a write of `T`.
pub unsafe fn write_opt<T>(p: *mut T, v: T) {
    if !p.is_null() {
        // SAFETY: not NULL, so valid for a write of `T` (the caller's promise).
        unsafe { p.write(v) };
    }
}

/// A live engine as the C side holds it.
pub struct Handle {
    pub engine: Engine,
    /// Storage behind the pointers of the last polled event.
    pub polled: Mutex<EventStore>,
}

/// Live objects of one kind behind opaque C handles. Handle values are never reused (unlike
/// heap addresses), so a destroyed object's handle is always detected; they are tokens, never
/// dereferenced.
pub struct Registry<T> {
    live: LazyLock<Mutex<HashMap<usize, Arc<T>>>>,
    next: AtomicUsize,
    /// The low 4 bits of every handle of this kind (distinct per kind, so that one kind's handle
    /// passed as another's is never live).
    tag: usize,
    /// What the handles are, for errors ("engine", "image"...).
    kind: &'static str,
}

impl<T> Registry<T> {
    /// An empty registry whose handles end in `tag` (1..=15, one per kind).
    pub const fn new(kind: &'static str, tag: usize) -> Self {
        assert!(tag > 0 && tag < 16);
        Self {
            live: LazyLock::new(|| Mutex::new(HashMap::new())),
            next: AtomicUsize::new(0x100),
            tag,
            kind,
        }
    }

    /// Registers `value` and returns its handle.
    pub fn insert<H>(&self, value: T) -> *mut H {
        let token = self.next.fetch_add(1, Ordering::Relaxed) << 4 | self.tag;
        self.live.lock().insert(token, Arc::new(value));
        token as *mut H
    }

    /// The live object behind `p` (kept alive for the duration of the call); `what` names the
    /// argument in errors.
    pub fn get<H>(&self, p: *const H, what: &str) -> FfiResult<Arc<T>> {
        non_null(p, what)?;
        let found = self.live.lock().get(&(p as usize)).cloned();
        found.ok_or_else(|| self.not_live(what))
    }

    /// Removes the object behind `p`; it is freed (outside the registry's lock) when the last
    /// call using it returns.
    pub fn remove<H>(&self, p: *const H, what: &str) -> FfiResult<Arc<T>> {
        non_null(p, what)?;
        let removed = self.live.lock().remove(&(p as usize));
        removed.ok_or_else(|| self.not_live(what))
    }

    fn not_live(&self, what: &str) -> FfiError {
        FfiError::new(
            FluxResult::InvalidHandle,
            format!(
                "{what} is not a live {} (destroyed or never created)",
                self.kind
            ),
        )
    }
}

static ENGINES: Registry<Handle> = Registry::new("engine", 1);

/// Registers an engine and returns its C handle.
pub fn register(handle: Handle) -> *mut FluxEngine {
    ENGINES.insert(handle)
}

/// The live engine behind `p` (kept alive for the duration of the call).
pub fn engine(p: *const FluxEngine) -> FfiResult<Arc<Handle>> {
    ENGINES.get(p, "engine")
}

/// Removes an engine from the registry; it is freed when the last call using it returns.
pub fn unregister(p: *const FluxEngine) -> FfiResult<Arc<Handle>> {
    ENGINES.remove(p, "engine")
}
