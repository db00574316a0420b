//! The CUDA side of GPU interop: importing the host's memory and semaphore with the driver's
//! external-memory API, and the pitched copy + signal on a stream of the engine's context.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::cuda_backend::cudarc::driver::{
    sys, CudaContext, CudaEvent, CudaStream, DevicePtr, DevicePtrMut, DriverError,
};
use candle_core::{CudaDevice, Device, Storage, Tensor};

use super::{GpuImageDesc, GpuMemory, GpuSemaphore};
use crate::error::{Error, Result};

/// The imported destination: a device pointer to the first pixel, and what to release.
pub(super) struct Target {
    ctx: Arc<CudaContext>,
    /// Our own stream: a write never waits behind the worker's next job.
    stream: Arc<CudaStream>,
    dst: sys::CUdeviceptr,
    /// The external memory and the mapping of it (`dst` − offset), when imported.
    external: Option<(sys::CUexternalMemory, sys::CUdeviceptr)>,
    semaphore: Option<(sys::CUexternalSemaphore, GpuSemaphore)>,
}

// SAFETY: the handles are plain driver handles, usable from any thread bound to the context.
unsafe impl Send for Target {}
// SAFETY: as above; the driver serialises use of one handle from several threads.
unsafe impl Sync for Target {}

fn driver(what: &str, r: sys::CUresult) -> Result<()> {
    r.result()
        .map_err(|e| Error::Compute(candle_core::Error::Msg(format!("{what}: {e:?}"))))
}

/// A failed call of cudarc's safe API as an engine error.
fn wrap(e: DriverError) -> Error {
    Error::Compute(candle_core::Error::wrap(e))
}

/// A driver type made only of integers, pointers and unions of them (no Rust enum, whose zero
/// may be no variant: the descriptors holding `CUmemorytype` or a handle type are built field
/// by field instead), so all zero bytes is a valid value.
///
/// # Safety
/// Only for types valid when zeroed.
unsafe trait Zeroable: Sized {}

// SAFETY: integers and unions of an integer and a pointer, nested in plain structs.
unsafe impl Zeroable for sys::CUDA_EXTERNAL_SEMAPHORE_SIGNAL_PARAMS {}
// SAFETY: as above.
unsafe impl Zeroable for sys::CUDA_EXTERNAL_SEMAPHORE_WAIT_PARAMS {}
// SAFETY: a union of an int, two pointers and a pointer.
unsafe impl Zeroable for sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC_st__bindgen_ty_1 {}
// SAFETY: as above.
unsafe impl Zeroable for sys::CUDA_EXTERNAL_SEMAPHORE_HANDLE_DESC_st__bindgen_ty_1 {}

/// A zeroed driver value (the driver asks for reserved fields to be zero).
fn zeroed<T: Zeroable>() -> T {
    // SAFETY: `Zeroable` types are valid when all bytes are zero.
    unsafe { MaybeUninit::<T>::zeroed().assume_init() }
}

/// Host memory page-locked for the device's copies (`cuMemHostRegister`): copies from it are
/// DMA transfers that need no staging buffer and can overlap compute. Unlocked when dropped.
pub(crate) struct Pinned {
    ctx: Arc<CudaContext>,
    ptr: *mut std::ffi::c_void,
}

// SAFETY: the guard only holds an address and the context to unregister it with; the driver
// accepts both from any thread bound to the context.
unsafe impl Send for Pinned {}
// SAFETY: as above; the guard has no methods that use it through a shared reference.
unsafe impl Sync for Pinned {}

