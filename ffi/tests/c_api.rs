//! C programs compiled with the system compiler against `include/flux_engine.h`, linked to the
//! shared and the static library, run on the tiny model. Their pixels must equal the Rust API's.

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_core::model::{FluxModel, LoadOptions, Variant};
use flux_core::pipeline;
use flux_core::pipeline::edit::KontextEdit;
use flux_core::tiny::{self, Layout};

#[path = "../../tests/support/mod.rs"]
mod support;
use support::{
    build_against_library, deps_dir as lib_dir, header_struct, reference_request, root, run,
    tiny_dev_model, Scratch,
};

/// Compiles `tests/c/<name>.c` into `dir`, linked dynamically and statically.
fn build(name: &str, dir: &Path) -> [PathBuf; 2] {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let src = root().join("tests/c").join(format!("{name}.c"));
    let flags = ["-std=c11", "-D_POSIX_C_SOURCE=200809L"];
    build_against_library((&cc, &flags), &[], &src, name, dir)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn lifecycle_pixels_equal_the_rust_api_with_shared_and_static_library() {
    let s = Scratch::new("lifecycle");
    let model = tiny_dev_model(&s.0.join("model"));
    let mut m = FluxModel::load(&model, &LoadOptions::default()).unwrap();
    let want = pipeline::generate(&mut m, &reference_request(), &mut pipeline::no_hook())
        .unwrap()
        .image;
    // The C test reuses its text-to-image request: seed 7 and size 64×48 carry over.
    let mut edit = KontextEdit::new("make it night", want.clone(), 7);
    (edit.resolutions, edit.steps, edit.t5_len) = (vec![], Some(2), Some(16));
    let want_edit = pipeline::edit::edit(&mut m, &edit, &mut pipeline::no_hook())
        .unwrap()
        .image;
    for exe in build("lifecycle", &s.0) {
        let (gen, edited) = (s.0.join("generated.rgb"), s.0.join("edited.rgb"));
        let out = run(Command::new(&exe)
            .arg(s.0.join("model"))
            .arg(&gen)
            .arg(&edited));
        assert!(out.contains("lifecycle: ok"), "{out}");
        assert_eq!(
            read(&gen),
            want.data,
            "{}: generated pixels differ from the Rust API",
            exe.display()
        );
        assert_eq!(
            read(&edited),
            want_edit.data,
            "{}: edited pixels differ from the Rust API",
            exe.display()
        );
    }
}

#[test]
fn bad_input_table() {
    let s = Scratch::new("bad");
    let model = s.0.join("model");
    tiny_dev_model(&model);
    let empty = s.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let broken = s.0.join("broken");
    let files = tiny_dev_model(&broken);
    let bytes = read(&files.transformer);
    std::fs::write(&files.transformer, &bytes[..bytes.len() - 64]).unwrap();
    for exe in build("bad_inputs", &s.0) {
        let lora = root().join("tests/fixtures/flux-lora/lora_a_kohya.safetensors");
        let out = run(Command::new(&exe)
            .arg(&model)
            .arg(&empty)
            .arg(&broken)
            .arg(&lora));
        let rows: usize = out
            .split("bad_inputs: ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(rows >= 40, "{out}");
        assert!(out.contains(", 0 failures"), "{out}");
    }
}

#[test]
fn header_compiles_as_c99_and_cpp17_included_twice() {
    let s = Scratch::new("header");
    let src = root().join("tests/c/header_twice.c");
    // Every struct of the header has its tail-padding check there.
    let header = std::fs::read_to_string(root().join("include/flux_engine.h")).unwrap();
    let checks = std::fs::read_to_string(&src).unwrap();
    for name in header.lines().filter_map(header_struct) {
        assert!(
            checks.contains(&format!("NO_TAIL_PADDING({name},")),
            "{name} has no NO_TAIL_PADDING check in tests/c/header_twice.c"
        );
    }
    let inc = root().join("include");
    let flags = ["-Wall", "-Wextra", "-Werror", "-pedantic"];
    let lib = lib_dir();
    for (compiler, std, lang) in [("cc", "-std=c99", "c"), ("c++", "-std=c++17", "c++")] {
        let exe = s.0.join(format!("header-{lang}"));
        run(Command::new(compiler)
            .args(flags)
            .arg(std)
            .args(["-x", lang])
            .arg("-I")
            .arg(&inc)
            .arg(&src)
            .args(["-x", "none"])
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
            .arg(&exe));
        run(&mut Command::new(&exe));
    }
}

#[test]
fn installed_package_builds_the_c_and_cpp_samples_with_cmake_and_pkg_config() {
    let s = Scratch::new("install");
    let prefix = s.0.join("prefix");
    run(Command::new(env!("CARGO_BIN_EXE_flux-install"))
        .arg(&prefix)
        .arg(lib_dir()));
    let pc = run(Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .args(["--cflags", "--libs", "flux_engine"]));
    assert!(
        pc.contains("-lflux_engine") && pc.contains("/include"),
        "{pc}"
    );
    let build = s.0.join("build");
    let cmake = std::env::var("CMAKE").unwrap_or_else(|_| "cmake".into());
    run(Command::new(&cmake)
        .arg("-S")
        .arg(root().join("samples/c"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())));
    run(Command::new(&cmake).arg("--build").arg(&build));
    let model = s.0.join("model");
    tiny::write_tiny_model(
        &tiny::default_fixtures_dir(),
        &model,
        Variant::Schnell,
        Layout::Diffusers,
    )
    .unwrap();
    let png = s.0.join("out.png");
    // The sample finds the installed library through its RUNPATH; cargo's LD_LIBRARY_PATH would
    // take precedence (and may list a stale copy in target/<profile>).
    let out = run(Command::new(build.join("flux-c"))
        .env_remove("LD_LIBRARY_PATH")
        .arg("generate")
        .arg(&model)
        .arg("a cat")
        .arg(&png)
        .args(["32", "16", "2", "5"]));
    assert!(out.contains("wrote"), "{out}");
    let img = flux_core::image::export::decode(&read(&png)).unwrap();
    assert_eq!((img.width, img.height), (32, 16));
    let text = flux_core::image::export::read_png_text(&read(&png)).unwrap();
    assert!(
        text.contains(&("prompt".to_string(), "a cat".to_string())),
        "{text:?}"
    );
    // The C++ sample builds from the installed headers alone (pkg-config's flags) and runs.
    let cpp = s.0.join("flux-cpp");
    let flags: Vec<&str> = pc.split_whitespace().collect();
    run(
        Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()))
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror"])
            .arg(root().join("samples/cpp/generate.cpp"))
            .args(&flags)
            .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
            .arg("-o")
            .arg(&cpp),
    );
    let ppm = s.0.join("out.ppm");
    let out = run(Command::new(&cpp)
        .env_remove("LD_LIBRARY_PATH")
        .arg(&model)
        .arg("a cat")
        .arg(&ppm)
        .args(["32", "16", "2", "5"]));
    assert!(out.contains("wrote"), "{out}");
    assert!(read(&ppm).starts_with(b"P6\n32 16\n255\n"), "a 32x16 PPM");
}

#[test]
fn shared_library_exports_only_the_api_and_names_itself() {
    let lib = lib_dir().join("libflux_engine.so");
    let out = run(Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(&lib));
    let exported: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(exported.contains(&"flux_engine_create"), "{out}");
    let foreign: Vec<&&str> = exported
        .iter()
        .filter(|s| !s.starts_with("flux_"))
        .collect();
    assert!(foreign.is_empty(), "non-API symbols exported: {foreign:?}");
    // Programs record the library's name, not the path it was built at.
    let headers = run(Command::new("objdump").arg("-p").arg(&lib));
    assert!(
        headers
            .lines()
            .any(|l| l.split_whitespace().eq(["SONAME", "libflux_engine.so"])),
        "{headers}"
    );
}
