//! GPU images through the C ABI. A small Vulkan host (`ash`) exports a buffer and a binary
//! semaphore from the engine's GPU (matched by UUID) and imports them as a `FluxImage`
//! (`flux_image_import_memory`); the engine writes a finished job's result into it
//! (`flux_job_write_image`) and signals the semaphore, which the host's queue waits on before
//! comparing the pixels with the host-image result of the same job, in RGBA8 and RGBA16F. The host
//! then signals the semaphore and adds the image as a Kontext reference
//! (`flux_request_add_reference`): the edit must equal the one made from its host-memory copy.
//! Left unsignalled, the reference fails its job (read when the job starts, not at submit) with a
//! timeout after `GPU_READ_TIMEOUT`, and the image works again once the host signals it. An image
//! imported without a semaphore is written and read without waiting; a result of another size,
//! memory named with another device's UUID and a pointer that is not CUDA memory are refused.
//! That part is skipped with a message without a CUDA engine or without a Vulkan device on its
//! GPU; without a CUDA engine, any Vulkan device there is that exports fds (Mesa's CPU driver,
//! from Mesa 23) first has its exported buffer and semaphore refused by a CPU engine, its fds
//! left open.
//!
//! The error paths run on the CPU everywhere: GPU images on a CPU engine (UNSUPPORTED, with or
//! without a semaphore); descs, memory and semaphores out of range or with a `struct_size` too
//! small; RGB8, BGRA8, RGBA32F and bottom-up GPU images; forged, destroyed and NULL image handles
//! wherever an image is taken; results written into host images of another size or too small; and
//! RGBA16F host images, which receive the RGBA32F values as halves.

use std::ffi::CString;
use std::mem::offset_of;
use std::ptr;
use std::time::Instant;

use ash::vk;
use flux_core::image::GPU_READ_TIMEOUT;
use flux_engine::types::*;
use flux_engine::*;

#[path = "../../tests/support/mod.rs"]
mod support;
use support::{skip_without_gpu, tiny_dev_model, Scratch};
mod c_abi;
use c_abi::{
    copy_pixels as host_pixels, defaults, engine, host_image, image_desc, last_error,
    render_reference as render, request,
};

/// A semaphore of `kind` with `handle`.
fn semaphore(kind: FluxSemaphoreType, handle: i64) -> FluxSemaphore {
    let mut s = defaults(flux_semaphore_defaults);
    (s.handle_type, s.handle) = (kind as i32, handle);
    s
}

/// Exported memory of `kind`: `size` bytes at `handle`, on the device `uuid`.
fn memory(
    kind: FluxExternalMemoryType,
    handle: i64,
    size: u64,
    uuid: [u8; 16],
) -> FluxExternalMemory {
    let mut m = defaults(flux_external_memory_defaults);
    (m.handle_type, m.handle, m.size, m.device_uuid) = (kind as i32, handle, size, uuid);
    m
}

/// NULL for no semaphore.
fn sem_ptr(s: Option<&FluxSemaphore>) -> *const FluxSemaphore {
    s.map_or(ptr::null(), |s| s as *const FluxSemaphore)
}

/// `flux_image_create_cuda`'s result, and the image it wrote (NULL when it wrote none).
fn create_cuda(
    e: *mut FluxEngine,
    desc: &FluxImageDesc,
    pointer: u64,
    s: Option<&FluxSemaphore>,
) -> (FluxResult, *mut FluxImage) {
    let mut image = ptr::null_mut();
    // SAFETY: the C ABI as documented: pointers to live locals, handles checked by the library.
    let r = unsafe { flux_image_create_cuda(e, desc, pointer, sem_ptr(s), &mut image) };
    (r, image)
}

/// `flux_image_import_memory`'s result, and the image it wrote (NULL when it wrote none).
fn import(
    e: *mut FluxEngine,
    desc: &FluxImageDesc,
    m: &FluxExternalMemory,
    s: Option<&FluxSemaphore>,
) -> (FluxResult, *mut FluxImage) {
    let mut image = ptr::null_mut();
    // SAFETY: the C ABI as documented: pointers to live locals, handles checked by the library.
    let r = unsafe { flux_image_import_memory(e, desc, m, sem_ptr(s), &mut image) };
    (r, image)
}

/// Asserts that a call returned `code`, leaving a last error message that contains `words`.
#[track_caller]
fn refused(r: FluxResult, code: FluxResult, words: &str) {
    let message = last_error();
    assert_eq!(r, code, "{message}");
    assert!(message.contains(words), "{message:?} lacks {words:?}");
}

/// 64×48 RGBA8, rows 256 bytes apart: 12288 bytes.
fn gpu_desc() -> FluxImageDesc {
    image_desc(64, 48, FluxPixelFormat::Rgba8, 256)
}

