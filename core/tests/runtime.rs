//! The engine runtime on the tiny model: event order, cancellation, priorities, 1,000 jobs,
//! the bounded poll queue, shutdown with jobs in flight, memory budget, panics, callbacks, the
//! prompt cache.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use flux_core::model::BlockResidency;
use flux_core::model::{FluxModel, LoadOptions, ModelFiles, Variant};
use flux_core::pipeline::{self, TextToImage};
use flux_core::runtime::events::QUEUE_CAPACITY;
use flux_core::runtime::job::{PRIORITY_BATCH, PRIORITY_INTERACTIVE, PRIORITY_NORMAL};
use flux_core::runtime::plan::{self, Limits, Work};
use flux_core::runtime::{
    CancelOutcome, Engine, EngineOptions, Event, JobId, JobOutput, JobRequest, JobState, Plan,
    TextPlacement,
};
use flux_core::tiny::Layout;

const WAIT: Duration = Duration::from_secs(120);

fn request(prompt: &str, seed: u64, steps: usize, size: usize) -> TextToImage {
    TextToImage {
        width: size,
        height: size,
        steps: Some(steps),
        t5_len: Some(16),
        ..TextToImage::new(prompt, seed)
    }
}

/// Queues a text-to-image job at normal priority.
fn submit(engine: &Engine, prompt: &str, seed: u64, steps: usize, size: usize) -> JobId {
    engine
        .submit(
            JobRequest::TextToImage(request(prompt, seed, steps, size)),
            PRIORITY_NORMAL,
        )
        .unwrap()
}

/// A request to load the tiny model in `files`.
fn load_request(files: &ModelFiles) -> JobRequest {
    JobRequest::LoadModel {
        files: files.clone(),
        dtype: None,
        kontext: None,
    }
}

fn load(engine: &Engine, files: &ModelFiles) {
    let id = engine.submit(load_request(files), PRIORITY_NORMAL).unwrap();
    assert_eq!(
        engine.wait(id, WAIT).unwrap(),
        JobState::Succeeded,
        "{:?}",
        engine.status(id)
    );
}

/// The tiny model written under `name`, and an engine with `options` that has loaded it.
fn loaded_engine(name: &str, variant: Variant, options: EngineOptions) -> (Scratch, Engine) {
    let (s, files) = tiny_model(name, variant, Layout::SingleFiles);
    let engine = Engine::new(options).unwrap();
    load(&engine, &files);
    (s, engine)
}

fn drain(engine: &Engine) -> Vec<Event> {
    std::iter::from_fn(|| engine.poll_event()).collect()
}

fn image_of(engine: &Engine, id: JobId) -> flux_core::image::RgbImage {
    match engine.take_result(id).unwrap() {
        JobOutput::Image(g) => g.image.clone(),
        other => panic!("not an image: {other:?}"),
    }
}

fn job_events(events: &[Event], id: JobId) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| match e {
            Event::Queued { job }
            | Event::Started { job }
            | Event::Progress { job, .. }
            | Event::Preview { job, .. }
            | Event::Finished { job, .. }
            | Event::Failed { job, .. }
            | Event::Cancelled { job } => *job == id,
            Event::Log { .. } | Event::Residency { .. } => false,
        })
        .collect()
}

