//! Sequences of C ABI calls with hostile arguments on the tiny model: engines created with bad
//! descs and destroyed (twice, or while jobs run), loads of missing folders, submits with requests
//! whose settings and images are out of range (forged and NULL handles among them), cancels,
//! waits, polls and writes into structs and images of the wrong size, releases of unknown jobs,
//! budgets that unload the model. Every call must end in a result code — never INTERNAL (a caught
//! panic) — and every job in one terminal state; a broken promise panics.
//!
//! The choices come from a seeded generator (`ffi/tests/abi_sequences.rs`) or from a fuzzer's
//! bytes (the `abi` target of `tests/fuzz`, whose corpus that test replays).
#![allow(dead_code)]

use std::ffi::{c_char, CString};
use std::mem::size_of;
use std::ops::{Range, RangeTo};

use flux_engine::types::*;
use flux_engine::*;

use crate::c_abi::defaults;
use crate::support;

/// Where a sequence's choices come from: a seeded generator, or bytes (one byte per choice among
/// at most 256, eight otherwise), which end the sequence when they run out.
pub enum Choices<'a> {
    Seeded(fastrand::Rng),
    Bytes(&'a [u8]),
}

impl Choices<'_> {
    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        match self {
            _ if n == 0 => 0,
            Choices::Seeded(rng) => rng.u64(..n),
            Choices::Bytes(bytes) => {
                let width = if n <= 256 { 1 } else { 8 }.min(bytes.len());
                let (now, rest) = bytes.split_at(width);
                *bytes = rest;
                let mut le = [0u8; 8];
                le[..width].copy_from_slice(now);
                u64::from_le_bytes(le) % n
            }
        }
    }

    /// Whether the bytes have run out.
    pub fn is_spent(&self) -> bool {
        matches!(self, Choices::Bytes(b) if b.is_empty())
    }

    fn u8(&mut self, r: RangeTo<u8>) -> u8 {
        self.below(r.end.into()) as u8
    }

    fn u32(&mut self, r: RangeTo<u32>) -> u32 {
        self.below(r.end.into()) as u32
    }

    fn u64(&mut self, r: RangeTo<u64>) -> u64 {
        self.below(r.end)
    }

    fn usize(&mut self, r: RangeTo<usize>) -> usize {
        self.below(r.end as u64) as usize
    }

    fn i32(&mut self, r: Range<i32>) -> i32 {
        r.start + self.below(r.end.abs_diff(r.start).into()) as i32
    }

    fn bool(&mut self) -> bool {
        self.below(2) == 1
    }
}

/// The most actions a fuzzer's input makes (each takes at least one byte).
pub const FUZZ_ACTIONS: usize = 256;

/// How long a fuzzer's sequence lets each job run on at its end before cancelling it.
pub const FUZZ_SETTLE_MS: u32 = 1_000;

/// Stands in for a handle the library never gave out.
const FORGED: usize = 0x10;

pub struct Sequence<'a> {
    rng: Choices<'a>,
    model: CString,
    /// A LoRA file of the tiny model.
    lora: CString,
    bad_utf8: Vec<u8>,
    /// Live engines and the jobs submitted to each.
    engines: Vec<(*mut FluxEngine, Vec<FluxJob>)>,
    /// Destroyed engines' handles, passed again on purpose.
    dead: Vec<*mut FluxEngine>,
    calls: usize,
    codes: Vec<FluxResult>,
    /// Jobs seen to succeed (by a wait).
    succeeded: usize,
}

impl<'a> Sequence<'a> {
    pub fn new(choices: Choices<'a>, model: CString) -> Self {
        Self {
            rng: choices,
            model,
            lora: CString::new(
                support::root()
                    .join("tests/fixtures/flux-lora/lora_a_kohya.safetensors")
                    .to_str()
                    .unwrap(),
            )
            .unwrap(),
            bad_utf8: vec![0xff, 0xfe, b'x', 0],
            engines: Vec::new(),
            dead: Vec::new(),
            calls: 0,
            codes: Vec::new(),
            succeeded: 0,
        }
    }

