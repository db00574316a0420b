//! A mutation fuzzer for the parsers in `core/tests/fuzz/`: structure-aware seeds (valid files of
//! each format), byte-level mutations biased to headers and length fields, and an input kept when
//! it reaches an outcome not seen before. No coverage instrumentation: cargo-fuzz (libFuzzer) needs
//! a nightly toolchain, which these machines cannot install beside their stable one, and
//! `cargo afl` (stable) has not been adopted yet; distinct outcomes (error messages with their
//! numbers masked) stand in for coverage.
//!
//! `cargo run --release -p flux-core --example fuzz -- TARGET CPU_SECONDS [SEED]`
//!
//! The run lasts CPU_SECONDS of this process's CPU time, so that a fuzzer run at a low priority
//! beside other work still gets its stated time.
//!
//! A panic is saved to `tests/fuzz/corpus/TARGET/crash-HASH` and reported; at the end the inputs
//! that reached new outcomes are saved beside it (at most 24, the smallest first) for the replay
//! test. The input being run is in `SCRATCH/last-input`, for a crash that aborts the process.

#[path = "../tests/fuzz/mod.rs"]
mod fuzz;

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

/// Values for integer fields at the edges: sizes, counts and offsets.
const EDGES: [u64; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 62,
    i64::MAX as u64,
    u64::MAX,
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: Option<f64> = args.get(1).and_then(|s| s.parse().ok());
    let (Some(name), Some(seconds)) = (args.first(), seconds) else {
        eprintln!("usage: fuzz TARGET SECONDS [SEED]; targets: {}", names());
        std::process::exit(2);
    };
    let Some(target) = fuzz::target(name) else {
        eprintln!("no target '{name}'; targets: {}", names());
        std::process::exit(2);
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let mut rng = fastrand::Rng::with_seed(seed);
    let scratch = std::env::temp_dir().join(format!("flux-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz/corpus")
        .join(name);
    std::panic::set_hook(Box::new(|_| {}));

    let mut pool = (target.seeds)(&scratch);
    let mut seen: HashSet<String> = pool
        .iter()
        .map(|s| outcome((target.run)(&scratch, s)))
        .collect();
    let mut found: HashMap<String, Vec<u8>> = HashMap::new();
    let (start, limit) = (Instant::now(), seconds);
    let (mut execs, mut panics) = (0u64, 0u64);
    while cpu_seconds() < limit {
        let mut input = pool[rng.usize(..pool.len())].clone();
        for _ in 0..rng.usize(1..=4) {
            mutate(&mut rng, &mut input);
        }
        std::fs::write(scratch.join("last-input"), &input).unwrap();
        execs += 1;
        match catch_unwind(AssertUnwindSafe(|| (target.run)(&scratch, &input))) {
            Ok(result) => {
                let key = outcome(result);
                if seen.insert(key.clone()) {
                    found.insert(key, input.clone());
                    pool.push(input);
                }
            }
            Err(panic) => {
                panics += 1;
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                std::fs::create_dir_all(&corpus).unwrap();
                let file = corpus.join(format!("crash-{:016x}", hash(&input)));
                std::fs::write(&file, &input).unwrap();
                eprintln!("PANIC: {what} (input saved to {})", file.display());
            }
        }
    }
    let mut kept: Vec<Vec<u8>> = found.into_values().collect();
    kept.sort_by_key(Vec::len);
    kept.truncate(24);
    if !kept.is_empty() {
        std::fs::create_dir_all(&corpus).unwrap();
    }
    for input in &kept {
        std::fs::write(corpus.join(format!("{:016x}", hash(input))), input).unwrap();
    }
    let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds());
    println!(
        "{name}: {execs} executions in {cpu:.0} CPU s ({wall:.0} s wall, {:.0}/CPU s), {} distinct \
         outcomes, {} inputs kept, {panics} panics",
        execs as f64 / cpu,
        seen.len(),
        kept.len()
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// CPU time this process has used, user and system, in seconds.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` is valid for writes of one `rusage`, which getrusage fills on success.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn names() -> String {
    let names: Vec<&str> = fuzz::TARGETS.iter().map(|t| t.name).collect();
    names.join(", ")
}

/// The outcome with its numbers masked, so that one error with other figures counts once.
fn outcome(result: Option<String>) -> String {
    let text = result.unwrap_or_else(|| "ok".into());
    let masked: String = text
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    // Scratch paths differ per run: keep what follows the last quoted name.
    masked.rsplit("' ").next().unwrap_or(&masked).to_string()
}

fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// One mutation; half of them land in the first 256 bytes, where headers and lengths live.
fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>) {
    if input.is_empty() {
        input.push(rng.u8(..));
        return;
    }
    let span = match rng.bool() {
        true => input.len().min(256),
        false => input.len(),
    };
    let at = rng.usize(..span);
    match rng.u8(..7) {
        0 => input[at] ^= 1 << rng.u8(..8),
        1 => input[at] = rng.u8(..),
        2 => {
            let edge = EDGES[rng.usize(..EDGES.len())].to_le_bytes();
            let width = [1, 2, 4, 8][rng.usize(..4)];
            for (d, b) in input.iter_mut().skip(at).zip(&edge[..width]) {
                *d = *b;
            }
        }
        3 => input.truncate(at),
        4 => {
            let len = rng.usize(1..=16.min(input.len() - at));
            let chunk = input[at..at + len].to_vec();
            let to = rng.usize(..=input.len());
            input.splice(to..to, chunk);
        }
        5 => {
            let len = rng.usize(1..=16.min(input.len() - at));
            input.drain(at..at + len);
        }
        _ => {
            // Text formats: a number made larger or negative, a string or object opened.
            let c = [b'9', b'-', b'"', b'{', b'[', b'0', b'e'][rng.usize(..7)];
            input.insert(at, c);
        }
    }
}