#[test]
fn whole_job_events_in_order_and_result_equals_the_rust_api() {
    let (_s, files) = tiny_model("rt-events", Variant::Dev, Layout::SingleFiles);
    let engine = Engine::new(EngineOptions {
        preview_every: 2,
        ..EngineOptions::default()
    })
    .unwrap();
    load(&engine, &files);
    let req = request("a red cat", 3, 4, 32);
    let id = engine
        .submit(JobRequest::TextToImage(req.clone()), PRIORITY_NORMAL)
        .unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Succeeded);
    let events = drain(&engine);
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Log { message, .. } if message.contains("FLUX transformer"))
        ),
        "log lines routed"
    );
    let ev = job_events(&events, id);
    let kinds: Vec<String> = ev
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Queued", "Started", "Progress", "Progress", "Preview", "Progress", "Progress",
            "Finished"
        ],
        "{ev:?}"
    );
    let steps: Vec<(usize, usize)> = ev
        .iter()
        .filter_map(|e| {
            if let Event::Progress { step, total, .. } = e {
                Some((*step, *total))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(steps, [(1, 4), (2, 4), (3, 4), (4, 4)]);
    match ev[4] {
        Event::Preview { step: 2, image, .. } => assert_eq!((image.width, image.height), (4, 4)),
        other => panic!("{other:?}"),
    }
    let image = image_of(&engine, id);
    assert!(engine.take_result(id).is_err(), "a result is taken once");
    let mut model = FluxModel::load(&files, &LoadOptions::default()).unwrap();
    let direct = pipeline::generate(&mut model, &req, &mut pipeline::no_hook()).unwrap();
    assert_eq!(image, direct.image);
    assert_eq!(engine.cancel(id).unwrap(), CancelOutcome::AlreadyFinished);
    engine.release(id).unwrap();
    assert!(engine.status(id).is_err(), "released handles are unknown");
}

#[test]
fn cancel_queued_and_running_jobs() {
    let (_s, engine) = loaded_engine("rt-cancel", Variant::Dev, EngineOptions::default());
    let long = submit(&engine, "a dog", 1, 200, 64);
    let queued = submit(&engine, "a dog", 2, 2, 32);
    // Wait for the long job's first steps, then cancel both.
    let deadline = Instant::now() + WAIT;
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|e| matches!(e, Event::Progress { job, step: 2, .. } if *job == long))
    {
        assert!(Instant::now() < deadline, "no progress");
        events.extend(drain(&engine));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(engine.cancel(queued).unwrap(), CancelOutcome::Dequeued);
    let seen_at_cancel = engine.status(long).unwrap().step;
    assert_eq!(engine.cancel(long).unwrap(), CancelOutcome::Requested);
    assert_eq!(engine.wait(long, WAIT).unwrap(), JobState::Cancelled);
    assert_eq!(engine.status(queued).unwrap().state, JobState::Cancelled);
    events.extend(drain(&engine));
    let last_step = events
        .iter()
        .filter_map(|e| {
            if let Event::Progress { job, step, .. } = e {
                (*job == long).then_some(*step)
            } else {
                None
            }
        })
        .max()
        .unwrap();
    assert!(
        last_step <= seen_at_cancel + 1,
        "ran on to step {last_step} after a cancel at step {seen_at_cancel}"
    );
    assert!(
        !job_events(&events, queued)
            .iter()
            .any(|e| matches!(e, Event::Started { .. })),
        "a cancelled queued job never starts"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Cancelled { job } if *job == long)));
    // The worker goes on with the next job.
    let next = submit(&engine, "a dog", 3, 1, 16);
    assert_eq!(engine.wait(next, WAIT).unwrap(), JobState::Succeeded);
}

