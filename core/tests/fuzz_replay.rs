//! Replays every fuzz target's seeds and committed corpus (`tests/fuzz/corpus/<target>/`, which
//! holds each input a fuzzing run found interesting, crashes included) through its parser: each
//! must end as a value or an error, never a panic. Runs in CI in seconds; `core/fuzz/run.sh` is
//! the fuzzer that grows the corpus.

mod common;
mod fuzz;

use std::panic::{catch_unwind, AssertUnwindSafe};

#[test]
fn every_fuzz_input_ends_as_a_value_or_an_error() {
    let corpus = common::fixtures().join("../fuzz/corpus");
    let mut replayed = 0;
    for target in fuzz::TARGETS {
        let s = common::Scratch::new(&format!("fuzz-{}", target.name));
        let mut inputs = (target.seeds)(&s.0);
        let found = corpus.join(target.name);
        if let Ok(entries) = std::fs::read_dir(&found) {
            let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            inputs.extend(files.iter().map(|f| std::fs::read(f).unwrap()));
        }
        for (i, input) in inputs.iter().enumerate() {
            let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&s.0, input)));
            assert!(outcome.is_ok(), "{} input {i} panicked", target.name);
            replayed += 1;
        }
        // The seeds are valid: each parses.
        for seed in (target.seeds)(&s.0) {
            assert_eq!(
                (target.run)(&s.0, &seed),
                None,
                "{}: a seed failed",
                target.name
            );
        }
    }
    assert!(replayed >= fuzz::TARGETS.len());
}
