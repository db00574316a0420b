//! Sequences of C ABI calls with hostile arguments on the tiny model (`abi_sequence/`), each run
//! under a watchdog (no hang): a long seeded random one, and the `abi` fuzz target's corpus
//! (`tests/fuzz/corpus/abi/`, crash inputs included) replayed.
//!
//! `FLUX_ABI_FUZZ_OPS` (actions, default 1500; a submit is a dozen calls) and `FLUX_ABI_FUZZ_SEED`
//! make longer or other random runs.

#[path = "../../tests/support/mod.rs"]
mod support;

mod abi_sequence;
mod c_abi;

use std::ffi::CString;
use std::sync::mpsc;
use std::time::Duration;

use abi_sequence::{Choices, Sequence, FUZZ_ACTIONS, FUZZ_SETTLE_MS};
use flux_engine::types::FluxResult;
use support::{tiny_dev_model, Scratch};

/// Runs `f` on its own thread; fails the test if it has not returned after `seconds`.
fn watched<T: Send + 'static>(seconds: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let runner = std::thread::spawn(move || tx.send(f()).unwrap());
    let out = rx
        .recv_timeout(Duration::from_secs(seconds))
        .unwrap_or_else(|_| panic!("the call sequences hung (watchdog: {seconds} s)"));
    runner.join().unwrap();
    out
}

fn tiny_model(s: &Scratch) -> CString {
    tiny_dev_model(&s.0.join("model"));
    CString::new(s.0.join("model").to_str().unwrap()).unwrap()
}

#[test]
fn random_call_sequences_end_in_codes_never_in_panics_or_hangs() {
    let s = Scratch::new("abi-sequences");
    let model = tiny_model(&s);
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (ops, seed) = (env("FLUX_ABI_FUZZ_OPS", 1500), env("FLUX_ABI_FUZZ_SEED", 7));
    let choices = Choices::Seeded(fastrand::Rng::with_seed(seed));
    let (calls, succeeded, codes) = watched(600, move || {
        Sequence::new(choices, model).run(ops as usize, 60_000)
    });
    eprintln!("{calls} calls, {succeeded} jobs seen to succeed, result codes {codes:?}");
    assert!(calls >= ops as usize, "{calls} calls");
    assert!(succeeded > 0, "no job ran to the end among {calls} calls");
    // The hostile arguments were refused, and some jobs did run.
    assert!(codes.contains(&FluxResult::InvalidArgument), "{codes:?}");
    assert!(codes.contains(&FluxResult::Ok), "{codes:?}");
}

#[test]
fn the_abi_fuzz_corpus_replays_without_panics_or_hangs() {
    let s = Scratch::new("abi-corpus");
    let model = tiny_model(&s);
    let dir = support::root().join("tests/fuzz/corpus/abi");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    let replayed = files.len();
    let calls = watched(300, move || {
        let mut calls = 0;
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            let sequence = Sequence::new(Choices::Bytes(&bytes), model.clone());
            calls += sequence.run(FUZZ_ACTIONS, FUZZ_SETTLE_MS).0;
        }
        calls
    });
    eprintln!("{replayed} inputs, {calls} calls");
    assert!(calls >= replayed, "{calls} calls for {replayed} inputs");
}