impl Pinned {
    /// Page-locks `bytes` for copies to `device`; `None` when the driver refuses (too much
    /// locked memory, an empty region): the copies then go through pageable memory, only slower.
    ///
    /// # Safety
    /// `bytes` must stay allocated, and not move, until the guard is dropped.
    pub(crate) unsafe fn new(device: &CudaDevice, bytes: &[u8]) -> Option<Pinned> {
        if bytes.is_empty() {
            return None;
        }
        let ctx = device.cuda_stream().context().clone();
        ctx.bind_to_thread().ok()?;
        let ptr = bytes.as_ptr() as *mut std::ffi::c_void;
        // SAFETY: `bytes` is live host memory that the caller keeps in place past the guard;
        // flags 0: portable to this context only.
        let r = unsafe { sys::cuMemHostRegister_v2(ptr, bytes.len(), 0) };
        match r {
            sys::CUresult::CUDA_SUCCESS => Some(Pinned { ctx, ptr }),
            r => {
                log::debug!("page-locking {} bytes failed: {r:?}", bytes.len());
                None
            }
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: `ptr` was registered by `new` and is unregistered once, here, while the memory
        // is still allocated (the caller's promise).
        let _ = unsafe { sys::cuMemHostUnregister(self.ptr) };
    }
}

/// The work the calling thread has queued on a device so far, for another thread to wait for.
///
/// The engine's CUDA device queues each thread's work on that thread's default stream (candle's
/// `CudaDevice::new` uses CUDA's per-thread streams), and those streams do not wait for each
/// other: a block the prefetch thread uploads overlaps the worker's compute, and the worker
/// waits for the upload's fence before reading the block. A fence dropped unwaited (a pass that
/// stopped early) waits on the host, so that no copy still reads host memory freed next.
pub(crate) struct Fence(Option<CudaEvent>);

impl Fence {
    /// Marks the work queued on `device` by this thread; nothing to mark on other devices.
    pub(crate) fn record(device: &Device) -> Result<Fence> {
        match device {
            Device::Cuda(d) => {
                let event = d.cuda_stream().record_event(None).map_err(wrap)?;
                Ok(Fence(Some(event)))
            }
            _ => Ok(Fence(None)),
        }
    }

    /// Makes the work this thread queues on `device` from now on wait for the marked work.
    pub(crate) fn wait(mut self, device: &Device) -> Result<()> {
        match (self.0.take(), device) {
            (Some(event), Device::Cuda(d)) => d.cuda_stream().wait(&event).map_err(wrap),
            _ => Ok(()),
        }
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        if let Some(event) = self.0.take() {
            let _ = event.synchronize();
        }
    }
}

/// Free memory on `device`, in bytes.
pub(crate) fn free_memory(device: &CudaDevice) -> Result<u64> {
    let ctx = device.cuda_stream().context().clone();
    let (free, _total) = ctx.mem_get_info().map_err(wrap)?;
    Ok(free as u64)
}

pub(super) fn uuid(device: &CudaDevice) -> Result<[u8; 16]> {
    let ctx = device.cuda_stream().context().clone();
    let id = ctx.uuid().map_err(wrap)?;
    Ok(id.bytes.map(|b| b as u8))
}

impl Target {
    pub(super) fn import(device: &CudaDevice, desc: &GpuImageDesc) -> Result<Self> {
        let ctx = device.cuda_stream().context().clone();
        ctx.bind_to_thread().map_err(wrap)?;
        if let Some(want) = desc.device_uuid {
            let have = uuid(device)?;
            if want != have {
                return Err(Error::invalid(format!(
                    "the GPU image's device UUID {} is not the engine's CUDA device ({})",
                    hex(&want),
                    hex(&have)
                )));
            }
        }
        let stream = ctx.new_stream().map_err(wrap)?;
        let mut target = Target {
            ctx,
            stream,
            dst: 0,
            external: None,
            semaphore: None,
        };
        target.dst = match desc.memory {
            GpuMemory::CudaPointer(ptr) => {
                check_pointer(ptr, desc, &target.ctx)?;
                ptr
            }
            _ => {
                let (mem, base) = import_memory(&desc.memory)?;
                target.external = Some((mem, base));
                base + desc.offset
            }
        };
        if let Some(sem) = desc.semaphore {
            target.semaphore = Some((import_semaphore(sem)?, sem));
        }
        Ok(target)
    }