    /// Records a call's result; a caught panic fails the test with the message.
    fn check(&mut self, what: &str, r: FluxResult) {
        self.calls += 1;
        if r == FluxResult::Internal {
            // SAFETY: the library's own message string, valid until the next call.
            let msg = unsafe { std::ffi::CStr::from_ptr(flux_last_error_message()) };
            panic!("{what} panicked inside the library: {msg:?}");
        }
        if !self.codes.contains(&r) {
            self.codes.push(r);
        }
    }

    /// A handle to call with: mostly a live engine, sometimes a dead, forged or NULL one.
    fn engine(&mut self) -> (*mut FluxEngine, Option<usize>) {
        match self.rng.u8(..10) {
            0 => (std::ptr::null_mut(), None),
            1 => (FORGED as *mut FluxEngine, None),
            2 if !self.dead.is_empty() => (self.dead[self.rng.usize(..self.dead.len())], None),
            _ if !self.engines.is_empty() => {
                let i = self.rng.usize(..self.engines.len());
                (self.engines[i].0, Some(i))
            }
            _ => (std::ptr::null_mut(), None),
        }
    }

    /// A job id to call with: mostly one of the engine's, sometimes an unknown one.
    fn job(&mut self, engine: Option<usize>) -> FluxJob {
        let jobs = engine.map(|i| &self.engines[i].1).filter(|j| !j.is_empty());
        match (jobs, self.rng.u8(..5)) {
            (Some(jobs), 1..) => jobs[self.rng.usize(..jobs.len())],
            _ => self.rng.u64(..1_000_000),
        }
    }

    /// `good` four times in five, otherwise one of `bad`: each field of a call is hostile alone
    /// often enough, and whole calls still succeed often enough to run jobs.
    fn pick<T: Copy>(&mut self, good: T, bad: &[T]) -> T {
        match self.rng.u8(..5) {
            0 => bad[self.rng.usize(..bad.len())],
            _ => good,
        }
    }

    /// A 1 MiB output buffer starting with a struct size for `T` (see `struct_size`): larger
    /// than any size given.
    fn out_buffer<T>(&mut self) -> Vec<u8> {
        let mut buf = vec![0u8; 1 << 20];
        let size = self.struct_size::<T>();
        buf[..4].copy_from_slice(&size.to_ne_bytes());
        buf
    }

    /// A struct size: mostly right, sometimes too small, larger (a newer caller) or absurd.
    fn struct_size<T>(&mut self) -> u32 {
        let real = size_of::<T>() as u32;
        self.pick(real, &[0, 3, real + 8, 1 << 20])
    }

    /// Makes up to `ops` actions (fewer when the choices run out), then waits up to `settle_ms`
    /// for each job (cancelling those that run on) and destroys the engines; returns the calls made, the jobs seen to succeed and the result
    /// codes met.
    pub fn run(mut self, ops: usize, settle_ms: u32) -> (usize, usize, Vec<FluxResult>) {
        for _ in 0..ops {
            if self.rng.is_spent() {
                break;
            }
            // Engines live long enough for their models to load and jobs to run.
            match self.rng.u8(..40) {
                0 => self.create(),
                1 => self.destroy(),
                2..=4 => self.load(),
                5..=14 => self.submit(),
                15..=17 => self.cancel(),
                18..=21 => self.status(),
                22..=25 => self.wait(),
                26..=29 => self.poll(),
                30..=33 => self.copy(),
                34..=36 => self.release(),
                _ => self.settings(),
            }
        }
        // Every job of a live engine ends in exactly one terminal state: those not done when they
        // have settled are cancelled and must then end within a step.
        for (e, jobs) in std::mem::take(&mut self.engines) {
            for &job in &jobs {
                // SAFETY: a live engine; the outcome pointer may be NULL.
                unsafe {
                    flux_job_wait(e, job, settle_ms, std::ptr::null_mut());
                    flux_job_cancel(e, job, std::ptr::null_mut());
                }
            }
            for job in jobs {
                let mut state = -1;
                // SAFETY: a live engine; `state` is a live local.
                let r = unsafe { flux_job_wait(e, job, 60_000, &mut state) };
                assert_ne!(
                    r,
                    FluxResult::Timeout,
                    "job {job} still runs 60 s after a cancel"
                );
                if r == FluxResult::Ok {
                    assert!((2..=4).contains(&state), "job {job} ended in state {state}");
                    self.succeeded += usize::from(state == 2);
                }
            }
            // SAFETY: a live engine, destroyed once.
            assert_eq!(unsafe { flux_engine_destroy(e) }, FluxResult::Ok);
        }
        (self.calls, self.succeeded, self.codes)
    }