#[test]
fn priorities_first_then_submission_order() {
    let (_s, engine) = loaded_engine("rt-priority", Variant::Schnell, EngineOptions::default());
    let blocker = submit(&engine, "x", 0, 30, 64);
    while engine.status(blocker).unwrap().state == JobState::Queued {
        std::thread::sleep(Duration::from_millis(1));
    }
    let submit = |p| {
        engine
            .submit(JobRequest::TextToImage(request("x", 1, 1, 16)), p)
            .unwrap()
    };
    let (b1, n1, i1, b2, i2, n2) = (
        submit(PRIORITY_BATCH),
        submit(PRIORITY_NORMAL),
        submit(PRIORITY_INTERACTIVE),
        submit(PRIORITY_BATCH),
        submit(PRIORITY_INTERACTIVE),
        submit(PRIORITY_NORMAL),
    );
    assert_eq!(engine.wait(b2, WAIT).unwrap(), JobState::Succeeded);
    let started: Vec<JobId> = drain(&engine)
        .into_iter()
        .filter_map(|e| {
            if let Event::Started { job } = e {
                Some(job)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(started[started.len() - 6..], [i1, i2, n1, n2, b1, b2]);
}

#[test]
fn a_thousand_jobs_with_random_priorities_and_cancels_each_end_once() {
    // Counted as they happen: thousands of events would overflow the poll queue.
    let terminal_events = Arc::new(Mutex::new(HashMap::<JobId, usize>::new()));
    let counts = terminal_events.clone();
    let (_s, engine) = loaded_engine(
        "rt-thousand",
        Variant::Schnell,
        EngineOptions {
            callback: Some(Box::new(move |e: &Event| {
                if let Event::Finished { job, .. }
                | Event::Failed { job, .. }
                | Event::Cancelled { job } = e
                {
                    *counts.lock().unwrap().entry(*job).or_default() += 1;
                }
            })),
            ..EngineOptions::default()
        },
    );
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut ids = Vec::new();
    for i in 0..1000u64 {
        let priority = (next() % 5) as i32 - 2;
        let id = engine
            .submit(
                JobRequest::TextToImage(request("a cat", i, 1, 16)),
                priority,
            )
            .unwrap();
        ids.push(id);
        if next() % 4 == 0 {
            let victim = ids[(next() % ids.len() as u64) as usize];
            engine.cancel(victim).unwrap();
        }
    }
    let deadline = Instant::now() + WAIT;
    for &id in &ids {
        let state = engine
            .wait(id, deadline.saturating_duration_since(Instant::now()))
            .unwrap();
        assert!(state.is_terminal(), "job {id:?} did not finish");
    }
    let terminal_events = terminal_events.lock().unwrap();
    let (mut ok, mut cancelled) = (0, 0);
    for &id in &ids {
        assert_eq!(
            terminal_events.get(&id),
            Some(&1),
            "job {id:?}: exactly one terminal event"
        );
        match engine.status(id).unwrap().state {
            JobState::Succeeded => {
                ok += 1;
                assert!(
                    matches!(engine.take_result(id), Ok(JobOutput::Image(_))),
                    "result lost for {id:?}"
                );
            }
            JobState::Cancelled => cancelled += 1,
            other => panic!("{id:?} ended {other:?}"),
        }
    }
    assert_eq!(ok + cancelled, 1000);
    assert!(
        ok > 0 && cancelled > 0,
        "{ok} succeeded, {cancelled} cancelled"
    );
}

#[test]
fn a_host_that_never_polls_keeps_only_the_latest_events() {
    let (_s, engine) = loaded_engine(
        "rt-unpolled",
        Variant::Schnell,
        EngineOptions {
            preview_every: 1,
            ..EngineOptions::default()
        },
    );
    // A progress and a preview event per step: more than the queue holds.
    let steps = QUEUE_CAPACITY / 2 + 50;
    let job = submit(&engine, "x", 0, steps, 16);
    assert_eq!(engine.wait(job, WAIT).unwrap(), JobState::Succeeded);
    let events = drain(&engine);
    assert_eq!(events.len(), QUEUE_CAPACITY, "the queue stays bounded");
    assert!(
        engine.dropped_events() >= 100,
        "{}",
        engine.dropped_events()
    );
    let last = job_events(&events, job);
    assert!(
        matches!(last.last(), Some(Event::Finished { .. })),
        "the newest events are kept: {:?}",
        last.last()
    );
    assert_eq!(engine.status(job).unwrap().state, JobState::Succeeded);
}

#[test]
fn dropping_the_engine_with_jobs_in_flight_joins_in_bounded_time() {
    let (_s, files) = tiny_model("rt-drop", Variant::Dev, Layout::SingleFiles);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let engine = Engine::new(EngineOptions::default()).unwrap();
        load(&engine, &files);
        let running = submit(&engine, "x", 0, 500, 64);
        for i in 0..20 {
            submit(&engine, "x", i, 500, 64);
        }
        while engine.status(running).unwrap().step == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now();
        drop(engine);
        tx.send(start.elapsed()).unwrap();
    });
    let took = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("engine drop hung");
    assert!(took < Duration::from_secs(10), "drop took {took:?}");
}

/// Bytes the smallest plan on the CPU needs for `bytes`' weights and `work`.
fn smallest_need(bytes: &flux_core::model::ComponentBytes, work: &Work) -> String {
    let plans = plan::candidates(true);
    let p = plan::smallest(&plans, bytes, work, true);
    p.need(bytes, work, true).device.to_string()
}

#[test]
fn memory_budget_releases_text_encoders_and_gives_the_same_images() {
    let (_s, files) = tiny_model("rt-budget", Variant::Dev, Layout::SingleFiles);
    let bytes = flux_core::model::component_bytes(&files, &LoadOptions::default()).unwrap();
    let work = work_of(&files, &request("a castle", 9, 2, 32));
    let generate = |budget: u64, seed: u64| {
        let engine = Engine::new(EngineOptions {
            memory_budget: budget,
            ..EngineOptions::default()
        })
        .unwrap();
        load(&engine, &files);
        let id = submit(&engine, "a castle", seed, 2, 32);
        let state = engine.wait(id, WAIT).unwrap();
        assert_eq!(state, JobState::Succeeded, "{:?}", engine.status(id));
        (image_of(&engine, id), engine.residency(), engine)
    };
    let (full, r_full, _e1) = generate(u64::MAX, 9);
    assert_eq!(r_full.text_encoders, bytes.text_encoders);
    assert_eq!(r_full.plan, Plan::RESIDENT);
    assert!(!r_full.release_text_encoders);
    let tight =
        bytes.transformer() + bytes.autoencoder + work.peak(false) + bytes.text_encoders / 2;
    let (small, r_small, engine) = generate(tight, 9);
    assert_eq!(small, full, "releasing the encoders changed the image");
    assert!(r_small.release_text_encoders);
    assert_eq!(r_small.plan.text, TextPlacement::Released);
    assert_eq!(r_small.plan.blocks, BlockResidency::Resident);
    assert_eq!(
        r_small.text_encoders, 0,
        "encoders still resident: {r_small:?}"
    );
    assert_eq!(r_small.total(), bytes.transformer() + bytes.autoencoder);
    // Lowering the budget below every plan unloads the model, with an event and the next job's
    // error saying why, with the numbers.
    drain(&engine);
    engine.set_memory_budget(1);
    let id = submit(&engine, "a castle", 1, 1, 16);
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Failed);
    assert_eq!(engine.residency().total(), 0);
    let error = engine.status(id).unwrap().error.unwrap();
    // Planned for the activations of the last job.
    let needed = smallest_need(&bytes, &work);
    assert!(
        error.contains("no model is loaded")
            && error.contains("memory budget is 1 bytes")
            && error.contains(&needed),
        "{error}"
    );
    let unloaded = drain(&engine).into_iter().find_map(|e| match e {
        Event::Residency { reason, residency } => Some((reason, residency)),
        _ => None,
    });
    let (reason, residency) = unloaded.expect("a residency event for the unload");
    assert!(
        reason.contains("unloaded") && reason.contains(&needed),
        "{reason}"
    );
    assert_eq!(residency.total(), 0);
    // A model that cannot fit is refused with an error.
    let refused = engine
        .submit(load_request(&files), PRIORITY_NORMAL)
        .unwrap();
    assert_eq!(engine.wait(refused, WAIT).unwrap(), JobState::Failed);
    let error = engine.status(refused).unwrap().error.unwrap();
    let needed = smallest_need(&bytes, &Work::NONE);
    assert!(
        error.contains("memory budget") && error.contains(&needed),
        "{error}"
    );
}