#[test]
fn gpu_images_refuse_bad_input_and_cpu_engines() {
    use FluxResult::*;
    let e = engine(FluxDevice::Cpu).unwrap();
    let mut uuid = [0u8; 16];
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        refused(
            flux_engine_device_uuid(e, uuid.as_mut_ptr()),
            Unsupported,
            "GPU memory interop needs",
        );
        refused(
            flux_engine_device_uuid(e, ptr::null_mut()),
            NullPointer,
            "out_uuid",
        );
    }

    let d = gpu_desc();
    let sem = semaphore(FluxSemaphoreType::OpaqueFd, 101);
    let cuda = |d: &FluxImageDesc, s: Option<&FluxSemaphore>| create_cuda(e, d, 0x1000, s).0;
    // A valid image reaches the device check, with or without (NULL) a semaphore, and of either
    // GPU format: a CPU engine has no GPU memory. No image is written.
    let rgba16f = image_desc(64, 48, FluxPixelFormat::Rgba16f, 512);
    for (desc, s) in [(&d, None), (&d, Some(&sem)), (&rgba16f, None)] {
        let (r, image) = create_cuda(e, desc, 0x1000, s);
        refused(r, Unsupported, "GPU memory interop needs");
        assert!(image.is_null());
    }
    let mut image = ptr::null_mut();
    // SAFETY: the C ABI as documented: pointers to live locals (or NULL), handles checked.
    unsafe {
        let (s, p) = (ptr::null(), 0x1000);
        refused(
            flux_image_create_cuda(e, ptr::null(), p, s, &mut image),
            NullPointer,
            "desc",
        );
        refused(
            flux_image_create_cuda(e, &d, p, s, ptr::null_mut()),
            NullPointer,
            "out_image",
        );
        refused(
            flux_image_create_cuda(ptr::null_mut(), &d, p, s, &mut image),
            NullPointer,
            "engine",
        );
        let forged = 0x42 as *mut FluxEngine;
        refused(
            flux_image_create_cuda(forged, &d, p, s, &mut image),
            InvalidHandle,
            "engine",
        );
    }
    assert!(image.is_null());

    // The desc: its struct_size, a GPU format, top row first, a size and a pitch that fit.
    let bad = |change: &dyn Fn(&mut FluxImageDesc)| {
        let mut b = d;
        change(&mut b);
        cuda(&b, None)
    };
    for size in [0, 4, 27, 1 << 20] {
        refused(
            bad(&|b| b.struct_size = size),
            BadStructSize,
            "desc.struct_size",
        );
    }
    // A caller of the struct without its reserved field is still understood.
    let first = offset_of!(FluxImageDesc, reserved) as u32;
    refused(
        bad(&|b| b.struct_size = first),
        Unsupported,
        "GPU memory interop",
    );
    for format in [
        FluxPixelFormat::Rgb8,
        FluxPixelFormat::Bgra8,
        FluxPixelFormat::Rgba32f,
    ] {
        let format = format as i32;
        let r = bad(&|b| (b.format, b.row_pitch) = (format, 64 * 16));
        refused(r, InvalidArgument, "RGBA8 or");
    }
    refused(bad(&|b| b.format = 9), InvalidArgument, "desc.format 9");
    refused(bad(&|b| b.bottom_up = 1), InvalidArgument, "top row first");
    refused(bad(&|b| b.row_pitch = 255), InvalidArgument, "row_pitch");
    // RGBA16F takes 8 bytes a pixel: 256 bytes hold half a row.
    refused(
        bad(&|b| b.format = FluxPixelFormat::Rgba16f as i32),
        InvalidArgument,
        "row_pitch",
    );
    refused(bad(&|b| b.width = 0), InvalidArgument, "size");
    refused(bad(&|b| b.height = 0), InvalidArgument, "size");
    refused(
        bad(&|b| (b.width, b.row_pitch) = (16385, 1 << 20)),
        InvalidArgument,
        "16384",
    );
    refused(create_cuda(e, &d, 0, None).0, InvalidArgument, "NULL");

    // The semaphore: its struct_size, a known kind, an fd that is an fd. Every kind is read.
    let bad_sem = |change: &dyn Fn(&mut FluxSemaphore)| {
        let mut s = sem;
        change(&mut s);
        cuda(&d, Some(&s))
    };
    for size in [0, 4, 15, 1 << 20] {
        refused(
            bad_sem(&|s| s.struct_size = size),
            BadStructSize,
            "semaphore.struct_size",
        );
    }
    for kind in [-1, 5, 9] {
        refused(
            bad_sem(&|s| s.handle_type = kind),
            InvalidArgument,
            "semaphore.handle_type",
        );
    }
    for kind in [FluxSemaphoreType::OpaqueFd, FluxSemaphoreType::TimelineFd] {
        let kind = kind as i32;
        let r = bad_sem(&|s| (s.handle_type, s.handle) = (kind, 1 << 40));
        refused(r, InvalidArgument, "semaphore.handle");
    }
    for kind in [
        FluxSemaphoreType::OpaqueFd,
        FluxSemaphoreType::OpaqueWin32,
        FluxSemaphoreType::TimelineFd,
        FluxSemaphoreType::TimelineWin32,
        FluxSemaphoreType::D3D12Fence,
    ] {
        let kind = kind as i32;
        let r = bad_sem(&|s| s.handle_type = kind);
        refused(r, Unsupported, "GPU memory interop needs");
    }

    // Imported memory: its struct_size, a known kind, the device named, room for the image.
    let m = memory(FluxExternalMemoryType::OpaqueFd, 100, 48 * 256, [7; 16]);
    for s in [None, Some(&sem)] {
        let (r, image) = import(e, &d, &m, s);
        refused(r, Unsupported, "GPU memory interop needs");
        assert!(image.is_null());
    }
    let bad_mem = |change: &dyn Fn(&mut FluxExternalMemory)| {
        let mut b = m;
        change(&mut b);
        import(e, &d, &b, Some(&sem)).0
    };
    for size in [0, 4, 51, 1 << 20] {
        refused(
            bad_mem(&|b| b.struct_size = size),
            BadStructSize,
            "memory.struct_size",
        );
    }
    let first = offset_of!(FluxExternalMemory, reserved) as u32;
    refused(
        bad_mem(&|b| b.struct_size = first),
        Unsupported,
        "GPU memory interop",
    );
    for kind in [-1, 3, 9] {
        refused(
            bad_mem(&|b| b.handle_type = kind),
            InvalidArgument,
            "memory.handle_type",
        );
    }
    for kind in [
        FluxExternalMemoryType::OpaqueWin32,
        FluxExternalMemoryType::D3D12Resource,
    ] {
        let kind = kind as i32;
        refused(
            bad_mem(&|b| b.handle_type = kind),
            Unsupported,
            "GPU memory interop",
        );
    }
    refused(
        bad_mem(&|b| b.handle = 1 << 40),
        InvalidArgument,
        "memory.handle",
    );
    refused(
        bad_mem(&|b| b.device_uuid = [0; 16]),
        InvalidArgument,
        "device UUID",
    );
    refused(
        bad_mem(&|b| b.size -= 1),
        InvalidArgument,
        "needs 12288 bytes",
    );
    // The offset moves the image inside the allocation.
    refused(
        bad_mem(&|b| (b.size, b.offset) = (12288 + 64, 64)),
        Unsupported,
        "GPU memory",
    );
    let r = bad_mem(&|b| (b.size, b.offset) = (12288 + 64, 65));
    refused(r, InvalidArgument, "needs 12353 bytes");
    // The desc and semaphore are checked as for CUDA pointers.
    let bottom_up = FluxImageDesc { bottom_up: 1, ..d };
    refused(
        import(e, &bottom_up, &m, None).0,
        InvalidArgument,
        "top row first",
    );
    let bgra = FluxImageDesc {
        format: FluxPixelFormat::Bgra8 as i32,
        ..d
    };
    refused(import(e, &bgra, &m, None).0, InvalidArgument, "RGBA8 or");
    let old = FluxImageDesc {
        struct_size: 27,
        ..d
    };
    refused(
        import(e, &old, &m, None).0,
        BadStructSize,
        "desc.struct_size",
    );
    let sem_kind = FluxSemaphore {
        handle_type: 9,
        ..sem
    };
    refused(
        import(e, &d, &m, Some(&sem_kind)).0,
        InvalidArgument,
        "semaphore.handle_type",
    );
    let sem_old = FluxSemaphore {
        struct_size: 15,
        ..sem
    };
    refused(
        import(e, &d, &m, Some(&sem_old)).0,
        BadStructSize,
        "semaphore.struct_size",
    );
    // SAFETY: the C ABI as documented: pointers to live locals (or NULL), handles checked.
    unsafe {
        let s = sem_ptr(None);
        let r = flux_image_import_memory(e, &d, ptr::null(), s, &mut image);
        refused(r, NullPointer, "memory");
        let r = flux_image_import_memory(e, ptr::null(), &m, s, &mut image);
        refused(r, NullPointer, "desc");
        let r = flux_image_import_memory(e, &d, &m, s, ptr::null_mut());
        refused(r, NullPointer, "out_image");
        let r = flux_image_import_memory(0x42 as *mut FluxEngine, &d, &m, s, &mut image);
        refused(r, InvalidHandle, "engine");
        assert!(image.is_null());
        assert_eq!(flux_engine_destroy(e), FluxResult::Ok);
    }
}

