//! The bindings' copies of the ABI are generated from `include/flux_engine.h` and committed: the
//! enums and constants (values, names, doc comments) for Python, C# and C++; the structs and the
//! functions' signatures spelt as in C for Python (`_native` builds ctypes from them); the
//! structs and P/Invoke declarations for C#. This test regenerates
//! `bindings/python/flux_engine/_abi.py`, `bindings/csharp/FluxEngine/Abi.g.cs` and
//! `bindings/cxx/include/flux/enums.hpp` and fails when the committed files differ;
//! `FLUX_BLESS_HEADER=1` rewrites them (with the header). The bindings' own tests still check
//! every struct against the layout a C compiler gives the header (`tests/support::abi_layout`).

mod csharp;
mod cxx;
mod header;
mod python;

use std::path::Path;

use header::{inline_code, pascal, prefix, NAMES};

/// The first lines of a generated file (after the comment marker `lead`).
fn notice(lead: &str) -> String {
    format!(
        "{lead}Generated from include/flux_engine.h by ffi/tests/bindings/: do not edit.\n\
         {lead}`FLUX_BLESS_HEADER=1 cargo test -p flux-ffi --test bindings` rewrites it.\n"
    )
}

#[test]
fn binding_copies_of_the_abi_are_generated_from_the_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("include/flux_engine.h")).unwrap();
    let h = header::parse(&text);
    assert_eq!(h.enums.len(), NAMES.len(), "every enum of the header, once");
    assert!(h.defines.iter().any(|d| d.name == "ABI_VERSION"));
    assert!(h.functions.len() > 40, "{} functions", h.functions.len());
    let bless = std::env::var_os("FLUX_BLESS_HEADER").is_some();
    for (path, generated) in [
        ("bindings/python/flux_engine/_abi.py", python::generate(&h)),
        ("bindings/csharp/FluxEngine/Abi.g.cs", csharp::generate(&h)),
        ("bindings/cxx/include/flux/enums.hpp", cxx::generate(&h)),
    ] {
        let path = root.join(path);
        if bless {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: run `FLUX_BLESS_HEADER=1 cargo test -p flux-ffi --test bindings` and commit it",
            path.display()
        );
    }
}

#[test]
fn names_follow_the_bindings_conventions() {
    assert_eq!(
        prefix("FluxExternalMemoryType"),
        "FLUX_EXTERNAL_MEMORY_TYPE_"
    );
    assert_eq!(pascal("RGBA16F"), "Rgba16F");
    assert_eq!(pascal("INVALID_UTF8"), "InvalidUtf8");
    assert_eq!(pascal("D3D12_RESOURCE"), "D3D12Resource");
    assert_eq!(
        inline_code("see `a<b>` & more", false),
        "see <c>a&lt;b&gt;</c> &amp; more"
    );
    assert_eq!(inline_code("see `x`", true), "see ``x``");
}