#[test]
fn a_panic_inside_a_job_fails_it_and_the_engine_stays_usable() {
    let (_s, files) = tiny_model("rt-panic", Variant::Schnell, Layout::SingleFiles);
    let armed = Arc::new(Mutex::new(true));
    let a = armed.clone();
    let callback = Box::new(move |e: &Event| {
        if matches!(e, Event::Progress { .. }) && *a.lock().unwrap() {
            *a.lock().unwrap() = false;
            panic!("host callback bug");
        }
    });
    let engine = Engine::new(EngineOptions {
        callback: Some(callback),
        ..EngineOptions::default()
    })
    .unwrap();
    load(&engine, &files);
    let bad = submit(&engine, "x", 0, 2, 16);
    assert_eq!(engine.wait(bad, WAIT).unwrap(), JobState::Failed);
    assert!(engine
        .status(bad)
        .unwrap()
        .error
        .unwrap()
        .contains("host callback bug"));
    let good = submit(&engine, "x", 0, 2, 16);
    assert_eq!(engine.wait(good, WAIT).unwrap(), JobState::Succeeded);
}

#[test]
fn waiting_or_destroying_from_the_callback_is_refused_without_deadlock() {
    let slot: Arc<Mutex<Option<Engine>>> = Arc::new(Mutex::new(None));
    let outcome: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let (s2, o2) = (slot.clone(), outcome.clone());
    let callback = Box::new(move |e: &Event| {
        match e {
            Event::Started { job } => o2.lock().unwrap().push(format!("started {}", job.0)),
            Event::Cancelled { job } => o2.lock().unwrap().push(format!("cancelled {}", job.0)),
            _ => {}
        }
        if let Event::Progress { job, .. } = e {
            if let Ok(mut guard) = s2.try_lock() {
                if let Some(engine) = guard.as_ref() {
                    o2.lock()
                        .unwrap()
                        .push(format!("{:?}", engine.wait(*job, Duration::from_secs(1))));
                    // Dropping the engine here must not deadlock: the worker cannot join itself.
                    guard.take();
                    o2.lock().unwrap().push("dropped".into());
                }
            }
        }
    });
    let (_s, engine) = loaded_engine(
        "rt-callback",
        Variant::Schnell,
        EngineOptions {
            callback: Some(callback),
            ..EngineOptions::default()
        },
    );
    let first = submit(&engine, "x", 0, 2, 16);
    // Queued behind it: the engine dropped in the callback must stop rather than run them.
    let queued = [1, 2].map(|seed| submit(&engine, "x", seed, 50, 64));
    *slot.lock().unwrap() = Some(engine);
    let deadline = Instant::now() + WAIT;
    let want: Vec<String> = queued
        .iter()
        .map(|j| format!("cancelled {}", j.0))
        .collect();
    while !want.iter().all(|w| outcome.lock().unwrap().contains(w)) {
        assert!(
            Instant::now() < deadline,
            "the queued jobs were not cancelled: {:?}",
            outcome.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The load job, then `first`, whose progress drops the engine; nothing else starts.
    let o = outcome.lock().unwrap();
    assert_eq!(o[1], format!("started {}", first.0), "{o:?}");
    assert!(o[2].contains("Err") && o[2].contains("callback"), "{o:?}");
    assert_eq!(o[3], "dropped");
    assert_eq!(
        o.iter().filter(|e| e.starts_with("started")).count(),
        2,
        "{o:?}"
    );
}

#[test]
fn a_callback_that_panics_outside_a_job_does_not_stop_the_worker() {
    // It panics on warnings: a budget lowered below every plan unloads the model with one, on
    // the worker between jobs.
    let callback = Box::new(|e: &Event| {
        if let Event::Log {
            level: log::Level::Warn,
            ..
        } = e
        {
            panic!("the host's callback failed");
        }
    });
    let (s, engine) = loaded_engine(
        "rt-panic-outside",
        Variant::Schnell,
        EngineOptions {
            callback: Some(callback),
            ..EngineOptions::default()
        },
    );
    engine.set_memory_budget(1);
    let deadline = Instant::now() + WAIT;
    while engine.residency().total() != 0 {
        assert!(Instant::now() < deadline, "the model was not unloaded");
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.set_memory_budget(flux_core::runtime::MEMORY_BUDGET_AUTO);
    let files = ModelFiles::from_folder(&s.0.join("model")).unwrap();
    let id = engine
        .submit(load_request(&files), PRIORITY_NORMAL)
        .unwrap();
    assert_eq!(
        engine.wait(id, Duration::from_secs(60)).unwrap(),
        JobState::Succeeded
    );
    let id = submit(&engine, "still here", 1, 1, 16);
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Succeeded);
}

#[test]
fn same_prompt_new_seed_skips_text_encoding() {
    let (_s, engine) = loaded_engine("rt-cache", Variant::Schnell, EngineOptions::default());
    let a = submit(&engine, "a blue house", 1, 1, 16);
    let b = submit(&engine, "a blue house", 2, 1, 16);
    assert_eq!(engine.wait(b, WAIT).unwrap(), JobState::Succeeded);
    let cached: Vec<(JobId, bool)> = drain(&engine)
        .into_iter()
        .filter_map(|e| match e {
            Event::Finished {
                job,
                embedding_cached,
                ..
            } if job == a || job == b => Some((job, embedding_cached)),
            _ => None,
        })
        .collect();
    assert_eq!(cached, [(a, false), (b, true)]);
    assert_ne!(image_of(&engine, a), image_of(&engine, b));
}

#[test]
fn jobs_without_a_model_or_with_bad_input_fail_cleanly() {
    let engine = Engine::new(EngineOptions::default()).unwrap();
    let id = submit(&engine, "x", 0, 1, 16);
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Failed);
    assert!(engine
        .status(id)
        .unwrap()
        .error
        .unwrap()
        .contains("no model"));
    let missing = ModelFiles::from_folder(std::path::Path::new("/nonexistent"));
    assert!(missing.is_err());
    assert!(engine.status(JobId(9999)).is_err());
    assert!(engine.cancel(JobId(9999)).is_err());
}

#[test]
fn with_a_callback_events_go_only_to_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let (_s, engine) = loaded_engine(
        "rt-callback-only",
        Variant::Schnell,
        EngineOptions {
            callback: Some(Box::new(move |e: &Event| {
                s2.lock().unwrap().push(e.clone())
            })),
            ..EngineOptions::default()
        },
    );
    let job = submit(&engine, "x", 0, 2, 16);
    assert_eq!(engine.wait(job, WAIT).unwrap(), JobState::Succeeded);
    let seen = seen.lock().unwrap();
    assert!(seen
        .iter()
        .any(|e| matches!(e, Event::Finished { job: j, .. } if *j == job)));
    assert!(engine.poll_event().is_none(), "nothing queued for polling");
}