#[test]
fn image_handles_are_checked_wherever_an_image_is_taken() {
    use FluxResult::*;
    let e = engine(FluxDevice::Cpu).unwrap();
    let r = request("make it blue");
    let forged = 0x42 as *mut FluxImage;
    // Another kind's live handle is no image either.
    let engine_handle = e as *mut FluxImage;
    let mut pixels = vec![90u8; 64 * 48 * 4];
    let desc = image_desc(64, 48, FluxPixelFormat::Rgba8, 64 * 4);
    let destroyed = host_image(&desc, &mut pixels).unwrap();
    // SAFETY: the C ABI as documented: live handles, pointers to live locals; forged, destroyed
    // and NULL handles are detected, never dereferenced.
    unsafe {
        assert_eq!(flux_image_destroy(destroyed), Ok);
        for image in [forged, engine_handle, destroyed] {
            refused(flux_image_destroy(image), InvalidHandle, "not a live image");
            refused(
                flux_request_add_reference(r, image, 0),
                InvalidHandle,
                "not a live image",
            );
            let init = flux_request_set_init_image(r, image, 0, 0.5);
            refused(init, InvalidHandle, "not a live image");
            refused(
                flux_job_write_image(e, 1, image, 0),
                InvalidHandle,
                "not a live image",
            );
        }
        refused(flux_image_destroy(ptr::null_mut()), NullPointer, "image");
        refused(
            flux_request_add_reference(r, ptr::null_mut(), 0),
            NullPointer,
            "image",
        );
        refused(
            flux_request_set_init_image(r, ptr::null_mut(), 0, 0.5),
            NullPointer,
            "image",
        );
        refused(
            flux_job_write_image(e, 1, ptr::null_mut(), 0),
            NullPointer,
            "image",
        );
        // The engine behind the handle passed as an image is untouched.
        let mut uuid = [0u8; 16];
        assert_eq!(flux_engine_device_uuid(e, uuid.as_mut_ptr()), Unsupported);

        // A request takes at most four references, and not beside an init image. A host image
        // may be destroyed once added: the request copied its pixels.
        let live = host_image(&desc, &mut pixels).unwrap();
        for _ in 0..4 {
            assert_eq!(
                flux_request_add_reference(r, live, 0),
                Ok,
                "{}",
                last_error()
            );
        }
        refused(
            flux_request_add_reference(r, live, 0),
            InvalidArgument,
            "at most 4",
        );
        refused(
            flux_request_set_init_image(r, live, 0, 0.5),
            InvalidArgument,
            "reference",
        );
        assert_eq!(flux_request_clear_images(r), Ok);
        assert_eq!(
            flux_request_set_init_image(r, live, 0, 0.5),
            Ok,
            "{}",
            last_error()
        );
        refused(
            flux_request_add_reference(r, live, 0),
            InvalidArgument,
            "init image",
        );
        assert_eq!(flux_image_destroy(live), Ok);
        refused(
            flux_request_add_reference(r, live, 0),
            InvalidHandle,
            "not a live image",
        );
        assert_eq!(flux_request_destroy(r), Ok);
        assert_eq!(flux_engine_destroy(e), Ok);
    }
}

