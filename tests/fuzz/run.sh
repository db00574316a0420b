#!/usr/bin/env bash
# Fuzzes one target of flux-fuzz (tests/fuzz/src/main.rs) with AFL++ for SECONDS of wall time
# (inputs up to 64 KiB, far past any header), then adds to tests/fuzz/corpus/TARGET/ the run's
# queue minimised by afl-cmin (the fewest inputs that keep its edge coverage, named by content),
# and each crash or hang (past AFL's time limit) as crash-* or hang-*. Prints AFL's figures and,
# where a cgroup v1 cpuacct hierarchy is writable, the CPU time the run used.
# Usage: tests/fuzz/run.sh TARGET SECONDS
# Needs: cargo install cargo-afl && cargo afl config --build (AFL++ from crates.io, stable Rust).
# Env:   FLUX_AFL_SCRATCH  where the target writes each input (default /dev/shm: a tmpfs, as every
#                          execution writes a file); AFL's own folder is under /tmp, since
#                          afl-showmap takes any path under /dev/ for a device.
set -euo pipefail
target=${1:?usage: run.sh TARGET SECONDS}
seconds=${2:?usage: run.sh TARGET SECONDS}
root=$(cd "$(dirname "$0")/../.." && pwd)
corpus=$root/tests/fuzz/corpus/$target
# Own target folder: AFL's instrumented build would otherwise rebuild the suite's dependencies.
export CARGO_TARGET_DIR=$root/target/afl
cargo afl build --release -q -p flux-fuzz --manifest-path "$root/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/flux-fuzz
work=$(mktemp -d "/tmp/flux-afl-$target.XXXX")
scratch=$(mktemp -d "${FLUX_AFL_SCRATCH:-/dev/shm}/flux-afl-$target.XXXX")
cg=/sys/fs/cgroup/cpuacct/flux-afl-$$
cleanup() {
  rm -rf "$work" "$scratch"
  if [ -d "$cg" ]; then echo $$ >/sys/fs/cgroup/cpuacct/tasks; rmdir "$cg"; fi
}
trap cleanup EXIT
# Every process of the run, the target's forks included, is counted in the group.
if mkdir "$cg" 2>/dev/null; then echo $$ >"$cg/tasks"; else cg=; fi
export TMPDIR=$scratch

"$bin" seeds "$target" "$work/in"
cp "$corpus"/* "$work/in/" 2>/dev/null || true
export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
# An ABI sequence waits for its jobs: give it seconds, not AFL's default of a few milliseconds.
limit=()
[ "$target" = abi ] && limit=(-t 20000)
start=$(date +%s)
cargo afl fuzz -V "$seconds" -G 65536 "${limit[@]}" -i "$work/in" -o "$work/out" -- "$bin" "$target" >"$work/afl.log" 2>&1 \
  || { tail -30 "$work/afl.log"; exit 1; }
cpu="CPU time not measured"
[ -n "$cg" ] && cpu="$(( $(cat "$cg/cpuacct.usage") / 1000000000 )) CPU s"
wall=$(( $(date +%s) - start ))

cargo afl cmin -i "$work/out/default/queue" -o "$work/min" -- "$bin" "$target" >"$work/cmin.log" 2>&1 \
  || { tail -30 "$work/cmin.log"; exit 1; }
mkdir -p "$corpus"
before=$(ls "$corpus" | wc -l)
for f in "$work"/min/*; do
  cp "$f" "$corpus/$(sha256sum "$f" | cut -c1-16)"
done
for f in "$work"/out/default/crashes/id:* "$work"/out/default/hangs/id:*; do
  [ -e "$f" ] || continue
  kind=crash
  [[ $f == */hangs/* ]] && kind=hang
  cp "$f" "$corpus/$kind-$(sha256sum "$f" | cut -c1-16)"
done
after=$(ls "$corpus" | wc -l)

field() { awk -v k="$1" '$1 == k {print $3}' "$work/out/default/fuzzer_stats"; }
echo "$target: $(field execs_done) executions in $wall s wall, $cpu; edges $(field edges_found)" \
  "($(field bitmap_cvg) of the map), queue $(field corpus_count), crashes" \
  "$(field saved_crashes), hangs $(field saved_hangs); $(( after - before )) inputs added to" \
  "tests/fuzz/corpus/$target"
