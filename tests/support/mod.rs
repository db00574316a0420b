//! Helpers shared by the integration tests that drive other programs (C, C++, Python, C#,
//! Blender) against the built library, and the scratch folders of every test crate (flux-core's
//! through `core/tests/common`). Included with `#[path]` by each test crate; a crate may use only
//! some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_core::model::{FluxModel, LoadOptions, ModelFiles, Variant};
use flux_core::pipeline::{self, TextToImage};
use flux_core::tiny::{self, Layout};

/// A GPU test that cannot run here says SKIPPED on stderr; with `FLUX_REQUIRE_GPU=1` (set on a
/// machine that has a GPU) it fails instead, so a broken driver setup cannot pass as a skip.
pub fn skip_without_gpu(why: &str) {
    let required = std::env::var("FLUX_REQUIRE_GPU").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "FLUX_REQUIRE_GPU=1 but the GPU test cannot run: {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// The repository root (the workspace folder holding `Cargo.lock`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .expect("the workspace root")
        .to_path_buf()
}

/// `target/<profile>/deps`: this test's folder, where cargo builds the crate's libraries for
/// it (it copies them up to `target/<profile>` only for `cargo build`).
pub fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_path_buf()
}

/// A scratch folder removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("flux-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd`, asserts it succeeded, and returns its stdout and stderr.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Libraries the Rust static library needs from the system (rustc --print native-static-libs).
const STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// Compiles `src` with `compiler` and `flags` (language, warnings) against `include/` and
/// `extra_includes`, into `dir` as `<name>-shared` and `<name>-static`: linked to the library's
/// shared and static builds.
pub fn build_against_library(
    (compiler, flags): (&str, &[&str]),
    extra_includes: &[PathBuf],
    src: &Path,
    name: &str,
    dir: &Path,
) -> [PathBuf; 2] {
    let lib = deps_dir();
    let compile = || {
        let mut c = Command::new(compiler);
        c.args(flags)
            .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-pthread", "-g"])
            .arg("-I")
            .arg(root().join("include"));
        for dir in extra_includes {
            c.arg("-I").arg(dir);
        }
        c.arg(src);
        c
    };
    let shared = dir.join(format!("{name}-shared"));
    run(compile()
        .arg("-L")
        .arg(&lib)
        .arg("-lflux_engine")
        // DT_RPATH (not RUNPATH): wins over the LD_LIBRARY_PATH cargo sets, which may list a
        // stale copy in target/<profile>.
        .args([
            "-Wl,--disable-new-dtags".into(),
            format!("-Wl,-rpath,{}", lib.display()),
        ])
        .arg("-o")
        .arg(&shared));
    let stat = dir.join(format!("{name}-static"));
    run(compile()
        .arg(lib.join("libflux_engine.a"))
        .args(STATIC_LIBS)
        .arg("-o")
        .arg(&stat));
    [shared, stat]
}

/// Writes the tiny dev model (single-file layout) into `dir`.
pub fn tiny_dev_model(dir: &Path) -> ModelFiles {
    tiny::write_tiny_model(
        &tiny::default_fixtures_dir(),
        dir,
        Variant::Dev,
        Layout::SingleFiles,
    )
    .unwrap()
}

/// The request every host test generates and compares: 64×48, seed 7, 3 steps, 32 T5 tokens.
pub fn reference_request() -> TextToImage {
    TextToImage {
        width: 64,
        height: 48,
        steps: Some(3),
        t5_len: Some(32),
        ..TextToImage::new("a red lighthouse at dusk", 7)
    }
}

/// RGB8 pixels of [`reference_request`] made with the Rust API.
pub fn reference_rgb(files: &ModelFiles) -> Vec<u8> {
    let mut m = FluxModel::load(files, &LoadOptions::default()).unwrap();
    pipeline::generate(&mut m, &reference_request(), &mut pipeline::no_hook())
        .unwrap()
        .image
        .data
}

/// The struct a line of the generated header opens (`typedef struct NAME {`).
pub fn header_struct(line: &str) -> Option<&str> {
    line.strip_prefix("typedef struct ")?.strip_suffix(" {")
}

/// The ABI as a C compiler lays it out, for the bindings' mirrors to be checked against: a C
/// probe generated from `include/flux_engine.h` is compiled and run, and its lines written to
/// `dir/abi-layout.txt` — `struct NAME SIZE`, then `field NAME FIELD OFFSET` per field in order,
/// and `enum CONSTANT VALUE` per enum value.
pub fn abi_layout(dir: &Path) -> PathBuf {
    let header = std::fs::read_to_string(root().join("include/flux_engine.h")).unwrap();
    let mut probe = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"flux_engine.h\"\nint main(void) {\n",
    );
    let mut current: Option<String> = None;
    let mut in_enum = false;
    for line in header.lines() {
        let trimmed = line.trim();
        if let Some(name) = header_struct(line) {
            probe += &format!("  printf(\"struct {name} %zu\\n\", sizeof({name}));\n");
            current = Some(name.to_string());
        } else if line.starts_with('}') {
            (current, in_enum) = (None, false);
        } else if line.starts_with("enum ") {
            in_enum = true;
        } else if let Some(name) = &current {
            // `  type field;` or `  type *field;` (doc comments and blank lines skipped).
            if let Some(decl) = trimmed
                .strip_suffix(';')
                .filter(|_| !trimmed.starts_with('*'))
            {
                let field = decl.rsplit([' ', '*']).next().unwrap();
                let field = field.split('[').next().unwrap();
                probe += &format!(
                    "  printf(\"field {name} {field} %zu\\n\", offsetof({name}, {field}));\n"
                );
            }
        } else if in_enum && trimmed.starts_with("FLUX_") {
            let constant = trimmed.split([' ', ',']).next().unwrap();
            probe += &format!("  printf(\"enum {constant} %lld\\n\", (long long){constant});\n");
        }
    }
    probe += "  return 0;\n}\n";
    let (src, exe) = (dir.join("abi_probe.c"), dir.join("abi_probe"));
    std::fs::write(&src, probe).unwrap();
    run(
        Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-std=c99", "-Wall", "-Werror", "-I"])
            .arg(root().join("include"))
            .arg(&src)
            .arg("-o")
            .arg(&exe),
    );
    let layout = dir.join("abi-layout.txt");
    std::fs::write(&layout, run(&mut Command::new(&exe))).unwrap();
    layout
}