#[test]
fn results_go_into_host_images_of_their_size_in_any_format() {
    use FluxResult::*;
    let s = Scratch::new("gpu-interop-host");
    tiny_dev_model(&s.0.join("model"));
    let e = engine(FluxDevice::Cpu).unwrap();
    let job = render(
        e,
        &CString::new(s.0.join("model").to_str().unwrap()).unwrap(),
    );
    let req = support::reference_request();
    let (w, h) = (req.width as u32, req.height as u32);
    assert_eq!((w, h), (64, 48));
    let write = |image: *mut FluxImage, job: FluxJob| {
        // SAFETY: the C ABI as documented: live handles.
        unsafe { flux_job_write_image(e, job, image, 0) }
    };
    let mut big = vec![0u8; 128 * 96 * 16];
    for (width, height) in [(48, 48), (64, 32), (128, 96), (w + 1, h)] {
        let desc = image_desc(width, height, FluxPixelFormat::Rgba8, (width * 4) as u64);
        let image = host_image(&desc, &mut big).unwrap();
        refused(write(image, job), InvalidArgument, "the result is 64x48");
        // SAFETY: the C ABI as documented: a live handle.
        assert_eq!(unsafe { flux_image_destroy(image) }, Ok);
    }
    // Memory one byte short of the image is refused when the image is made.
    let desc = image_desc(w, h, FluxPixelFormat::Rgba8, (w * 4) as u64);
    let short = host_image(&desc, &mut big[..(w * h * 4) as usize - 1]);
    let Err((code, message)) = short else {
        panic!("an image larger than its memory was made")
    };
    assert_eq!(code, BufferTooSmall, "{message}");
    let image = host_image(&desc, &mut big[..(w * h * 4) as usize]).unwrap();
    refused(write(image, job + 1000), UnknownJob, "");
    refused(write(image, job), Ok, "");
    // SAFETY: the C ABI as documented: live handles.
    unsafe {
        refused(
            flux_job_write_image(ptr::null_mut(), job, image, 0),
            NullPointer,
            "engine",
        );
        assert_eq!(flux_image_destroy(image), Ok);
    }

    // RGBA16F host images (once GPU images only) receive the RGBA32F values as halves.
    let halves = host_pixels(e, job, FluxPixelFormat::Rgba16f, 8);
    let floats = host_pixels(e, job, FluxPixelFormat::Rgba32f, 16);
    assert_halves_match(&halves, &floats);

    // A host reference edits the same way every time, whatever became of its image.
    let rgba8 = host_pixels(e, job, FluxPixelFormat::Rgba8, 4);
    let first = edit_from_host(e, &rgba8);
    assert_eq!(first.len(), (w * h * 3) as usize);
    assert_eq!(first, edit_from_host(e, &rgba8));
    // SAFETY: the C ABI as documented: a live handle.
    unsafe { assert_eq!(flux_engine_destroy(e), Ok) };
}

/// Asserts that RGBA16F `halves` hold the RGBA32F `floats` to within a half's precision.
fn assert_halves_match(halves: &[u8], floats: &[u8]) {
    assert_eq!(halves.len() * 2, floats.len());
    let want = floats
        .chunks(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()));
    let got = halves
        .chunks(2)
        .map(|c| f16_to_f32(u16::from_ne_bytes([c[0], c[1]])));
    for (i, (g, w)) in got.zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-3, "value {i}: {g} vs {w}");
    }
}

