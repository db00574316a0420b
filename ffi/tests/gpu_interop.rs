//! Results written into the host's GPU memory through the C ABI. A small Vulkan host (`ash`)
//! creates an exportable buffer and semaphore on the engine's GPU (matched by UUID), passes their
//! fds to `flux_gpu_image_create`, waits on the semaphore in its own queue and compares the
//! pixels with the host-memory result of the same job, in RGBA8 and RGBA16F; then signals the
//! semaphore and has the engine read the image back as a Kontext reference, which must edit
//! exactly like its host-memory copy. Without a CUDA engine or a Vulkan device it is skipped
//! with a message; the error paths run everywhere.

use std::ffi::CString;
use std::mem::{size_of, MaybeUninit};
use std::ptr;

use ash::vk;
use flux_engine::gpu::*;
use flux_engine::types::*;
use flux_engine::*;

#[path = "../../tests/support/mod.rs"]
mod support;
use support::{skip_without_gpu, tiny_dev_model, Scratch};
mod c_abi;
use c_abi::{copy_pixels as host_pixels, engine, last_error, render_reference as render};

fn gpu_desc() -> FluxGpuImageDesc {
    let mut d = MaybeUninit::<FluxGpuImageDesc>::uninit();
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        flux_gpu_image_desc_defaults(d.as_mut_ptr(), size_of::<FluxGpuImageDesc>() as u32);
        d.assume_init()
    }
}

#[test]
fn gpu_images_refuse_bad_input_and_cpu_engines() {
    let e = engine(FluxDevice::Cpu).unwrap();
    let mut image = ptr::null_mut();
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        let mut uuid = [0u8; 16];
        assert_eq!(
            flux_engine_device_uuid(e, uuid.as_mut_ptr()),
            FluxResult::Unsupported
        );
        assert!(
            last_error().contains("GPU memory interop needs"),
            "{}",
            last_error()
        );
        assert_eq!(
            flux_engine_device_uuid(e, ptr::null_mut()),
            FluxResult::NullPointer
        );

        let mut d = gpu_desc();
        (d.width, d.height, d.row_pitch, d.cuda_pointer) = (64, 48, 256, 0x1000);
        assert_eq!(
            flux_gpu_image_create(e, &d, &mut image),
            FluxResult::Unsupported
        );
        assert!(image.is_null());
        assert_eq!(
            flux_gpu_image_create(e, ptr::null(), &mut image),
            FluxResult::NullPointer
        );
        assert_eq!(
            flux_gpu_image_create(e, &d, ptr::null_mut()),
            FluxResult::NullPointer
        );
        let bad = |change: fn(&mut FluxGpuImageDesc)| {
            let mut b = d;
            change(&mut b);
            flux_gpu_image_create(e, &b, &mut ptr::null_mut())
        };
        assert_eq!(bad(|b| b.struct_size = 8), FluxResult::BadStructSize);
        assert_eq!(
            bad(|b| b.format = FluxPixelFormat::Rgb8 as i32),
            FluxResult::InvalidArgument
        );
        assert!(last_error().contains("RGBA8 or"), "{}", last_error());
        assert_eq!(bad(|b| b.memory_type = 9), FluxResult::InvalidArgument);
        assert_eq!(bad(|b| b.semaphore_type = 9), FluxResult::InvalidArgument);
        assert_eq!(bad(|b| b.row_pitch = 255), FluxResult::InvalidArgument);
        assert_eq!(bad(|b| b.cuda_pointer = 0), FluxResult::InvalidArgument);
        assert_eq!(bad(|b| b.width = 0), FluxResult::InvalidArgument);
        // Imported memory: the image must fit the allocation, and the device must be named.
        assert_eq!(bad(opaque_fd), FluxResult::InvalidArgument);
        assert!(last_error().contains("device UUID"), "{}", last_error());
        let short = |b: &mut FluxGpuImageDesc| {
            opaque_fd(b);
            b.device_uuid = [7; 16];
            b.memory_size -= 1;
        };
        assert_eq!(bad(short), FluxResult::InvalidArgument);
        assert!(
            last_error().contains("needs 12288 bytes"),
            "{}",
            last_error()
        );

        let bogus = 0x42 as *mut FluxGpuImage;
        assert_eq!(
            flux_gpu_image_destroy(ptr::null_mut()),
            FluxResult::NullPointer
        );
        assert_eq!(flux_gpu_image_destroy(bogus), FluxResult::InvalidHandle);
        assert_eq!(
            flux_job_write_gpu_image(e, 1, bogus, 0),
            FluxResult::InvalidHandle
        );
        assert_eq!(
            copy_image_rgba16f_is_refused(e),
            FluxResult::InvalidArgument
        );
        assert_eq!(flux_engine_destroy(e), FluxResult::Ok);
    }
}

/// An edit desc for `prompt` with no references.
fn edit_desc(prompt: &CString) -> FluxEditDesc {
    let mut d = MaybeUninit::<FluxEditDesc>::uninit();
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        flux_edit_desc_defaults(d.as_mut_ptr(), size_of::<FluxEditDesc>() as u32);
        let mut d = d.assume_init();
        d.prompt = prompt.as_ptr();
        d
    }
}

