//! Host-side latency of the runtime, measured on the host thread while a job runs on the worker:
//! p50 / p99 / max of `submit`, `poll_event` and `cancel`, and the time from cancelling a running
//! job to its `Cancelled` event. Tiny model, CPU.
//!
//! `cargo bench -p flux-core --bench runtime`

use std::time::{Duration, Instant};

use flux_core::model::Variant;
use flux_core::pipeline::TextToImage;
use flux_core::runtime::job::{PRIORITY_BATCH, PRIORITY_NORMAL};
use flux_core::runtime::{Engine, EngineOptions, Event, JobRequest, JobState};
use flux_core::tiny::{self, Layout};

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:<28} n={:<6} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}",
        samples.len(),
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn request(steps: usize, size: usize, seed: u64) -> JobRequest {
    JobRequest::TextToImage(TextToImage {
        width: size,
        height: size,
        steps: Some(steps),
        t5_len: Some(16),
        ..TextToImage::new("a lighthouse", seed)
    })
}

/// Waits until `job` has done `steps` steps; an error if it ends first.
fn wait_for_step(
    engine: &Engine,
    job: flux_core::runtime::JobId,
    steps: usize,
) -> flux_core::Result<()> {
    loop {
        let s = engine.status(job)?;
        if s.step >= steps {
            return Ok(());
        }
        if s.state.is_terminal() {
            return Err(flux_core::Error::InvalidArgument(format!(
                "job ended early: {s:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() -> flux_core::Result<()> {
    let dir = std::env::temp_dir().join(format!("flux-runtime-bench-{}", std::process::id()));
    let files = tiny::write_tiny_model(
        &tiny::default_fixtures_dir(),
        &dir,
        Variant::Dev,
        Layout::SingleFiles,
    )?;
    let engine = Engine::new(EngineOptions::default())?;
    let load = engine.submit(
        JobRequest::LoadModel {
            files,
            dtype: None,
            kontext: None,
        },
        PRIORITY_NORMAL,
    )?;
    assert_eq!(
        engine.wait(load, Duration::from_secs(60))?,
        JobState::Succeeded
    );
    while engine.poll_event().is_some() {}

    // A long job keeps the worker busy while the host measures.
    let busy = engine.submit(request(1000, 256, 0), PRIORITY_NORMAL)?;
    wait_for_step(&engine, busy, 1)?;
    let n = 10_000;
    let mut ids = Vec::with_capacity(n);
    let mut submit = Vec::with_capacity(n);
    for i in 0..n {
        let req = request(1, 16, i as u64);
        let t = Instant::now();
        ids.push(engine.submit(req, PRIORITY_BATCH)?);
        submit.push(t.elapsed());
    }
    let mut poll = Vec::with_capacity(2 * n);
    for _ in 0..2 * n {
        let t = Instant::now();
        let _ = engine.poll_event();
        poll.push(t.elapsed());
    }
    let mut cancel = Vec::with_capacity(n);
    for &id in &ids {
        let t = Instant::now();
        engine.cancel(id)?;
        cancel.push(t.elapsed());
    }
    engine.cancel(busy)?;
    engine.wait(busy, Duration::from_secs(60))?;
    for id in ids {
        engine.release(id)?;
    }

    // Cancel of a running job -> its Cancelled event, observed by polling.
    let mut to_event = Vec::new();
    for i in 0..20 {
        let job = engine.submit(request(1000, 128, i), PRIORITY_NORMAL)?;
        wait_for_step(&engine, job, 2)?;
        while engine.poll_event().is_some() {}
        let t = Instant::now();
        engine.cancel(job)?;
        loop {
            match engine.poll_event() {
                Some(Event::Cancelled { job: j }) if j == job => break,
                Some(Event::Finished { job: j, .. } | Event::Failed { job: j, .. }) if j == job => {
                    return Err(flux_core::Error::InvalidArgument(
                        "the job ended before the cancel".into(),
                    ))
                }
                _ => std::hint::spin_loop(),
            }
        }
        to_event.push(t.elapsed());
        engine.release(job)?;
    }
    let step_ms = {
        let job = engine.submit(request(10, 128, 99), PRIORITY_NORMAL)?;
        let t = Instant::now();
        engine.wait(job, Duration::from_secs(60))?;
        t.elapsed().as_secs_f64() * 100.0
    };
    println!("host-thread latency while a job runs (tiny model, CPU; cancel-to-event at 128x128):");
    report("submit", submit);
    report("poll_event", poll);
    report("cancel (queued job)", cancel);
    report("cancel -> Cancelled event", to_event);
    println!("(one denoising step of the running job: ~{step_ms:.1} ms)");
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