#[test]
fn a_vulkan_buffer_receives_the_pixels_and_the_semaphore() {
    let Ok(e) = engine(FluxDevice::Cuda) else {
        let why = last_error();
        vulkan_exports_reach_a_cpu_engine_untouched();
        skip_without_gpu(&format!("(GPU part) no CUDA engine ({why})"));
        return;
    };
    let mut uuid = [0u8; 16];
    assert_eq!(
        // SAFETY: the C ABI as documented: live handles, pointers to live locals.
        unsafe { flux_engine_device_uuid(e, uuid.as_mut_ptr()) },
        FluxResult::Ok
    );
    let vk = match Vulkan::on_device(Some(uuid)) {
        Ok(vk) => vk,
        Err(why) => {
            skip_without_gpu(&format!("no Vulkan device for the engine's GPU: {why}"));
            // SAFETY: the C ABI as documented: live handles, pointers to live locals.
            unsafe { flux_engine_destroy(e) };
            return;
        }
    };
    let s = Scratch::new("gpu-interop");
    tiny_dev_model(&s.0.join("model"));
    let job = render(
        e,
        &CString::new(s.0.join("model").to_str().unwrap()).unwrap(),
    );
    let req = support::reference_request();
    let (w, h) = (req.width, req.height);
    let rgba8 = host_pixels(e, job, FluxPixelFormat::Rgba8, 4);
    let from_host = edit_from_host(e, &rgba8);

    // A CUDA pointer must be CUDA memory of the engine's device.
    let d = image_desc(w as u32, h as u32, FluxPixelFormat::Rgba8, (w * 4) as u64);
    let (r, image) = create_cuda(e, &d, 0x1000, None);
    refused(r, FluxResult::InvalidArgument, "is not CUDA device memory");
    assert!(image.is_null());

    for (format, bpp) in [(FluxPixelFormat::Rgba8, 4), (FluxPixelFormat::Rgba16f, 8)] {
        // A pitch wider than a row, as renderers align rows.
        let pitch = (w * bpp).next_multiple_of(256);
        let exported = vk.exportable_buffer(pitch * h, true);
        let d = image_desc(w as u32, h as u32, format, pitch as u64);
        let fd = FluxExternalMemoryType::OpaqueFd;
        let m = memory(fd, exported.fd as i64, exported.size, uuid);
        let sem = semaphore(FluxSemaphoreType::OpaqueFd, exported.semaphore_fd as i64);
        let (r, image) = import(e, &d, &m, Some(&sem));
        assert_eq!(r, FluxResult::Ok, "{}", last_error());
        // The engine imported duplicates: the host's fds are still its own to close.
        exported.close_fds();
        let write = || {
            // SAFETY: the C ABI as documented: live handles.
            let r = unsafe { flux_job_write_image(e, job, image, 0) };
            assert_eq!(r, FluxResult::Ok, "{}", last_error());
        };
        write();
        let got = vk.read(&exported, pitch * h, true);
        assert_pixels(e, job, &got, pitch, bpp);
        // The same image read back as a Kontext reference, once the host signals it, edits
        // exactly like its host-memory copy.
        vk.signal(&exported);
        assert_eq!(
            edit(e, image).expect("the edit from the GPU image"),
            from_host
        );
        if bpp == 4 {
            // The reference is read when the job starts: never signalled, the submit succeeds
            // and the job fails once the engine gave up waiting.
            let start = Instant::now();
            let failed = edit(e, image).expect_err("a job whose reference is never signalled");
            assert!(start.elapsed() >= GPU_READ_TIMEOUT, "{:?}", start.elapsed());
            assert!(failed.contains("not signalled within"), "{failed}");
            // Signalled late, the image serves again: the pending read completes, then a new
            // result is written and signalled.
            vk.signal(&exported);
            write();
            let got = vk.read(&exported, pitch * h, true);
            assert_pixels(e, job, &got, pitch, bpp);
        }
        // SAFETY: the C ABI as documented: a live handle.
        unsafe { assert_eq!(flux_image_destroy(image), FluxResult::Ok) };
        vk.free(exported);
    }

    // Without a semaphore (NULL), the pixels are there once the write returns, and a reference
    // is read without waiting.
    let pitch = w * 4;
    let exported = vk.exportable_buffer(pitch * h, false);
    let fd = || FluxExternalMemoryType::OpaqueFd;
    let m = memory(fd(), exported.fd as i64, exported.size, uuid);
    // Memory named with another device's UUID is refused, the host's fd left open.
    let other = memory(fd(), exported.fd as i64, exported.size, uuid.map(|b| !b));
    refused(
        import(e, &d, &other, None).0,
        FluxResult::InvalidArgument,
        "device UUID",
    );
    assert_fd_open(exported.fd);
    // A GPU image of another size than the result is refused when written. (The memory is
    // imported again afterwards: a host may import it any number of times.)
    let small = image_desc(
        w as u32 - 16,
        h as u32,
        FluxPixelFormat::Rgba8,
        pitch as u64,
    );
    let (r, wrong) = import(e, &small, &m, None);
    assert_eq!(r, FluxResult::Ok, "{}", last_error());
    // SAFETY: the C ABI as documented: live handles.
    unsafe {
        let r = flux_job_write_image(e, job, wrong, 0);
        refused(r, FluxResult::InvalidArgument, "but the GPU image is");
        assert_eq!(flux_image_destroy(wrong), FluxResult::Ok);
    }
    let (r, image) = import(e, &d, &m, None);
    assert_eq!(r, FluxResult::Ok, "{}", last_error());
    exported.close_fds();
    // SAFETY: the C ABI as documented: live handles.
    let r = unsafe { flux_job_write_image(e, job, image, 0) };
    assert_eq!(r, FluxResult::Ok, "{}", last_error());
    assert_pixels(e, job, &vk.read(&exported, pitch * h, false), pitch, 4);
    assert_eq!(
        edit(e, image).expect("the edit from the GPU image"),
        from_host
    );
    // SAFETY: the C ABI as documented: live handles.
    unsafe { assert_eq!(flux_image_destroy(image), FluxResult::Ok) };
    vk.free(exported);
    // SAFETY: the C ABI as documented: a live handle.
    unsafe { assert_eq!(flux_engine_destroy(e), FluxResult::Ok) };
}