#[test]
fn edits_take_gpu_references_only_as_live_images() {
    let e = engine(FluxDevice::Cpu).unwrap();
    let prompt = CString::new("make it blue").unwrap();
    let bogus = [0x42 as *mut FluxGpuImage];
    let mut job = 0;
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        let submit = |d: &FluxEditDesc, job: &mut FluxJob| flux_engine_submit_edit(e, d, job);
        let mut d = edit_desc(&prompt);
        (d.gpu_images, d.gpu_image_count) = (bogus.as_ptr(), 1);
        assert_eq!(submit(&d, &mut job), FluxResult::InvalidHandle);
        assert!(
            last_error().contains("desc.gpu_images[0]"),
            "{}",
            last_error()
        );
        d.gpu_images = ptr::null();
        assert_eq!(submit(&d, &mut job), FluxResult::NullPointer);
        d.gpu_image_count = 0;
        assert_eq!(submit(&d, &mut job), FluxResult::InvalidArgument);
        assert!(last_error().contains("gpu_image_count"), "{}", last_error());
        (d.gpu_images, d.gpu_image_count, d.image_count) = (bogus.as_ptr(), 2, 3);
        assert_eq!(submit(&d, &mut job), FluxResult::InvalidArgument);
        // A caller built against the header before GPU references passes a shorter struct.
        let mut old = edit_desc(&prompt);
        old.struct_size = std::mem::offset_of!(FluxEditDesc, gpu_images) as u32;
        old.gpu_image_count = 1;
        assert_eq!(submit(&old, &mut job), FluxResult::InvalidArgument);
        assert!(last_error().contains("got 0 + 0"), "{}", last_error());
        assert_eq!(flux_engine_destroy(e), FluxResult::Ok);
    }
}

/// Imported memory (an fd) just big enough for the 64×48 RGBA8 image of pitch 256.
fn opaque_fd(b: &mut FluxGpuImageDesc) {
    (b.memory_type, b.memory_handle) = (FluxGpuMemoryType::OpaqueFd as i32, 0);
    b.memory_size = 48 * 256;
}

/// RGBA16F is for GPU images only; the host-memory copy says so.
///
/// # Safety
/// `e` is NULL or an engine handle.
unsafe fn copy_image_rgba16f_is_refused(e: *mut FluxEngine) -> FluxResult {
    let mut buf = [0u8; 8];
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    let r = unsafe {
        flux_job_copy_image(
            e,
            1,
            FluxPixelFormat::Rgba16f as i32,
            buf.as_mut_ptr(),
            8,
            8,
        )
    };
    assert!(last_error().contains("GPU images"), "{}", last_error());
    r
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
    for (format, bpp) in [
        (FluxPixelFormat::Rgba8 as i32, 4),
        (FluxPixelFormat::Rgba16f as i32, 8),
    ] {
        // A pitch wider than a row, as renderers align rows.
        let pitch = (w * bpp).next_multiple_of(256);
        let exported = vk.exportable_buffer(pitch * h);
        let mut d = gpu_desc();
        d.memory_type = FluxGpuMemoryType::OpaqueFd as i32;
        (d.memory_handle, d.memory_size) = (exported.fd as i64, exported.size);
        (d.width, d.height, d.row_pitch) = (w as u32, h as u32, pitch as u64);
        d.format = format;
        d.device_uuid = uuid;
        d.semaphore_type = FluxGpuSemaphoreType::OpaqueFd as i32;
        d.semaphore_handle = exported.semaphore_fd as i64;
        let mut image = ptr::null_mut();
        // SAFETY: the C ABI as documented: live handles, pointers to live locals.
        unsafe {
            assert_eq!(
                flux_gpu_image_create(e, &d, &mut image),
                FluxResult::Ok,
                "{}",
                last_error()
            );
            // The engine imported duplicates: the host's fds are still its own to close.
            exported.close_fds();
            assert_eq!(
                flux_job_write_gpu_image(e, job, image, 0),
                FluxResult::Ok,
                "{}",
                last_error()
            );
        }
        let got = vk.read_after_semaphore(&exported, pitch * h);
        // The same image read back as a Kontext reference, once the host signals it, edits
        // exactly like its host-memory copy.
        vk.signal(&exported);
        let from_gpu = edit(e, &[], &[image]);
        let rgba8 = host_pixels(e, job, FluxPixelFormat::Rgba8, 4);
        let view = FluxImageView {
            width: w as u32,
            height: h as u32,
            stride: (w * 4) as u32,
            format: FluxPixelFormat::Rgba8 as i32,
            data: rgba8.as_ptr(),
        };
        assert_eq!(from_gpu, edit(e, &[view], &[]));
        // SAFETY: the C ABI as documented: live handles, pointers to live locals.
        unsafe { assert_eq!(flux_gpu_image_destroy(image), FluxResult::Ok) };
        let rows = got.chunks(pitch).map(|r| &r[..w * bpp]);
        let got: Vec<u8> = rows.flatten().copied().collect();
        match bpp {
            4 => {
                assert_eq!(got, host_pixels(e, job, FluxPixelFormat::Rgba8, 4))
            }
            _ => {
                let want = host_pixels(e, job, FluxPixelFormat::Rgba32f, 16);
                let want = want
                    .chunks(4)
                    .map(|c| f32::from_ne_bytes(c.try_into().unwrap()));
                let got = got
                    .chunks(2)
                    .map(|c| f16_to_f32(u16::from_ne_bytes([c[0], c[1]])));
                for (i, (g, w)) in got.zip(want).enumerate() {
                    assert!((g - w).abs() <= 1e-3, "value {i}: {g} vs {w}");
                }
            }
        }
        vk.free(exported);
    }
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe { assert_eq!(flux_engine_destroy(e), FluxResult::Ok) };
}