    fn create(&mut self) {
        if self.engines.len() >= 2 {
            return self.destroy();
        }
        // 1 MiB, 8-byte aligned: more than any struct size given.
        let mut buf = vec![0u64; 1 << 17];
        let d = buf.as_mut_ptr() as *mut FluxEngineDesc;
        // SAFETY: `buf` holds 1 MiB, more than any struct size given.
        unsafe { flux_engine_desc_defaults(d, size_of::<FluxEngineDesc>() as u32) };
        let size = self.struct_size::<FluxEngineDesc>();
        // SAFETY: `d` points into `buf`, large and aligned enough for the struct.
        unsafe {
            (*d).struct_size = size;
            (*d).abi_version = self.pick(FLUX_ABI_VERSION, &[0, 99]);
            (*d).device = self.pick(0, &[1, 7]);
            (*d).log_level = self.pick(3, &[0, 9]);
            (*d).preview_every = self.rng.u32(..3);
            (*d).memory_budget = self.pick(FLUX_MEMORY_BUDGET_AUTO, &[1 << 40, 1000]);
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: `d` is a desc in `buf`; `out` a live local.
        let r = unsafe { flux_engine_create(d, &mut out) };
        self.check("create", r);
        if r == FluxResult::Ok {
            self.engines.push((out, Vec::new()));
        }
    }

    fn destroy(&mut self) {
        let (e, live) = self.engine();
        // SAFETY: live, dead, forged or NULL handles are all detected by the library.
        let r = unsafe { flux_engine_destroy(e) };
        self.check("destroy", r);
        if let Some(i) = live {
            self.engines.remove(i);
            self.dead.push(e);
        }
    }

    fn load(&mut self) {
        let (e, live) = self.engine();
        let mut d = defaults(flux_model_desc_defaults);
        let missing = c"/nonexistent/flux";
        d.folder = match self.rng.u8(..5) {
            0 => std::ptr::null(),
            1 => missing.as_ptr(),
            2 => self.bad_utf8.as_ptr() as *const c_char,
            _ => self.model.as_ptr(),
        };
        d.dtype = self.pick(0, &[1, 9]);
        d.struct_size = self.pick(size_of::<FluxModelDesc>() as u32, &[2]);
        let mut job = 0;
        // SAFETY: `d` and `job` are live locals; the strings are NUL-terminated.
        let r = unsafe { flux_engine_load_model(e, &d, &mut job) };
        self.check("load", r);
        self.keep(live, r, job);
    }

    fn keep(&mut self, engine: Option<usize>, r: FluxResult, job: FluxJob) {
        if let (Some(i), FluxResult::Ok) = (engine, r) {
            self.engines[i].1.push(job);
        }
    }

    /// A request handle to call with: mostly a live one, sometimes forged or NULL.
    fn request_handle(&mut self, live: *mut FluxRequest) -> *mut FluxRequest {
        match self.rng.u8(..12) {
            0 => std::ptr::null_mut(),
            1 => FORGED as *mut FluxRequest,
            _ => live,
        }
    }

    fn submit(&mut self) {
        let (e, live) = self.engine();
        let mut r = std::ptr::null_mut();
        // SAFETY: `r` is a live local.
        let created = unsafe { flux_request_create(&mut r) };
        self.check("request_create", created);
        let prompt = match self.rng.u8(..8) {
            0 => std::ptr::null(),
            1 => self.bad_utf8.as_ptr() as *const c_char,
            _ => c"a lighthouse".as_ptr(),
        };
        let h = self.request_handle(r);
        // SAFETY: NULL or a NUL-terminated string; handles are checked by the library.
        let code = unsafe { flux_request_set_prompt(h, prompt) };
        self.check("set_prompt", code);
        let (w, hh) = (
            self.pick(32, &[16, 48, 0, 70, 100_000]),
            self.pick(16, &[32, 64]),
        );
        let h = self.request_handle(r);
        self.check("set_size", flux_request_set_size(h, w, hh));
        let steps = self.pick(1, &[2, 0, 5000]);
        self.check("set_steps", flux_request_set_steps(r, steps));
        let g = self.pick(0.0, &[3.5, -1.0, f32::NAN, f32::INFINITY]);
        self.check("set_guidance", flux_request_set_guidance(r, g));
        let t5 = self.pick(8, &[16, 0, 1, 100_000]);
        self.check("set_t5_length", flux_request_set_t5_length(r, t5));
        let priority = self.rng.i32(-200..200);
        self.check("set_priority", flux_request_set_priority(r, priority));
        if self.rng.u8(..4) == 0 {
            let path = match self.rng.u8(..6) {
                0 => std::ptr::null(),
                1 => self.bad_utf8.as_ptr() as *const c_char,
                2 => c"/nonexistent/lora.safetensors".as_ptr(),
                // A file that is no LoRA: the job fails.
                3 => self.model.as_ptr(),
                _ => self.lora.as_ptr(),
            };
            let strength = self.pick(0.8, &[-1.0, f32::NAN, f32::INFINITY]);
            // SAFETY: NULL or a NUL-terminated string; handles are checked by the library.
            let code = unsafe { flux_request_add_lora(r, path, strength) };
            self.check("add_lora", code);
            if self.rng.u8(..4) == 0 {
                self.check("clear_loras", flux_request_clear_loras(r));
            }
        }
        let mut pixels = vec![90u8; 64 * 48 * 16];
        if self.rng.u8(..3) == 0 {
            let mut d = defaults(flux_image_desc_defaults);
            d.width = [64, 0, 63, 20_000][self.rng.usize(..4)];
            d.height = 48;
            d.row_pitch = [64 * 3, 64 * 4, 10, u64::MAX][self.rng.usize(..4)];
            d.format = [0, 1, 2, 3, 4, 7][self.rng.usize(..6)];
            d.bottom_up = self.rng.u32(..2);
            d.struct_size = self.pick(size_of::<FluxImageDesc>() as u32, &[3, 1 << 20]);
            let len = [pixels.len(), 100, 0][self.rng.usize(..3)];
            let mut image = std::ptr::null_mut();
            // SAFETY: `d`, `pixels` (valid for `len` ≤ its length, and outliving the image) and
            // `image` are live locals.
            let code =
                unsafe { flux_image_create_host(&d, pixels.as_mut_ptr().cast(), len, &mut image) };
            self.check("image_create_host", code);
            let img = match (code, self.rng.u8(..6)) {
                (_, 0) => FORGED as *mut FluxImage,
                (FluxResult::Ok, _) => image,
                _ => std::ptr::null_mut(),
            };
            let code = match self.rng.u8(..4) {
                0 => flux_request_set_init_image(r, img, 0, self.pick(0.5, &[0.0, 1.5, f32::NAN])),
                _ => flux_request_add_reference(r, img, 0),
            };
            self.check("request_image", code);
            self.check("set_snap", flux_request_set_reference_snap(r, false));
            if code == FluxResult::Ok && self.rng.u8(..4) == 0 {
                self.check("clear_images", flux_request_clear_images(r));
            }
            // Destroyed before the submit: the request keeps its copy of the pixels.
            // SAFETY: a live or NULL handle.
            self.check("image_destroy", unsafe { flux_image_destroy(image) });
        }
        let mut job = 0;
        let h = self.request_handle(r);
        // SAFETY: `job` is a live local; handles are checked by the library.
        let code = unsafe { flux_engine_submit(e, h, &mut job) };
        self.check("submit", code);
        self.keep(live, code, job);
        // SAFETY: a live or NULL handle, destroyed once.
        self.check("request_destroy", unsafe { flux_request_destroy(r) });
    }

    fn cancel(&mut self) {
        let (e, live) = self.engine();
        let job = self.job(live);
        let mut outcome = -1;
        // SAFETY: `outcome` is a live local; handles are checked by the library.
        let r = unsafe { flux_job_cancel(e, job, &mut outcome) };
        self.check("cancel", r);
    }

    fn status(&mut self) {
        let (e, live) = self.engine();
        let job = self.job(live);
        let mut buf = self.out_buffer::<FluxJobStatus>();
        // SAFETY: `buf` holds more than any struct size given and starts with it.
        let r = unsafe { flux_job_status(e, job, buf.as_mut_ptr() as *mut FluxJobStatus) };
        self.check("status", r);
    }

    fn wait(&mut self) {
        let (e, live) = self.engine();
        let job = self.job(live);
        let mut state = -1;
        let timeout = self.pick(2000, &[0, 5, 20]);
        // SAFETY: `state` is a live local.
        let r = unsafe { flux_job_wait(e, job, timeout, &mut state) };
        self.check("wait", r);
        self.succeeded += usize::from(r == FluxResult::Ok && state == 2);
    }

    fn poll(&mut self) {
        let (e, _) = self.engine();
        let mut buf = self.out_buffer::<FluxEvent>();
        // SAFETY: `buf` holds more than any struct size given and starts with it.
        let r = unsafe { flux_engine_poll_event(e, buf.as_mut_ptr() as *mut FluxEvent) };
        self.check("poll", r);
    }

    fn copy(&mut self) {
        let (e, live) = self.engine();
        let job = self.job(live);
        let mut d = defaults(flux_image_desc_defaults);
        d.format = [0, 1, 2, 3, 4, 9][self.rng.usize(..6)];
        (d.width, d.height) = ([32, 16, 0][self.rng.usize(..3)], 16);
        d.row_pitch = [32 * 16, 16 * 3, 0, u64::MAX / 15 + 1][self.rng.usize(..4)];
        d.bottom_up = self.rng.u32(..2);
        let mut dst = vec![0u8; 32 * 16 * 16];
        let size = [dst.len(), 10, 0][self.rng.usize(..3)];
        let mut image = std::ptr::null_mut();
        // SAFETY: `dst` is writable for `size` ≤ its length and outlives the image.
        let r = unsafe { flux_image_create_host(&d, dst.as_mut_ptr().cast(), size, &mut image) };
        self.check("image_create_host", r);
        // SAFETY: handles (live, NULL) are checked by the library.
        let r = unsafe { flux_job_write_image(e, job, image, 0) };
        self.check("write_image", r);
        // SAFETY: as above.
        self.check("image_destroy", unsafe { flux_image_destroy(image) });
    }

    fn release(&mut self) {
        let (e, live) = self.engine();
        let job = self.job(live);
        // SAFETY: handles are checked by the library.
        let r = unsafe { flux_job_release(e, job) };
        self.check("release", r);
    }

    fn settings(&mut self) {
        let (e, _) = self.engine();
        let r = match self.rng.u8(..3) {
            0 => {
                let bytes = self.pick(FLUX_MEMORY_BUDGET_AUTO, &[1, 1 << 40]);
                // SAFETY: handles are checked by the library.
                unsafe { flux_engine_set_memory_budget(e, bytes) }
            }
            1 => {
                let mut plan = defaults(flux_residency_plan_defaults);
                plan.text_placement = [0, 1, 2, 7][self.rng.usize(..4)];
                plan.stream_window = self.rng.u32(..3);
                plan.tiled_vae = [0, 1, 2][self.rng.usize(..3)];
                let p = match self.rng.bool() {
                    true => &plan as *const FluxResidencyPlan,
                    false => std::ptr::null(),
                };
                // SAFETY: NULL or a live local plan.
                unsafe { flux_engine_set_residency_plan(e, p) }
            }
            _ => {
                let mut buf = self.out_buffer::<FluxResidency>();
                // SAFETY: `buf` holds more than any struct size given and starts with it.
                unsafe { flux_engine_get_residency(e, buf.as_mut_ptr() as *mut FluxResidency) }
            }
        };
        self.check("settings", r);
    }
}