/// Asserts that `got`, rows `pitch` bytes apart, holds the job's result in RGBA8 (`bpp` 4) or
/// RGBA16F (`bpp` 8), as written into host images.
fn assert_pixels(e: *mut FluxEngine, job: FluxJob, got: &[u8], pitch: usize, bpp: usize) {
    let w = support::reference_request().width;
    let rows = got.chunks(pitch).map(|r| &r[..w * bpp]);
    let got: Vec<u8> = rows.flatten().copied().collect();
    match bpp {
        4 => assert_eq!(got, host_pixels(e, job, FluxPixelFormat::Rgba8, 4)),
        _ => assert_halves_match(&got, &host_pixels(e, job, FluxPixelFormat::Rgba32f, 16)),
    }
}

#[track_caller]
fn assert_fd_open(fd: i32) {
    assert!(
        std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok(),
        "fd {fd} was closed"
    );
}

/// The RGB8 result of a 2-step edit of `reference`, or the job's error when it failed.
fn edit(e: *mut FluxEngine, reference: *mut FluxImage) -> Result<Vec<u8>, String> {
    let r = request("the same scene at night");
    let (mut job, mut state) = (0, -1);
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        assert_eq!(
            flux_request_add_reference(r, reference, 0),
            FluxResult::Ok,
            "{}",
            last_error()
        );
        assert_eq!(flux_request_set_reference_snap(r, false), FluxResult::Ok);
        assert_eq!(flux_request_set_steps(r, 2), FluxResult::Ok);
        assert_eq!(flux_request_set_t5_length(r, 16), FluxResult::Ok);
        assert_eq!(flux_request_set_seed(r, 7), FluxResult::Ok);
        assert_eq!(
            flux_engine_submit(e, r, &mut job),
            FluxResult::Ok,
            "{}",
            last_error()
        );
        assert_eq!(flux_request_destroy(r), FluxResult::Ok);
        assert_eq!(flux_job_wait(e, job, 600_000, &mut state), FluxResult::Ok);
    }
    let result = match state {
        s if s == FluxJobState::Succeeded as i32 => {
            Ok(host_pixels(e, job, FluxPixelFormat::Rgb8, 3))
        }
        s => {
            assert_eq!(s, FluxJobState::Failed as i32);
            // SAFETY: the C ABI as documented: a live handle.
            assert_eq!(unsafe { flux_job_error(e, job) }, FluxResult::JobFailed);
            Err(last_error())
        }
    };
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe { assert_eq!(flux_job_release(e, job), FluxResult::Ok) };
    result
}

/// [`edit`] of a host image over `rgba8`, the reference's size, destroyed once added (the
/// request keeps a copy of host pixels).
fn edit_from_host(e: *mut FluxEngine, rgba8: &[u8]) -> Vec<u8> {
    let req = support::reference_request();
    let (w, h) = (req.width as u32, req.height as u32);
    let mut pixels = rgba8.to_vec();
    let image = host_image(
        &image_desc(w, h, FluxPixelFormat::Rgba8, (w * 4) as u64),
        &mut pixels,
    );
    let image = image.unwrap();
    let r = request("the same scene at night");
    let (mut job, mut state) = (0, -1);
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        assert_eq!(
            flux_request_add_reference(r, image, 0),
            FluxResult::Ok,
            "{}",
            last_error()
        );
        assert_eq!(flux_image_destroy(image), FluxResult::Ok);
        pixels.fill(0);
        assert_eq!(flux_request_set_reference_snap(r, false), FluxResult::Ok);
        assert_eq!(flux_request_set_steps(r, 2), FluxResult::Ok);
        assert_eq!(flux_request_set_t5_length(r, 16), FluxResult::Ok);
        assert_eq!(flux_request_set_seed(r, 7), FluxResult::Ok);
        assert_eq!(
            flux_engine_submit(e, r, &mut job),
            FluxResult::Ok,
            "{}",
            last_error()
        );
        assert_eq!(flux_request_destroy(r), FluxResult::Ok);
        assert_eq!(flux_job_wait(e, job, 600_000, &mut state), FluxResult::Ok);
        assert_eq!(state, FluxJobState::Succeeded as i32, "{}", last_error());
    }
    let pixels = host_pixels(e, job, FluxPixelFormat::Rgb8, 3);
    // SAFETY: the C ABI as documented: live handles.
    unsafe { assert_eq!(flux_job_release(e, job), FluxResult::Ok) };
    pixels
}

