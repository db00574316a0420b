//! Compiles the C++ test against `include/flux/engine.hpp`, the cxx-generated bridge and this
//! crate's static library, runs it on the tiny model, and compares its pixels with the Rust API.

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_core::model::{FluxModel, LoadOptions, Variant};
use flux_core::pipeline::{self, TextToImage};
use flux_core::tiny::{self, Layout};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn cpp_api_end_to_end_matches_the_rust_api() {
    let dir = std::env::temp_dir().join(format!("flux-cxx-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env!("FLUX_CXX_OUT_DIR"));
    // This test's own folder (target/<profile>/deps) holds libflux_cxx[-hash].a: take the newest.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let staticlib = std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("libflux_cxx") && n.ends_with(".a")
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .expect("libflux_cxx.a was not built");
    let compile = |src: &Path, exe: &Path| {
        run(
            Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()))
                .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-g"])
                .arg("-I")
                .arg(out_dir.join("cxxbridge/include"))
                .arg("-I")
                .arg(out_dir.join("cxxbridge/crate"))
                .arg("-I")
                .arg(crate_dir.join("include"))
                .arg(src)
                .arg(out_dir.join("libflux_cxx_bridge.a"))
                .arg(&staticlib)
                .args(["-lpthread", "-ldl", "-lm", "-lgcc_s", "-lutil", "-lrt"])
                .arg("-o")
                .arg(exe),
        );
    };
    let exe = dir.join("engine_test");
    compile(&crate_dir.join("tests/engine_test.cpp"), &exe);
    let sample = dir.join("flux-cpp");
    compile(&crate_dir.join("../../samples/cpp/generate.cpp"), &sample);
    let model = dir.join("model");
    let files = tiny::write_tiny_model(
        &tiny::default_fixtures_dir(),
        &model,
        Variant::Dev,
        Layout::SingleFiles,
    )
    .unwrap();
    let rgb = dir.join("out.rgb");
    let out = run(Command::new(&exe).arg(&model).arg(&rgb));
    assert!(out.contains("cpp: ok"), "{out}");
    let mut m = FluxModel::load(&files, &LoadOptions::default()).unwrap();
    let req = TextToImage {
        width: 64,
        height: 48,
        steps: Some(3),
        t5_len: Some(32),
        ..TextToImage::new("a red lighthouse at dusk", 7)
    };
    let want = pipeline::generate(&mut m, &req, &mut pipeline::no_hook())
        .unwrap()
        .image;
    assert_eq!(
        std::fs::read(&rgb).unwrap(),
        want.data,
        "C++ pixels differ from the Rust API"
    );
    // The sample writes a PPM holding the same pixels.
    let ppm = dir.join("out.ppm");
    let out = run(Command::new(&sample)
        .arg(&model)
        .arg("a red lighthouse at dusk")
        .arg(&ppm)
        .args(["64", "48", "3", "7"]));
    assert!(out.contains("wrote"), "{out}");
    let bytes = std::fs::read(&ppm).unwrap();
    assert!(bytes.starts_with(b"P6\n64 48\n255\n"));
    let sample_req = TextToImage {
        t5_len: None,
        ..req
    };
    let want_sample = pipeline::generate(&mut m, &sample_req, &mut pipeline::no_hook())
        .unwrap()
        .image;
    assert!(
        bytes.ends_with(&want_sample.data),
        "sample pixels differ from the Rust API"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
