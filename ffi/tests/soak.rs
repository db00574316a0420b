//! Soak and leak check through the C ABI on the tiny model. Rounds of: an engine created with a
//! callback, the model loaded, jobs of random sizes and priorities submitted from 4 host threads
//! that also cancel, wait, write results, release, poll and change the budget; every other round
//! the engine is destroyed with jobs still queued and running. Checked:
//! - every job reaches at most one terminal event, and exactly one unless its engine was destroyed
//!   while it was in flight (destroy promises no callback after it returns, not a last event);
//! - no result is lost: a job seen to succeed and not released writes its image;
//! - nothing deadlocks: a watchdog fails the run when a round takes more than 5 minutes;
//! - the process's resident memory after the run is within 64 MiB of what it was after the
//!   warm-up rounds.
//!
//! `FLUX_SOAK_JOBS` (default 400; e.g. 10000 for the full soak, 8 under valgrind) sets the number
//! of jobs.

mod c_abi;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{mpsc, Arc, LazyLock, Mutex};
use std::time::Duration;

use flux_engine::types::*;
use flux_engine::*;
use support::{tiny_dev_model, Scratch};

/// Terminal events seen per (round, job).
static TERMINAL: LazyLock<Mutex<HashMap<(usize, FluxJob), usize>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

unsafe extern "C" fn on_event(event: *const FluxEvent, user_data: *mut c_void) {
    // SAFETY: the library passes a valid event for the duration of the call.
    let event = unsafe { &*event };
    let terminal = [
        FluxEventType::Finished as i32,
        FluxEventType::Failed as i32,
        FluxEventType::Cancelled as i32,
    ];
    if terminal.contains(&event.kind) {
        let round = user_data as usize;
        *TERMINAL
            .lock()
            .unwrap()
            .entry((round, event.job))
            .or_default() += 1;
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

struct Engine(*mut FluxEngine);
// SAFETY: an engine handle may be used from any thread (the C ABI's contract).
unsafe impl Send for Engine {}
// SAFETY: as above.
unsafe impl Sync for Engine {}

/// One host thread's share of a round: `jobs` submits with cancels, waits, writes, releases,
/// polls and budget changes mixed in. Returns the jobs it submitted.
fn host_thread(engine: &Engine, seed: u64, jobs: usize) -> Vec<FluxJob> {
    let e = engine.0;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut submitted = Vec::new();
    let mut pixels = vec![0u8; 48 * 48 * 3];
    for _ in 0..jobs {
        let side = [16, 32, 48][rng.usize(..3)];
        let r = c_abi::request("a lighthouse");
        assert_eq!(flux_request_set_size(r, side, side), FluxResult::Ok);
        assert_eq!(flux_request_set_steps(r, rng.u32(1..3)), FluxResult::Ok);
        assert_eq!(flux_request_set_t5_length(r, 8), FluxResult::Ok);
        let priority = [
            FLUX_PRIORITY_BATCH,
            FLUX_PRIORITY_NORMAL,
            FLUX_PRIORITY_INTERACTIVE,
        ];
        let p = priority[rng.usize(..3)];
        assert_eq!(flux_request_set_priority(r, p), FluxResult::Ok);
        let mut job = 0;
        // SAFETY: a live engine and request; `job` is a live local.
        let code = unsafe { flux_engine_submit(e, r, &mut job) };
        // SAFETY: a live request, destroyed once.
        assert_eq!(unsafe { flux_request_destroy(r) }, FluxResult::Ok);
        if code != FluxResult::Ok {
            // The engine is being destroyed by another thread.
            assert_eq!(code, FluxResult::InvalidHandle);
            break;
        }
        submitted.push(job);
        match rng.u8(..10) {
            0 | 1 => {
                // SAFETY: handles are checked by the library.
                let _ = unsafe { flux_job_cancel(e, job, std::ptr::null_mut()) };
            }
            2..=4 => {
                let mut state = -1;
                // SAFETY: `state` is a live local.
                let code = unsafe { flux_job_wait(e, job, 60_000, &mut state) };
                if code == FluxResult::Ok && state == FluxJobState::Succeeded as i32 {
                    // No result lost: the image is there until the job is released.
                    let desc =
                        c_abi::image_desc(side, side, FluxPixelFormat::Rgb8, side as u64 * 3);
                    let image = c_abi::host_image(&desc, &mut pixels).unwrap();
                    // SAFETY: live handles.
                    let wrote = unsafe { flux_job_write_image(e, job, image, 0) };
                    assert!(
                        matches!(wrote, FluxResult::Ok | FluxResult::InvalidHandle),
                        "a succeeded job's image: {wrote:?} {}",
                        c_abi::last_error()
                    );
                    // SAFETY: a live image, destroyed once.
                    assert_eq!(unsafe { flux_image_destroy(image) }, FluxResult::Ok);
                }
            }
            5 => {
                // SAFETY: handles are checked by the library.
                let _ = unsafe { flux_job_release(e, job) };
            }
            6 => {
                let budget = [FLUX_MEMORY_BUDGET_AUTO, 1 << 40][rng.usize(..2)];
                // SAFETY: handles are checked by the library.
                let _ = unsafe { flux_engine_set_memory_budget(e, budget) };
            }
            _ => {
                let mut event = std::mem::MaybeUninit::<FluxEvent>::zeroed();
                // SAFETY: a zeroed event with its size set: the library writes within it.
                unsafe {
                    (*event.as_mut_ptr()).struct_size = std::mem::size_of::<FluxEvent>() as u32;
                    let code = flux_engine_poll_event(e, event.as_mut_ptr());
                    // With a callback, nothing is queued for polling.
                    assert!(matches!(
                        code,
                        FluxResult::NoEvent | FluxResult::InvalidHandle
                    ));
                }
            }
        }
    }
    submitted
}

/// One round on a fresh engine; `abandon` destroys it with jobs in flight. Returns the jobs
/// submitted.
fn round(model: &CString, index: usize, jobs: usize, abandon: bool) -> Vec<FluxJob> {
    let mut desc = std::mem::MaybeUninit::<FluxEngineDesc>::zeroed();
    let mut e = std::ptr::null_mut();
    // SAFETY: the C ABI as documented: pointers to live locals; `index` is the callback's data.
    unsafe {
        flux_engine_desc_defaults(
            desc.as_mut_ptr(),
            std::mem::size_of::<FluxEngineDesc>() as u32,
        );
        let mut desc = desc.assume_init();
        desc.callback = Some(on_event);
        desc.user_data = index as *mut c_void;
        assert_eq!(flux_engine_create(&desc, &mut e), FluxResult::Ok);
        let mut md = std::mem::MaybeUninit::<FluxModelDesc>::zeroed();
        flux_model_desc_defaults(md.as_mut_ptr(), std::mem::size_of::<FluxModelDesc>() as u32);
        let mut md = md.assume_init();
        md.folder = model.as_ptr();
        let (mut job, mut state) = (0, -1);
        assert_eq!(flux_engine_load_model(e, &md, &mut job), FluxResult::Ok);
        assert_eq!(flux_job_wait(e, job, 120_000, &mut state), FluxResult::Ok);
        assert_eq!(state, FluxJobState::Succeeded as i32);
    }
    let engine = Arc::new(Engine(e));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || host_thread(&engine, (index * 4 + t) as u64, jobs / 4))
        })
        .collect();
    if abandon {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: a live engine; the host threads see INVALID_HANDLE from here on.
        assert_eq!(unsafe { flux_engine_destroy(e) }, FluxResult::Ok);
    }
    let submitted: Vec<FluxJob> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    if !abandon {
        for &job in &submitted {
            // SAFETY: a live engine; released jobs answer UNKNOWN_JOB.
            let code = unsafe { flux_job_wait(e, job, 120_000, std::ptr::null_mut()) };
            assert!(
                matches!(code, FluxResult::Ok | FluxResult::UnknownJob),
                "{code:?}"
            );
        }
        // SAFETY: a live engine, destroyed once.
        assert_eq!(unsafe { flux_engine_destroy(e) }, FluxResult::Ok);
    }
    submitted
}