/// Without a CUDA engine, the Vulkan host still runs on any Vulkan device there is (Mesa's CPU
/// driver in CI): its exported buffer and semaphore reach a CPU engine, which refuses them with
/// UNSUPPORTED (with the semaphore or without) and leaves the host's fds open.
fn vulkan_exports_reach_a_cpu_engine_untouched() {
    let vk = match Vulkan::on_device(None) {
        Ok(vk) => vk,
        Err(why) => return eprintln!("SKIPPED (Vulkan part): {why}"),
    };
    let exported = vk.exportable_buffer(64 * 4 * 48, true);
    let e = engine(FluxDevice::Cpu).unwrap();
    let d = image_desc(64, 48, FluxPixelFormat::Rgba8, 256);
    let fd = FluxExternalMemoryType::OpaqueFd;
    let m = memory(fd, exported.fd as i64, exported.size, vk.uuid);
    let sem = semaphore(FluxSemaphoreType::OpaqueFd, exported.semaphore_fd as i64);
    for s in [Some(&sem), None] {
        let (r, image) = import(e, &d, &m, s);
        refused(r, FluxResult::Unsupported, "GPU memory interop needs");
        assert!(image.is_null());
    }
    assert_fd_open(exported.fd);
    assert_fd_open(exported.semaphore_fd);
    exported.close_fds();
    vk.free(exported);
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe { assert_eq!(flux_engine_destroy(e), FluxResult::Ok) };
}

/// IEEE half to f32 (normal numbers and zero are all the pixels hold).
fn f16_to_f32(h: u16) -> f32 {
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f32 / 1024.0;
    match exp {
        0 => mant * 2f32.powi(-14),
        _ => (1.0 + mant) * 2f32.powi(exp - 15),
    }
}

/// The Vulkan side of the host: an instance and a device on the engine's GPU.
struct Vulkan {
    _entry: ash::Entry,
    instance: ash::Instance,
    physical: vk::PhysicalDevice,
    device: ash::Device,
    uuid: [u8; 16],
    queue: vk::Queue,
    family: u32,
    memory_fd: ash::khr::external_memory_fd::Device,
    semaphore_fd: ash::khr::external_semaphore_fd::Device,
}

/// An exportable device-local buffer, its memory and maybe a semaphore, with their fds (the
/// semaphore's -1 when there is none).
struct Exported {
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    size: u64,
    fd: i32,
    semaphore: vk::Semaphore,
    semaphore_fd: i32,
}

