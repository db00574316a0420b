//! A model folder of quantized files (FLUX transformer and T5 encoder as GGUF) loaded through
//! the C ABI's folder path, the one every binding and host sample uses: its pixels equal the
//! Rust API's for the same folder.

use std::ffi::CString;

use flux_core::model::ModelFiles;
use flux_engine::types::*;
use flux_engine::*;

mod c_abi;
#[path = "../../tests/support/mod.rs"]
mod support;
use support::{reference_rgb, tiny_dev_model, Scratch};

#[test]
fn a_folder_of_gguf_files_renders_through_the_c_abi_as_through_rust() {
    let s = Scratch::new("c-gguf");
    let dir = s.0.join("model");
    let files = tiny_dev_model(&dir);
    std::fs::remove_file(&files.transformer).unwrap();
    std::fs::remove_file(&files.t5).unwrap();
    let fixtures = flux_core::tiny::default_fixtures_dir().join("flux-gguf");
    for name in ["tiny_dev-Q8_0.gguf", "t5_tiny-Q8_0.gguf"] {
        std::fs::copy(fixtures.join(name), dir.join(name)).unwrap();
    }
    let found = ModelFiles::from_folder(&dir).unwrap();
    assert!(
        found.transformer.ends_with("tiny_dev-Q8_0.gguf"),
        "{found:?}"
    );
    let want = reference_rgb(&found);

    let e = c_abi::engine(FluxDevice::Cpu).unwrap();
    let job = c_abi::render_reference(e, &CString::new(dir.to_str().unwrap()).unwrap());
    let got = c_abi::copy_pixels(e, job, FluxPixelFormat::Rgb8, 3);
    // SAFETY: the C ABI as documented: live handles, pointers to live locals.
    unsafe { flux_engine_destroy(e) };
    assert_eq!(got, want, "C ABI pixels differ from the Rust API's");
}