#[test]
fn engines_and_jobs_from_four_threads_end_cleanly_and_leak_nothing() {
    let s = Scratch::new("soak");
    tiny_dev_model(&s.0.join("model"));
    let model = CString::new(s.0.join("model").to_str().unwrap()).unwrap();
    let total: usize = std::env::var("FLUX_SOAK_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    // Rounds of up to 40 jobs, at least two (one engine destroyed with jobs in flight).
    let rounds = (total / 40).max(2);
    let per_round = (total / rounds).max(4);
    // The runner reports each round; a round that never ends is a deadlock.
    let (tx, rx) = mpsc::channel();
    let runner = std::thread::spawn(move || {
        let mut warm = 0;
        let mut counts = (0, 0);
        for i in 0..rounds {
            let abandon = i % 2 == 1;
            let jobs = round(&model, i, per_round, abandon);
            let seen = TERMINAL.lock().unwrap();
            for job in &jobs {
                let n = seen.get(&(i, *job)).copied().unwrap_or(0);
                assert!(n <= 1, "round {i} job {job}: {n} terminal events");
                assert!(abandon || n == 1, "round {i} job {job}: no terminal event");
            }
            counts.0 += jobs.len();
            counts.1 += usize::from(abandon);
            if i == 1 {
                warm = rss();
            }
            tx.send(None).unwrap();
        }
        tx.send(Some((warm, rss(), counts))).unwrap();
    });
    let summary = loop {
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(None) => continue,
            Ok(Some(summary)) => break Some(summary),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("a soak round deadlocked (300 s)"),
            // The runner failed a check: its panic is raised below.
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
        }
    };
    if let Err(panic) = runner.join() {
        std::panic::resume_unwind(panic);
    }
    let (warm, end, (jobs, abandoned)) = summary.expect("the runner reports before it ends");
    eprintln!(
        "soak: {rounds} engines ({abandoned} destroyed with jobs in flight), {jobs} jobs; RSS \
         {} MiB after warm-up, {} MiB at the end",
        warm >> 20,
        end >> 20
    );
    assert!(
        end <= warm + (64 << 20),
        "RSS grew from {} to {} MiB",
        warm >> 20,
        end >> 20
    );
}