impl Exported {
    fn close_fds(&self) {
        use std::os::fd::{FromRawFd, OwnedFd};
        for fd in [self.fd, self.semaphore_fd] {
            if fd >= 0 {
                // SAFETY: fds this host was given by Vulkan and still owns, closed once.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
}

impl Vulkan {
    /// A device on the GPU with `uuid`, or on the first Vulkan device there is.
    fn on_device(uuid: Option<[u8; 16]>) -> Result<Self, String> {
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos.
        unsafe {
            let entry = ash::Entry::load().map_err(|e| format!("no Vulkan loader: {e}"))?;
            let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_1);
            let instance = entry
                .create_instance(
                    &vk::InstanceCreateInfo::default().application_info(&app),
                    None,
                )
                .map_err(|e| format!("vkCreateInstance: {e}"))?;
            let physical = instance
                .enumerate_physical_devices()
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|&pd| {
                    let mut id = vk::PhysicalDeviceIDProperties::default();
                    let mut props = vk::PhysicalDeviceProperties2::default().push_next(&mut id);
                    instance.get_physical_device_properties2(pd, &mut props);
                    uuid.is_none_or(|u| u == id.device_uuid)
                })
                .ok_or("no Vulkan device (with the engine's UUID)")?;
            let mut id = vk::PhysicalDeviceIDProperties::default();
            let mut props = vk::PhysicalDeviceProperties2::default().push_next(&mut id);
            instance.get_physical_device_properties2(physical, &mut props);
            let uuid = id.device_uuid;
            let family = instance
                .get_physical_device_queue_family_properties(physical)
                .iter()
                .position(|q| {
                    q.queue_flags
                        .intersects(vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE)
                })
                .ok_or("no graphics or compute queue")? as u32;
            let extensions = [
                ash::khr::external_memory_fd::NAME.as_ptr(),
                ash::khr::external_semaphore_fd::NAME.as_ptr(),
            ];
            let queues = [vk::DeviceQueueCreateInfo::default()
                .queue_family_index(family)
                .queue_priorities(&[1.0])];
            let info = vk::DeviceCreateInfo::default()
                .queue_create_infos(&queues)
                .enabled_extension_names(&extensions);
            let device = instance
                .create_device(physical, &info, None)
                .map_err(|e| format!("vkCreateDevice with external fd extensions: {e}"))?;
            Ok(Self {
                queue: device.get_device_queue(family, 0),
                memory_fd: ash::khr::external_memory_fd::Device::new(&instance, &device),
                semaphore_fd: ash::khr::external_semaphore_fd::Device::new(&instance, &device),
                _entry: entry,
                instance,
                physical,
                device,
                uuid,
                family,
            })
        }
    }

    fn memory_type(&self, bits: u32, flags: vk::MemoryPropertyFlags) -> u32 {
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos.
        let props = unsafe {
            self.instance
                .get_physical_device_memory_properties(self.physical)
        };
        (0..props.memory_type_count)
            .find(|&i| {
                bits & (1 << i) != 0
                    && props.memory_types[i as usize]
                        .property_flags
                        .contains(flags)
            })
            .expect("a suitable memory type")
    }

    /// A buffer of `size` bytes and its memory, exportable as an fd when `export`.
    fn buffer(
        &self,
        size: usize,
        flags: vk::MemoryPropertyFlags,
        export: bool,
    ) -> (vk::Buffer, vk::DeviceMemory, u64) {
        let fd_type = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
        let mut external = vk::ExternalMemoryBufferCreateInfo::default().handle_types(fd_type);
        let mut info = vk::BufferCreateInfo::default()
            .size(size as u64)
            .usage(vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST);
        if export {
            info = info.push_next(&mut external);
        }
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos.
        unsafe {
            let buffer = self.device.create_buffer(&info, None).unwrap();
            let req = self.device.get_buffer_memory_requirements(buffer);
            let mut exportable = vk::ExportMemoryAllocateInfo::default().handle_types(fd_type);
            let mut alloc = vk::MemoryAllocateInfo::default()
                .allocation_size(req.size)
                .memory_type_index(self.memory_type(req.memory_type_bits, flags));
            if export {
                alloc = alloc.push_next(&mut exportable);
            }
            let memory = self.device.allocate_memory(&alloc, None).unwrap();
            self.device.bind_buffer_memory(buffer, memory, 0).unwrap();
            (buffer, memory, req.size)
        }
    }

    /// An exported device-local buffer of `size` bytes and, when `with_semaphore`, an exported
    /// binary semaphore.
    fn exportable_buffer(&self, size: usize, with_semaphore: bool) -> Exported {
        let (buffer, memory, size) = self.buffer(size, vk::MemoryPropertyFlags::DEVICE_LOCAL, true);
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos.
        unsafe {
            let fd = self
                .memory_fd
                .get_memory_fd(
                    &vk::MemoryGetFdInfoKHR::default()
                        .memory(memory)
                        .handle_type(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD),
                )
                .unwrap();
            let mut exported = Exported {
                buffer,
                memory,
                size,
                fd,
                semaphore: vk::Semaphore::null(),
                semaphore_fd: -1,
            };
            if with_semaphore {
                let sem_type = vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD;
                let mut export = vk::ExportSemaphoreCreateInfo::default().handle_types(sem_type);
                exported.semaphore = self
                    .device
                    .create_semaphore(
                        &vk::SemaphoreCreateInfo::default().push_next(&mut export),
                        None,
                    )
                    .unwrap();
                exported.semaphore_fd = self
                    .semaphore_fd
                    .get_semaphore_fd(
                        &vk::SemaphoreGetFdInfoKHR::default()
                            .semaphore(exported.semaphore)
                            .handle_type(sem_type),
                    )
                    .unwrap();
            }
            exported
        }
    }

    /// Copies the exported buffer to a host-visible one, in a submission that first waits on the
    /// exported semaphore (the engine's signal) when `wait`, then reads it (10 s at most: never
    /// hangs).
    fn read(&self, exported: &Exported, size: usize, wait: bool) -> Vec<u8> {
        let host = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let (staging, staging_memory, _) = self.buffer(size, host, false);
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos.
        unsafe {
            let d = &self.device;
            let pool = d
                .create_command_pool(
                    &vk::CommandPoolCreateInfo::default().queue_family_index(self.family),
                    None,
                )
                .unwrap();
            let cmd = d
                .allocate_command_buffers(
                    &vk::CommandBufferAllocateInfo::default()
                        .command_pool(pool)
                        .command_buffer_count(1),
                )
                .unwrap()[0];
            d.begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())
                .unwrap();
            let region = vk::BufferCopy::default().size(size as u64);
            d.cmd_copy_buffer(cmd, exported.buffer, staging, &[region]);
            d.end_command_buffer(cmd).unwrap();
            let waits = [exported.semaphore];
            let stages = [vk::PipelineStageFlags::TRANSFER];
            let cmds = [cmd];
            let mut submit = vk::SubmitInfo::default().command_buffers(&cmds);
            if wait {
                submit = submit.wait_semaphores(&waits).wait_dst_stage_mask(&stages);
            }
            let fence = d
                .create_fence(&vk::FenceCreateInfo::default(), None)
                .unwrap();
            d.queue_submit(self.queue, &[submit], fence).unwrap();
            d.wait_for_fences(&[fence], true, 10_000_000_000)
                .expect("the engine's semaphore signal and the copy finish within 10 s");
            let mapped = d
                .map_memory(staging_memory, 0, size as u64, vk::MemoryMapFlags::empty())
                .unwrap();
            let bytes = std::slice::from_raw_parts(mapped as *const u8, size).to_vec();
            d.unmap_memory(staging_memory);
            d.destroy_fence(fence, None);
            d.destroy_command_pool(pool, None);
            d.destroy_buffer(staging, None);
            d.free_memory(staging_memory, None);
            bytes
        }
    }

    /// Signals the exported semaphore from the host's queue (an empty submission), as a
    /// renderer does when the pixels it wrote are ready.
    fn signal(&self, exported: &Exported) {
        let signals = [exported.semaphore];
        let submit = vk::SubmitInfo::default().signal_semaphores(&signals);
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos.
        unsafe {
            let d = &self.device;
            let fence = d
                .create_fence(&vk::FenceCreateInfo::default(), None)
                .unwrap();
            d.queue_submit(self.queue, &[submit], fence).unwrap();
            d.wait_for_fences(&[fence], true, 10_000_000_000)
                .expect("an empty submission finishes within 10 s");
            d.destroy_fence(fence, None);
        }
    }

    fn free(&self, exported: Exported) {
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos
        // (destroying a null semaphore does nothing).
        unsafe {
            self.device.destroy_semaphore(exported.semaphore, None);
            self.device.destroy_buffer(exported.buffer, None);
            self.device.free_memory(exported.memory, None);
        }
    }
}

impl Drop for Vulkan {
    fn drop(&mut self) {
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos.
        unsafe {
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}
