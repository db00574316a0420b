//! Compiles the C++ test against `include/flux/engine.hpp`, the cxx-generated bridge and this
//! crate's static library, runs it on the tiny model, and compares its pixels with the Rust API.

use std::path::{Path, PathBuf};
use std::process::Command;

use flux_core::model::{FluxModel, LoadOptions};
use flux_core::pipeline::{self, TextToImage};

#[path = "../../../tests/support/mod.rs"]
mod support;
use support::{deps_dir, reference_request, run, tiny_dev_model, Scratch};

#[test]
fn cpp_api_end_to_end_matches_the_rust_api() {
    let scratch = Scratch::new("cxx");
    let dir = &scratch.0;
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env!("FLUX_CXX_OUT_DIR"));
    // This test's own folder (target/<profile>/deps) holds libflux_cxx[-hash].a: take the newest.
    let staticlib = std::fs::read_dir(deps_dir())
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
    let files = tiny_dev_model(&model);
    let rgb = dir.join("out.rgb");
    let out = run(Command::new(&exe).arg(&model).arg(&rgb));
    assert!(out.contains("cpp: ok"), "{out}");
    let mut m = FluxModel::load(&files, &LoadOptions::default()).unwrap();
    let req = reference_request();
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
}
