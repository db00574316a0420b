fn main() {
    cxx_build::bridge("src/lib.rs")
        .std("c++17")
        .compile("flux_cxx_bridge");
    // Tests compile C++ programs against the generated headers and bridge library.
    println!(
        "cargo:rustc-env=FLUX_CXX_OUT_DIR={}",
        std::env::var("OUT_DIR").unwrap()
    );
    println!("cargo:rerun-if-changed=src/lib.rs");
}