    pub(super) fn write(&self, src: &Tensor, desc: &GpuImageDesc, value: u64) -> Result<()> {
        self.ctx.bind_to_thread().map_err(wrap)?;
        let (storage, layout) = src.storage_and_layout();
        let Storage::Cuda(cuda) = &*storage else {
            return Err(Error::invalid("the result's pixels are not on the GPU"));
        };
        let row = desc.width * desc.format.bytes() as usize;
        // The pixels are u8 or f16; copy bytes from the tensor's first element.
        let (src_ptr, _guard) = match desc.format {
            super::GpuPixelFormat::Rgba8 => {
                let s = cuda.as_cuda_slice::<u8>()?;
                let (p, g) = s.device_ptr(&self.stream);
                (p + layout.start_offset() as u64, g)
            }
            super::GpuPixelFormat::Rgba16F => {
                let s = cuda.as_cuda_slice::<half::f16>()?;
                let (p, g) = s.device_ptr(&self.stream);
                (p + 2 * layout.start_offset() as u64, g)
            }
        };
        let stream = self.stream.cu_stream();
        copy_rows(
            (src_ptr, row),
            (self.dst, desc.row_pitch as usize),
            row,
            desc.height,
            stream,
        )?;
        if let Some((sem, kind)) = self.semaphore {
            let mut params: sys::CUDA_EXTERNAL_SEMAPHORE_SIGNAL_PARAMS = zeroed();
            if kind.counts() {
                params.params.fence.value = value;
            }
            // SAFETY: a live imported semaphore, params built above, the stream of our context.
            unsafe {
                driver(
                    "signalling the semaphore",
                    sys::cuSignalExternalSemaphoresAsync(&sem, &params, 1, stream),
                )?
            };
        }
        // Returning after the copy keeps the source alive long enough and makes errors synchronous.
        self.stream.synchronize().map_err(wrap)
    }

