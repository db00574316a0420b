//! Coverage-guided fuzzing with AFL++ through `cargo afl`, which works on stable Rust
//! (cargo-fuzz's libFuzzer needs nightly). The targets are the parsers in `core/tests/fuzz/` and
//! `abi`, whose input chooses a sequence of C ABI calls (`ffi/tests/abi_sequence/`). `run.sh`
//! builds it, seeds AFL with a target's seeds and committed corpus, fuzzes, and adds what the run
//! found to `tests/fuzz/corpus/`.
//!
//! - `flux-fuzz TARGET` (built by `cargo afl build`): AFL's persistent loop over its inputs.
//! - `flux-fuzz seeds TARGET DIR`: writes the target's seeds into DIR.
//! - `flux-fuzz TARGET FILE...` (any build): runs each file once and prints its outcome, to
//!   reproduce a finding without AFL; exits with 1 if one panicked.

#[path = "../../../core/tests/fuzz/mod.rs"]
mod fuzz;

#[path = "../../support/mod.rs"]
mod support;

#[path = "../../../ffi/tests/abi_sequence/mod.rs"]
mod abi_sequence;

#[path = "../../../ffi/tests/c_abi/mod.rs"]
mod c_abi;

use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use abi_sequence::{Choices, Sequence, FUZZ_ACTIONS, FUZZ_SETTLE_MS};
use fuzz::Target;

/// The C ABI: the input's bytes choose the calls, on the tiny model (written once into the
/// scratch folder).
static ABI: Target = Target {
    name: "abi",
    seeds: |_| {
        let mut rng = fastrand::Rng::with_seed(1);
        [32, 64, 128, 256]
            .map(|n| (0..n).map(|_| rng.u8(..)).collect())
            .to_vec()
    },
    run: abi,
};

/// Runs the call sequence `input` chooses; a broken promise of the ABI panics.
fn abi(dir: &Path, input: &[u8]) -> Option<String> {
    let model = dir.join("model");
    if !model.join("flux1-dev.safetensors").exists() {
        support::tiny_dev_model(&model);
    }
    let model = CString::new(model.to_str()?).ok()?;
    Sequence::new(Choices::Bytes(input), model).run(FUZZ_ACTIONS, FUZZ_SETTLE_MS);
    None
}

const USAGE: &str = "usage: flux-fuzz TARGET [FILE...] | flux-fuzz seeds TARGET DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [cmd, name, dir] if cmd == "seeds" => target(name).and_then(|t| seeds(t, Path::new(dir))),
        [name] => target(name).and_then(fuzz_loop),
        [name, files @ ..] => target(name).and_then(|t| replay(t, files)),
        [] => Err(USAGE.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flux-fuzz: {e}");
            ExitCode::FAILURE
        }
    }
}

fn target(name: &str) -> Result<&'static Target, String> {
    let abi = (name == ABI.name).then_some(&ABI);
    fuzz::target(name).or(abi).ok_or_else(|| {
        let mut names: Vec<&str> = fuzz::TARGETS.iter().map(|t| t.name).collect();
        names.push(ABI.name);
        format!("no target '{name}'; targets: {}", names.join(", "))
    })
}

/// The folder a target writes its inputs to (under `TMPDIR`: put it on a tmpfs).
fn scratch(target: &Target) -> Result<PathBuf, String> {
    let dir =
        std::env::temp_dir().join(format!("flux-fuzz-{}-{}", target.name, std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn seeds(target: &Target, dir: &Path) -> Result<(), String> {
    let work = scratch(target)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (i, seed) in (target.seeds)(&work).iter().enumerate() {
        let file = dir.join(format!("seed-{i}"));
        std::fs::write(&file, seed).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    let _ = std::fs::remove_dir_all(work);
    Ok(())
}

fn replay(target: &Target, files: &[String]) -> Result<(), String> {
    let work = scratch(target)?;
    let mut panics = 0;
    for file in files {
        let input = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        match catch_unwind(AssertUnwindSafe(|| (target.run)(&work, &input))) {
            Ok(None) => println!("{file}: ok"),
            Ok(Some(error)) => println!("{file}: error: {error}"),
            Err(_) => {
                println!("{file}: PANIC");
                panics += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(work);
    match panics {
        0 => Ok(()),
        n => Err(format!("{n} of {} inputs panicked", files.len())),
    }
}

/// AFL's loop: each input is run once in this process; a panic aborts it, which AFL saves as a
/// crash.
#[cfg(fuzzing)]
fn fuzz_loop(target: &'static Target) -> Result<(), String> {
    let work = scratch(target)?;
    afl::fuzz!(|input: &[u8]| {
        let _ = (target.run)(&work, input);
    });
    Ok(())
}

#[cfg(not(fuzzing))]
fn fuzz_loop(_: &'static Target) -> Result<(), String> {
    Err("built without `cargo afl build`: pass files to replay, or use tests/fuzz/run.sh".into())
}