/// The RGB8 result of a 2-step edit of the references (host views, then GPU images).
fn edit(e: *mut FluxEngine, views: &[FluxImageView], gpu: &[*mut FluxGpuImage]) -> Vec<u8> {
    let prompt = CString::new("the same scene at night").unwrap();
    let mut d = edit_desc(&prompt);
    (d.images, d.image_count) = (views.as_ptr(), views.len() as u32);
    (d.gpu_images, d.gpu_image_count) = (gpu.as_ptr(), gpu.len() as u32);
    (d.snap, d.steps, d.t5_len, d.seed) = (0, 2, 16, 7);
    let (mut job, mut state) = (0, -1);
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe {
        assert_eq!(
            flux_engine_submit_edit(e, &d, &mut job),
            FluxResult::Ok,
            "{}",
            last_error()
        );
        assert_eq!(flux_job_wait(e, job, 600_000, &mut state), FluxResult::Ok);
        assert_eq!(state, FluxJobState::Succeeded as i32, "{}", last_error());
    }
    let pixels = host_pixels(e, job, FluxPixelFormat::Rgb8, 3);
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe { assert_eq!(flux_job_release(e, job), FluxResult::Ok) };
    pixels
}

/// Without a CUDA engine, the Vulkan host still runs on any Vulkan device there is (Mesa's CPU
/// driver in CI): its exported buffer and semaphore reach a CPU engine, which refuses them with
/// UNSUPPORTED and leaves the host's fds open.
fn vulkan_exports_reach_a_cpu_engine_untouched() {
    let vk = match Vulkan::on_device(None) {
        Ok(vk) => vk,
        Err(why) => return eprintln!("SKIPPED (Vulkan part): {why}"),
    };
    let exported = vk.exportable_buffer(64 * 4 * 48);
    let e = engine(FluxDevice::Cpu).unwrap();
    let mut d = gpu_desc();
    d.memory_type = FluxGpuMemoryType::OpaqueFd as i32;
    (d.memory_handle, d.memory_size) = (exported.fd as i64, exported.size);
    (d.width, d.height, d.row_pitch) = (64, 48, 256);
    d.device_uuid = vk.uuid;
    d.semaphore_type = FluxGpuSemaphoreType::OpaqueFd as i32;
    d.semaphore_handle = exported.semaphore_fd as i64;
    let mut image = ptr::null_mut();
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    let r = unsafe { flux_gpu_image_create(e, &d, &mut image) };
    assert_eq!(r, FluxResult::Unsupported, "{}", last_error());
    assert!(image.is_null());
    for fd in [exported.fd, exported.semaphore_fd] {
        assert!(
            std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok(),
            "fd {fd} was closed"
        );
    }
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

/// An exportable device-local buffer, its memory and a semaphore, with their fds.
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
        // SAFETY: the C ABI as documented: live handles, pointers to live locals.
        unsafe {
            drop(OwnedFd::from_raw_fd(self.fd));
            drop(OwnedFd::from_raw_fd(self.semaphore_fd));
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

    /// A buffer of `size` bytes, its memory and, when `export`, fds for it and a semaphore.
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

    fn exportable_buffer(&self, size: usize) -> Exported {
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
            let sem_type = vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD;
            let mut export = vk::ExportSemaphoreCreateInfo::default().handle_types(sem_type);
            let semaphore = self
                .device
                .create_semaphore(
                    &vk::SemaphoreCreateInfo::default().push_next(&mut export),
                    None,
                )
                .unwrap();
            let semaphore_fd = self
                .semaphore_fd
                .get_semaphore_fd(
                    &vk::SemaphoreGetFdInfoKHR::default()
                        .semaphore(semaphore)
                        .handle_type(sem_type),
                )
                .unwrap();
            Exported {
                buffer,
                memory,
                size,
                fd,
                semaphore,
                semaphore_fd,
            }
        }
    }

    /// Copies the exported buffer to a host-visible one in a submission that waits on the
    /// exported semaphore (the engine's signal), then reads it (10 s at most: never hangs).
    fn read_after_semaphore(&self, exported: &Exported, size: usize) -> Vec<u8> {
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
            let submit = vk::SubmitInfo::default()
                .wait_semaphores(&waits)
                .wait_dst_stage_mask(&stages)
                .command_buffers(&cmds);
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
        // SAFETY: Vulkan calls on this test's live instance and device, with valid create infos.
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