    /// The image's pixels, rows tightly packed, once the semaphore allows (see `GpuImage::read`).
    pub(super) fn read(
        &self,
        desc: &GpuImageDesc,
        value: u64,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        self.ctx.bind_to_thread().map_err(wrap)?;
        let row = desc.width * desc.format.bytes() as usize;
        let mut staging = self
            .stream
            .alloc_zeros::<u8>(row * desc.height)
            .map_err(wrap)?;
        let stream = self.stream.cu_stream();
        if let Some((sem, kind)) = self.semaphore {
            let mut params: sys::CUDA_EXTERNAL_SEMAPHORE_WAIT_PARAMS = zeroed();
            if kind.counts() {
                params.params.fence.value = value;
            }
            // SAFETY: as for the signal: a live semaphore, params built above, our stream.
            unsafe {
                driver(
                    "waiting for the semaphore",
                    sys::cuWaitExternalSemaphoresAsync(&sem, &params, 1, stream),
                )?
            };
        }
        {
            let (dst, _guard) = staging.device_ptr_mut(&self.stream);
            copy_rows(
                (self.dst, desc.row_pitch as usize),
                (dst, row),
                row,
                desc.height,
                stream,
            )?;
        }
        // Poll rather than synchronize: a host that never signals gets an error, not a hang.
        let start = Instant::now();
        loop {
            // SAFETY: querying a live stream of our context (bound to this thread above).
            match unsafe { sys::cuStreamQuery(stream) } {
                sys::CUresult::CUDA_SUCCESS => break,
                sys::CUresult::CUDA_ERROR_NOT_READY if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                sys::CUresult::CUDA_ERROR_NOT_READY => {
                    // The queued copy still targets the staging buffer: leave it allocated.
                    std::mem::forget(staging);
                    return Err(Error::Timeout(format!(
                        "the GPU image's semaphore was not signalled within {timeout:?} (value \
                         {value}); the image stays waiting for it: signal it or destroy the image"
                    )));
                }
                r => driver("reading the GPU image", r)?,
            }
        }
        self.stream.clone_dtoh(&staging).map_err(wrap)
    }
}

/// Queues a copy of `height` rows of `row` bytes between device memory `(pointer, pitch)`s.
fn copy_rows(
    (src, src_pitch): (sys::CUdeviceptr, usize),
    (dst, dst_pitch): (sys::CUdeviceptr, usize),
    row: usize,
    height: usize,
    stream: sys::CUstream,
) -> Result<()> {
    let copy = sys::CUDA_MEMCPY2D {
        srcXInBytes: 0,
        srcY: 0,
        srcMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
        srcHost: std::ptr::null(),
        srcDevice: src,
        srcArray: std::ptr::null_mut(),
        srcPitch: src_pitch,
        dstXInBytes: 0,
        dstY: 0,
        dstMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
        dstHost: std::ptr::null_mut(),
        dstDevice: dst,
        dstArray: std::ptr::null_mut(),
        dstPitch: dst_pitch,
        WidthInBytes: row,
        Height: height,
    };
    // SAFETY: the copy's pointers are device memory of at least `height` rows of its pitches
    // (checked at import), on a live stream.
    unsafe {
        driver(
            "copying the GPU image's rows",
            sys::cuMemcpy2DAsync_v2(&copy, stream),
        )
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: the handles were imported by this target and are destroyed once, here.
        unsafe {
            if let Some((sem, _)) = self.semaphore {
                let _ = sys::cuDestroyExternalSemaphore(sem);
            }
            if let Some((mem, base)) = self.external {
                let _ = sys::cuMemFree_v2(base);
                let _ = sys::cuDestroyExternalMemory(mem);
            }
        }
    }
}

/// A host CUDA pointer must be device memory of this device, with the image inside its allocation.
fn check_pointer(ptr: u64, desc: &GpuImageDesc, ctx: &CudaContext) -> Result<()> {
    let invalid = |why: String| Error::invalid(format!("cuda_pointer {ptr:#x} {why}"));
    let mut kind: u32 = 0;
    // SAFETY: the attribute is a u32 written to a live local.
    let r = unsafe {
        sys::cuPointerGetAttribute(
            &mut kind as *mut u32 as *mut _,
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
            ptr,
        )
    };
    if r != sys::CUresult::CUDA_SUCCESS || kind != sys::CUmemorytype::CU_MEMORYTYPE_DEVICE as u32 {
        return Err(invalid("is not CUDA device memory".into()));
    }
    let mut ordinal: i32 = -1;
    // SAFETY: the attribute is an i32 written to a live local.
    let r = unsafe {
        sys::cuPointerGetAttribute(
            &mut ordinal as *mut i32 as *mut _,
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
            ptr,
        )
    };
    if r != sys::CUresult::CUDA_SUCCESS || ordinal as usize != ctx.ordinal() {
        return Err(invalid(format!(
            "is on device {ordinal}, not the engine's device {}",
            ctx.ordinal()
        )));
    }
    let (mut base, mut size) = (0, 0usize);
    // SAFETY: writes the range of a pointer the driver knows into two live locals.
    unsafe {
        driver(
            "cuMemGetAddressRange",
            sys::cuMemGetAddressRange_v2(&mut base, &mut size, ptr),
        )?
    };
    let end = ptr - base + desc.extent();
    if end > size as u64 {
        return Err(invalid(format!(
            "has {} bytes after it in its allocation; the image needs {}",
            size as u64 - (ptr - base),
            desc.extent()
        )));
    }
    Ok(())
}

/// Imports the host's allocation and maps all of it; returns the handle and the mapping.
fn import_memory(memory: &GpuMemory) -> Result<(sys::CUexternalMemory, sys::CUdeviceptr)> {
    use sys::CUexternalMemoryHandleType as T;
    let mut handle: sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC_st__bindgen_ty_1 = zeroed();
    let (type_, size, dedicated) = match *memory {
        GpuMemory::OpaqueFd {
            fd,
            size,
            dedicated,
        } => {
            handle.fd = duplicate(fd)?;
            (T::CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD, size, dedicated)
        }
        GpuMemory::OpaqueWin32 {
            handle: win32,
            size,
            dedicated,
        } => {
            handle.win32.handle = win32 as *mut _;
            (
                T::CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_WIN32,
                size,
                dedicated,
            )
        }
        GpuMemory::D3D12Resource {
            handle: win32,
            size,
        } => {
            handle.win32.handle = win32 as *mut _;
            // D3D12 resources are always dedicated.
            (T::CU_EXTERNAL_MEMORY_HANDLE_TYPE_D3D12_RESOURCE, size, true)
        }
        GpuMemory::CudaPointer(_) => unreachable!("CUDA pointers are not imported"),
    };
    let h = sys::CUDA_EXTERNAL_MEMORY_HANDLE_DESC {
        type_,
        handle,
        size,
        flags: match dedicated {
            true => sys::CUDA_EXTERNAL_MEMORY_DEDICATED,
            false => 0,
        },
        reserved: [0; 16],
    };
    let mut mem = MaybeUninit::uninit();
    // SAFETY: `h` is a complete descriptor; `mem` receives the handle.
    let r = unsafe { sys::cuImportExternalMemory(mem.as_mut_ptr(), &h) };
    if h.type_ == T::CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD {
        // SAFETY: an fd descriptor's union holds the fd.
        let fd = unsafe { h.handle.fd };
        released_on(r, fd);
    }
    driver("importing the host's memory", r)?;
    // SAFETY: the import succeeded, so the driver wrote the handle.
    let mem = unsafe { mem.assume_init() };
    let b = sys::CUDA_EXTERNAL_MEMORY_BUFFER_DESC {
        offset: 0,
        size,
        flags: 0,
        reserved: [0; 16],
    };
    let mut ptr = 0;
    // SAFETY: `mem` is the live import, `b` a complete descriptor, `ptr` a live local.
    let mapped = unsafe { sys::cuExternalMemoryGetMappedBuffer(&mut ptr, mem, &b) };
    if let Err(e) = driver("mapping the host's memory", mapped) {
        // SAFETY: the import is ours and unused (the mapping failed).
        unsafe { sys::cuDestroyExternalMemory(mem) };
        return Err(e);
    }
    Ok((mem, ptr))
}

fn import_semaphore(sem: GpuSemaphore) -> Result<sys::CUexternalSemaphore> {
    use sys::CUexternalSemaphoreHandleType as T;
    let mut handle: sys::CUDA_EXTERNAL_SEMAPHORE_HANDLE_DESC_st__bindgen_ty_1 = zeroed();
    let type_ = match sem {
        GpuSemaphore::OpaqueFd(fd) => {
            handle.fd = duplicate(fd)?;
            T::CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD
        }
        GpuSemaphore::TimelineFd(fd) => {
            handle.fd = duplicate(fd)?;
            T::CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_TIMELINE_SEMAPHORE_FD
        }
        GpuSemaphore::OpaqueWin32(win32) => {
            handle.win32.handle = win32 as *mut _;
            T::CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_WIN32
        }
        GpuSemaphore::TimelineWin32(win32) => {
            handle.win32.handle = win32 as *mut _;
            T::CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_TIMELINE_SEMAPHORE_WIN32
        }
        GpuSemaphore::D3D12Fence(win32) => {
            handle.win32.handle = win32 as *mut _;
            T::CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_D3D12_FENCE
        }
    };
    let h = sys::CUDA_EXTERNAL_SEMAPHORE_HANDLE_DESC {
        type_,
        handle,
        flags: 0,
        reserved: [0; 16],
    };
    let mut out = MaybeUninit::uninit();
    // SAFETY: `h` is a complete descriptor; `out` receives the handle.
    let r = unsafe { sys::cuImportExternalSemaphore(out.as_mut_ptr(), &h) };
    if matches!(sem, GpuSemaphore::OpaqueFd(_) | GpuSemaphore::TimelineFd(_)) {
        // SAFETY: an fd descriptor's union holds the fd.
        let fd = unsafe { h.handle.fd };
        released_on(r, fd);
    }
    driver("importing the host's semaphore", r)?;
    // SAFETY: the import succeeded, so the driver wrote the handle.
    let handle = unsafe { out.assume_init() };
    Ok(handle)
}

/// The engine imports a duplicate of the host's fd, so the host keeps (and closes) its own
/// whatever happens; CUDA owns the duplicate once an import succeeds.
#[cfg(unix)]
fn duplicate(fd: i32) -> Result<i32> {
    use std::os::fd::{BorrowedFd, IntoRawFd};
    if fd < 0 {
        return Err(Error::invalid(format!("{fd} is not a file descriptor")));
    }
    // SAFETY: the host's fd is open for the duration of this call (the API's contract).
    let dup = unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .map_err(|e| Error::invalid(format!("file descriptor {fd}: {e}")))?;
    Ok(dup.into_raw_fd())
}

#[cfg(not(unix))]
fn duplicate(_: i32) -> Result<i32> {
    Err(Error::invalid(
        "file descriptors are POSIX handles; use a Win32 handle",
    ))
}

/// Closes our duplicate when CUDA did not take it (a failed import).
fn released_on(r: sys::CUresult, fd: i32) {
    #[cfg(unix)]
    if r != sys::CUresult::CUDA_SUCCESS {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: CUDA did not take our duplicate, which nothing else owns.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    #[cfg(not(unix))]
    let _ = (r, fd);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
