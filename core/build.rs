//! With the `flash-attn` feature, compiles `kernels/flash_attention.cu` (FlashAttention-2's
//! forward for head dim 128, bf16) with nvcc and links it. The kernel headers and CUTLASS come
//! from folders named by `FLUX_FLASH_ATTN_KERNELS` and `FLUX_CUTLASS_INCLUDE`, which
//! `.ci/build-cuda` fills offline-friendly (a crate and a wheel from the package registries).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_FLASH_ATTN").is_none() {
        return;
    }
    let source = "kernels/flash_attention.cu";
    println!("cargo::rerun-if-changed={source}");
    for var in [
        "FLUX_FLASH_ATTN_KERNELS",
        "FLUX_CUTLASS_INCLUDE",
        "NVCC",
        "CUDA_HOME",
        "CUDA_COMPUTE_CAP",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let folder = |var: &str| {
        let dir = PathBuf::from(env::var(var).unwrap_or_else(|_| {
            panic!("the flash-attn feature needs {var} (run .ci/build-cuda, which sets it)")
        }));
        assert!(dir.is_dir(), "{var}={} is not a folder", dir.display());
        dir
    };
    let kernels = folder("FLUX_FLASH_ATTN_KERNELS");
    let cutlass = folder("FLUX_CUTLASS_INCLUDE");
    let nvcc = env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    // Compute capabilities to build for, e.g. "90" (H100/H200) or "80,90".
    let caps = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let object = out.join("flash_attention.o");

    let mut cmd = Command::new(&nvcc);
    cmd.args(["-c", source, "-o"]).arg(&object);
    cmd.arg("-I").arg(&kernels).arg("-I").arg(&cutlass);
    cmd.args([
        "-std=c++17",
        "-O3",
        "--expt-relaxed-constexpr",
        "--expt-extended-lambda",
        "--use_fast_math",
        "-U__CUDA_NO_HALF_OPERATORS__",
        "-U__CUDA_NO_HALF_CONVERSIONS__",
        "-U__CUDA_NO_HALF2_OPERATORS__",
        "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-Xcompiler",
        "-fPIC",
        // CUTLASS 3.5 names vector types CUDA 13 deprecates.
        "-Xcompiler",
        "-Wno-deprecated-declarations",
    ]);
    for cap in caps.split(',').map(str::trim) {
        cmd.arg(format!("-gencode=arch=compute_{cap},code=sm_{cap}"));
    }
    run(&mut cmd);
    let lib = out.join("libflux_flash_attention.a");
    let _ = std::fs::remove_file(&lib);
    run(Command::new("ar").arg("rcs").arg(&lib).arg(&object));

    println!("cargo::rustc-link-search=native={}", out.display());
    if let Ok(home) = env::var("CUDA_HOME") {
        println!("cargo::rustc-link-search=native={home}/lib");
    }
    println!("cargo::rustc-link-lib=static=flux_flash_attention");
    println!("cargo::rustc-link-lib=dylib=cudart");
    println!("cargo::rustc-link-lib=dylib=stdc++");
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    assert!(status.success(), "{cmd:?} failed with {status}");
}