#[test]
fn a_running_model_load_stops_at_a_cancel() {
    let (_s, files) = tiny_model("rt-cancel-load", Variant::Schnell, Layout::SingleFiles);
    // The callback cancels the load as it starts (on the worker, before any weight is read).
    let slot: Arc<Mutex<Option<Arc<Engine>>>> = Arc::new(Mutex::new(None));
    let s2 = slot.clone();
    let engine = Arc::new(
        Engine::new(EngineOptions {
            callback: Some(Box::new(move |e: &Event| {
                if let Event::Started { job } = e {
                    if let Some(engine) = s2.lock().unwrap().as_ref() {
                        engine.cancel(*job).unwrap();
                    }
                }
            })),
            ..EngineOptions::default()
        })
        .unwrap(),
    );
    *slot.lock().unwrap() = Some(engine.clone());
    let id = engine
        .submit(load_request(&files), PRIORITY_NORMAL)
        .unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Cancelled);
    slot.lock().unwrap().take();
    let job = submit(&engine, "x", 0, 2, 16);
    assert_eq!(
        engine.wait(job, WAIT).unwrap(),
        JobState::Failed,
        "no model was loaded"
    );
}

#[test]
fn the_default_budget_is_the_memory_available_when_a_model_loads() {
    let (_s, files) = tiny_model("rt-auto-budget", Variant::Dev, Layout::SingleFiles);
    let bytes = flux_core::model::component_bytes(&files, &LoadOptions::default()).unwrap();
    let reserve = 1000;
    let engine_with = |available: u64| {
        Engine::new(EngineOptions {
            available_memory: Some(Arc::new(move || available)),
            memory_reserve: reserve,
            ..EngineOptions::default()
        })
        .unwrap()
    };
    // A machine with less free memory than the smallest plan: refused before loading, with
    // both numbers.
    let needed = smallest_need(&bytes, &Work::NONE);
    let small = engine_with(3000);
    let id = small.submit(load_request(&files), PRIORITY_NORMAL).unwrap();
    assert_eq!(small.wait(id, WAIT).unwrap(), JobState::Failed);
    let error = small.status(id).unwrap().error.unwrap();
    assert!(
        error.contains(&needed)
            && error.contains("the 2000 bytes available")
            && error.contains("less the reserve"),
        "{error}"
    );
    assert_eq!(small.residency().total(), 0);
    // Room for the transformer, autoencoder and the job's activations but not the encoders:
    // they are released after encoding, as with an explicit budget of that size.
    let work = work_of(&files, &request("a castle", 3, 1, 16));
    let tight =
        bytes.transformer() + bytes.autoencoder + work.peak(false) + bytes.text_encoders / 2;
    let engine = engine_with(tight + reserve);
    load(&engine, &files);
    let id = submit(&engine, "a castle", 3, 1, 16);
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Succeeded);
    let r = engine.residency();
    assert_eq!(r.budget, tight);
    assert!(r.release_text_encoders && r.text_encoders == 0, "{r:?}");
}

