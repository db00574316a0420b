//! The header-only C++ API (`bindings/cxx/include/flux/engine.hpp`, over `include/flux_engine.h`):
//! its test program and the C++ sample are compiled with the system C++ compiler, linked to the
//! shared and the static library as the C programs are (`c_api.rs`), and run on the tiny model.
//! Their pixels must equal the Rust API's (for LoRA jobs, the Rust engine's: the pipeline functions
//! take no LoRAs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flux_core::image::RgbImage;
use flux_core::lora::LoraChoice;
use flux_core::model::{FluxModel, LoadOptions};
use flux_core::pipeline::edit::{self, ImageToImage, KontextEdit};
use flux_core::pipeline::{self, TextToImage};
use flux_core::runtime::job::PRIORITY_NORMAL;
use flux_core::runtime::{Engine, EngineOptions, JobOutput, JobRequest, JobState};

#[path = "../../tests/support/mod.rs"]
mod support;
use support::{build_against_library, reference_request, root, run, tiny_dev_model, Scratch};

/// Compiles the C++ program `src` into `dir` as `<name>-shared` and `<name>-static`.
fn build(src: &Path, name: &str, dir: &Path) -> [PathBuf; 2] {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let includes = [root().join("bindings/cxx/include")];
    build_against_library((&cxx, &["-std=c++17"]), &includes, src, name, dir)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// The LoRA fixtures for the tiny model (engine_test's third argument).
fn lora_dir() -> PathBuf {
    root().join("tests/fixtures/flux-lora")
}

/// [`reference_request`] with `loras` (file name in [`lora_dir`], strength), run by the Rust engine.
fn with_loras(files: &flux_core::model::ModelFiles, loras: &[(&str, f32)]) -> RgbImage {
    const WAIT: Duration = Duration::from_secs(120);
    let engine = Engine::new(EngineOptions::default()).unwrap();
    let load = JobRequest::LoadModel {
        files: files.clone(),
        dtype: None,
        kontext: None,
    };
    let load = engine.submit(load, PRIORITY_NORMAL).unwrap();
    assert_eq!(engine.wait(load, WAIT).unwrap(), JobState::Succeeded);
    let request = TextToImage {
        loras: loras
            .iter()
            .map(|&(name, strength)| LoraChoice {
                path: lora_dir().join(name),
                strength,
            })
            .collect(),
        ..reference_request()
    };
    let id = engine
        .submit(JobRequest::TextToImage(request), PRIORITY_NORMAL)
        .unwrap();
    assert_eq!(engine.wait(id, WAIT).unwrap(), JobState::Succeeded);
    match engine.take_result(id).unwrap() {
        JobOutput::Image(g) => g.image.clone(),
        _ => panic!("a text-to-image job returned no image"),
    }
}

#[test]
fn cpp_api_end_to_end_matches_the_rust_api_with_shared_and_static_library() {
    let s = Scratch::new("cpp-api");
    let model = s.0.join("model");
    let files = tiny_dev_model(&model);

    // What engine_test.cpp asks for, made with the Rust API.
    let mut m = FluxModel::load(&files, &LoadOptions::default()).unwrap();
    let generated = pipeline::generate(&mut m, &reference_request(), &mut pipeline::no_hook())
        .unwrap()
        .image;
    let mut kontext = KontextEdit::new("make it night", generated.clone(), 0);
    kontext.references.push(generated.clone().into());
    (kontext.resolutions, kontext.steps, kontext.t5_len) = (vec![], Some(2), Some(16));
    let edited = edit::edit(&mut m, &kontext, &mut pipeline::no_hook())
        .unwrap()
        .image;
    let i2i = ImageToImage {
        base: TextToImage {
            width: 64,
            height: 48,
            steps: Some(3),
            t5_len: Some(16),
            ..TextToImage::new("a red lighthouse at night", 3)
        },
        init: generated.clone().into(),
        strength: 0.6,
    };
    let img2img = edit::img2img(&mut m, &i2i, &mut pipeline::no_hook())
        .unwrap()
        .image;

    // What its LoRA jobs ask for, made with the Rust engine.
    let lora = with_loras(&files, &[("lora_a_kohya.safetensors", 1.0)]);
    let two_loras = with_loras(
        &files,
        &[
            ("lora_a_kohya.safetensors", 1.0),
            ("lora_d_kohya_single.safetensors", 0.7),
        ],
    );
    assert_ne!(lora.data, generated.data, "the LoRA changes nothing");

    let test_src = root().join("bindings/cxx/tests/engine_test.cpp");
    for exe in build(&test_src, "engine_test", &s.0) {
        let out_dir = s.0.join(format!(
            "out-{}",
            exe.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&out_dir).unwrap();
        let out = run(Command::new(&exe).arg(&model).arg(&out_dir).arg(lora_dir()));
        assert!(out.contains("cpp: ok"), "{out}");
        let name = exe.display();
        let expect = |file: &str, want: &RgbImage, what: &str| {
            assert_eq!(
                read(&out_dir.join(file)),
                want.data,
                "{name}: {what} pixels differ from the Rust API"
            );
        };
        expect("generated.rgb", &generated, "generated");
        expect("lora.rgb", &lora, "LoRA (lora_a_kohya at 1)");
        expect("two-loras.rgb", &two_loras, "two LoRAs");
        expect("edited.rgb", &edited, "edited (two references)");
        expect("img2img.rgb", &img2img, "image-to-image");
    }

    // The sample writes a PPM of the reference request at the variant's T5 length.
    let sample_req = TextToImage {
        t5_len: None,
        ..reference_request()
    };
    let want_sample = pipeline::generate(&mut m, &sample_req, &mut pipeline::no_hook())
        .unwrap()
        .image;
    let mut header =
        format!("P6\n{} {}\n255\n", want_sample.width, want_sample.height).into_bytes();
    header.extend_from_slice(&want_sample.data);
    for exe in build(&root().join("samples/cpp/generate.cpp"), "flux-cpp", &s.0) {
        let ppm = s.0.join("out.ppm");
        let out = run(Command::new(&exe)
            .arg(&model)
            .arg("a red lighthouse at dusk")
            .arg(&ppm)
            .args(["64", "48", "3", "7"]));
        assert!(out.contains("wrote"), "{out}");
        assert!(
            read(&ppm) == header,
            "{}: sample pixels differ from the Rust API",
            exe.display()
        );
    }
}