#[test]
fn a_full_size_checkpoint_is_planned_within_the_memory_or_refused_with_numbers() {
    let (s, mut files) = tiny_model("rt-sparse", Variant::Dev, Layout::SingleFiles);
    files.transformer = s.0.join("flux1-dev.safetensors");
    flux_core::sparse::write_flux1_dev(&files.transformer, flux_core::sparse::Storage::Bf16)
        .unwrap();
    let bytes = flux_core::model::component_bytes(&files, &LoadOptions::default()).unwrap();
    // 11.9 G parameters: 47.6 GB once expanded to f32 on the CPU, 23.8 GB kept bf16 when
    // streamed, 1.4 GB for the largest (double) block in f32.
    assert!(
        (47_000_000_000..48_000_000_000).contains(&bytes.transformer()),
        "{bytes:?}"
    );
    assert!(
        (23_000_000_000..24_000_000_000).contains(&bytes.stored_blocks()),
        "{bytes:?}"
    );
    assert!(
        (1_300_000_000..1_400_000_000).contains(&bytes.largest_block()),
        "{bytes:?}"
    );
    // A machine with 1 GiB available: refused before anything large is allocated.
    let engine_with = |available: u64| {
        Engine::new(EngineOptions {
            available_memory: Some(Arc::new(move || available)),
            memory_reserve: 0,
            ..EngineOptions::default()
        })
        .unwrap()
    };
    let available = 1u64 << 30;
    let engine = engine_with(available);
    let id = engine
        .submit(load_request(&files), PRIORITY_NORMAL)
        .unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Failed);
    let error = engine.status(id).unwrap().error.unwrap();
    let needed = smallest_need(&bytes, &Work::NONE);
    assert!(
        error.contains(&needed) && error.contains(&available.to_string()),
        "{error}"
    );
    assert_eq!(engine.residency().total(), 0);
    // 16 GiB, less than the bf16 blocks: the blocks read from the file for every step, two at
    // a time, as many kept resident (in f32) as fit.
    let cpu = |budget| Limits {
        budget,
        host: 0,
        on_cpu: true,
    };
    let p = plan::choose(&bytes, &Work::NONE, cpu(16 << 30), None).unwrap();
    assert!(
        matches!(p.blocks, BlockResidency::FromFiles { window: 2, resident } if resident > 0),
        "{p:?}"
    );
    assert!(p.need(&bytes, &Work::NONE, true).device <= 16 << 30);
    // This machine's available memory: a plan within it, or a refusal with the numbers (the
    // engine is never left to the kernel's OOM killer).
    let here = flux_core::memory::available();
    match plan::choose(&bytes, &Work::NONE, cpu(here), None) {
        Ok(p) => assert!(p.need(&bytes, &Work::NONE, true).device <= here, "{p:?}"),
        Err(e) => assert!(e.contains(&needed) && e.contains(&here.to_string()), "{e}"),
    }
    // 32 GB of RAM: streamed, two blocks at a time, inside it.
    let p = plan::choose(&bytes, &Work::NONE, cpu(32 << 30), None).unwrap();
    assert!(
        matches!(p.blocks, BlockResidency::Streamed { window: 2, .. }),
        "{p:?}"
    );
    // A GPU with an 8 GB budget and 64 GB of RAM: blocks streamed from host memory, the
    // device holding well under 8 GB; the text encoders on the CPU.
    let gpu =
        flux_core::model::component_bytes_on(&files, candle_core::DType::BF16, false).unwrap();
    let limits = Limits {
        budget: 8 << 30,
        host: 64 << 30,
        on_cpu: false,
    };
    let p = plan::choose(&gpu, &Work::NONE, limits, None).unwrap();
    assert!(matches!(p.blocks, BlockResidency::Streamed { .. }), "{p:?}");
    assert_eq!(p.text, TextPlacement::Host);
    let need = p.need(&gpu, &Work::NONE, false);
    assert!(need.device <= 8 << 30 && need.host <= 64 << 30, "{need:?}");
}
