//! The bindings' enums and constants are generated from `include/flux_engine.h` (their values,
//! names and doc comments) and committed: this test regenerates
//! `bindings/python/flux_engine/_abi.py`, `bindings/csharp/FluxEngine/Abi.g.cs` and
//! `bindings/cxx/include/flux/enums.hpp` and fails when the committed files differ.
//! `FLUX_BLESS_HEADER=1` rewrites them (with the header).
//!
//! Structs and function signatures stay written by hand in each binding (ctypes and P/Invoke
//! need choices a header does not carry: ownership, marshalling, callbacks) and are checked
//! against the compiled layout by the bindings' own tests (`abi_layout`).

use std::path::Path;

/// A doc comment, its lines without the comment markers.
type Doc = Vec<String>;

/// One enum of the header: its C name, doc and constants (name, value, doc).
struct Enum {
    name: String,
    doc: Doc,
    values: Vec<(String, i64, Doc)>,
}

/// One `#define FLUX_…` value of the header: name, C expression, doc.
struct Define {
    name: String,
    value: String,
    doc: Doc,
}

/// How each binding names a C enum: Python class, C# type, whether C# makes it public, C++
/// `enum class` (`None`: the C++ API uses the C type). C#'s event type keeps its prefix so that
/// it does not clash with `UnityEngine.EventType`.
type Names = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
);
const NAMES: [Names; 12] = [
    ("FluxResult", "Result", "FluxResult", true, None),
    ("FluxDevice", "Device", "Device", true, Some("Device")),
    ("FluxDtype", "DType", "DType", true, Some("Dtype")),
    (
        "FluxPixelFormat",
        "PixelFormat",
        "PixelFormat",
        true,
        Some("PixelFormat"),
    ),
    (
        "FluxJobState",
        "JobState",
        "JobState",
        true,
        Some("JobState"),
    ),
    (
        "FluxCancelOutcome",
        "CancelOutcome",
        "CancelOutcome",
        true,
        Some("CancelOutcome"),
    ),
    (
        "FluxEventType",
        "EventType",
        "FluxEventType",
        true,
        Some("EventType"),
    ),
    (
        "FluxLogLevel",
        "LogLevel",
        "LogLevel",
        true,
        Some("LogLevel"),
    ),
    (
        "FluxKontext",
        "Kontext",
        "FluxKontext",
        false,
        Some("Kontext"),
    ),
    (
        "FluxExternalMemoryType",
        "ExternalMemoryType",
        "ExternalMemoryType",
        true,
        Some("ExternalMemoryType"),
    ),
    (
        "FluxSemaphoreType",
        "SemaphoreType",
        "SemaphoreType",
        true,
        Some("SemaphoreType"),
    ),
    (
        "FluxTextPlacement",
        "TextPlacement",
        "TextPlacement",
        true,
        Some("TextPlacement"),
    ),
];

/// The enums and defines of the header, in order.
fn parse(header: &str) -> (Vec<Enum>, Vec<Define>) {
    let (mut enums, mut defines) = (Vec::new(), Vec::new());
    let (mut doc, mut in_doc): (Doc, bool) = (Vec::new(), false);
    let mut current: Option<Enum> = None;
    for line in header.lines() {
        let t = line.trim();
        if t == "/**" {
            (doc, in_doc) = (Vec::new(), true);
        } else if in_doc {
            match t {
                "*/" => in_doc = false,
                _ => doc.push(t.trim_start_matches('*').trim().to_string()),
            }
        } else if let Some(name) = line.strip_prefix("enum ") {
            let doc = std::mem::take(&mut doc);
            let name = name.trim().to_string();
            current = Some(Enum {
                name,
                doc,
                values: Vec::new(),
            });
        } else if t == "};" {
            enums.extend(current.take());
        } else if let (Some(e), Some((name, value))) = (&mut current, t.split_once(" = ")) {
            let value = value.trim_end_matches(',').parse().expect("an enum value");
            e.values
                .push((name.to_string(), value, std::mem::take(&mut doc)));
        } else if let Some(rest) = t.strip_prefix("#define FLUX_") {
            if let Some((name, value)) = rest.split_once(' ') {
                defines.push(Define {
                    name: name.to_string(),
                    value: value.to_string(),
                    doc: std::mem::take(&mut doc),
                });
            }
        } else if !t.is_empty() && !t.starts_with('#') && !t.starts_with(':') && t != "{" {
            doc.clear();
        }
    }
    (enums, defines)
}

/// `FluxPixelFormat` → `FLUX_PIXEL_FORMAT_`, the prefix of its constants.
fn prefix(c_name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in c_name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out + "_"
}

/// `RGBA16F` → `Rgba16F`, `INVALID_ARGUMENT` → `InvalidArgument`: C#'s member names (a letter
/// after a digit stays a capital).
fn pascal(screaming: &str) -> String {
    let mut out = String::new();
    for word in screaming.split('_') {
        let mut after_digit = false;
        for (i, ch) in word.chars().enumerate() {
            out.push(match i == 0 || after_digit {
                true => ch.to_ascii_uppercase(),
                false => ch.to_ascii_lowercase(),
            });
            after_digit = ch.is_ascii_digit();
        }
    }
    out
}

/// A doc's inline code marked for Python (``x``) or C# (<c>x</c>, XML-escaped).
fn inline_code(line: &str, python: bool) -> String {
    let line = match python {
        true => line.to_string(),
        false => line
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
    };
    let mut out = String::new();
    for (i, part) in line.split('`').enumerate() {
        match (i % 2 == 1, python) {
            (false, _) => out += part,
            (true, true) => out += &format!("``{part}``"),
            (true, false) => out += &format!("<c>{part}</c>"),
        }
    }
    out
}

/// A C expression of a define as Python or C#, with its C# type.
fn value(expr: &str, python: bool) -> (String, &'static str) {
    match expr {
        "UINT64_MAX" if python => ("2**64 - 1".into(), ""),
        "UINT64_MAX" => ("ulong.MaxValue".into(), "ulong"),
        other => (other.trim_matches(['(', ')']).to_string(), "int"),
    }
}

/// The first lines of a generated file (after the comment marker `lead`).
fn notice(lead: &str) -> String {
    format!(
        "{lead}Generated from include/flux_engine.h by ffi/tests/bindings.rs: do not edit.\n\
         {lead}`FLUX_BLESS_HEADER=1 cargo test -p flux-ffi --test bindings` rewrites it.\n"
    )
}

fn python(enums: &[Enum], defines: &[Define]) -> String {
    let mut out = format!(
        "\"\"\"The C ABI's enums and constants.\n\n{}\"\"\"\n\nfrom enum import IntEnum\n",
        notice("")
    );
    for d in defines {
        out += "\n";
        for line in &d.doc {
            out += &format!("#: {}\n", inline_code(line, true)).replace("#: \n", "#:\n");
        }
        out += &format!("{} = {}\n", d.name, value(&d.value, true).0);
    }
    for e in enums {
        let (_, py, ..) = names(&e.name);
        out += &format!("\n\nclass {py}(IntEnum):\n");
        let doc: Vec<String> = e.doc.iter().map(|l| inline_code(l, true)).collect();
        out += &format!(
            "    \"\"\"``{}``: {}\"\"\"\n\n",
            e.name,
            doc.join("\n    ").trim_end()
        );
        let p = prefix(&e.name);
        for (name, v, doc) in &e.values {
            for line in doc {
                out += &format!("    #: {}\n", inline_code(line, true)).replace("#: \n", "#:\n");
            }
            out += &format!("    {} = {v}\n", name.strip_prefix(&p).unwrap());
        }
    }
    out
}

fn csharp(enums: &[Enum], defines: &[Define]) -> String {
    let summary = |doc: &Doc, indent: &str| -> String {
        let lines: Vec<String> = doc.iter().map(|l| inline_code(l, false)).collect();
        match lines.as_slice() {
            [] => String::new(),
            [one] => format!("{indent}/// <summary>{one}</summary>\n"),
            many => {
                let body: String = many.iter().map(|l| format!("{indent}/// {l}\n")).collect();
                format!("{indent}/// <summary>\n{body}{indent}/// </summary>\n")
            }
        }
        .replace("/// \n", "///\n")
    };
    let mut out = format!("{}\nnamespace Flux\n{{\n", notice("// "));
    out += "    /// <summary>The C ABI's constants (<c>FLUX_…</c> in flux_engine.h).</summary>\n";
    out += "    public static class FluxConstants\n    {\n";
    for (i, d) in defines.iter().enumerate() {
        let (v, ty) = value(&d.value, false);
        if i > 0 {
            out += "\n";
        }
        out += &summary(&d.doc, "        ");
        out += &format!("        public const {ty} {} = {v};\n", pascal(&d.name));
    }
    out += "    }\n";
    for e in enums {
        let (_, _, cs, public, _) = names(&e.name);
        out += "\n";
        out += &summary(&e.doc, "    ");
        let visibility = if public { "public" } else { "internal" };
        out += &format!("    {visibility} enum {cs}\n    {{\n");
        let p = prefix(&e.name);
        for (name, v, doc) in &e.values {
            out += &summary(doc, "        ");
            out += &format!(
                "        {} = {v},\n",
                pascal(name.strip_prefix(&p).unwrap())
            );
        }
        out += "    }\n";
    }
    out + "}\n"
}

fn cxx(enums: &[Enum], defines: &[Define]) -> String {
    let doc = |doc: &Doc, indent: &str| -> String {
        doc.iter()
            .map(|l| format!("{indent}/// {l}\n").replace("/// \n", "///\n"))
            .collect()
    };
    let mut out = notice("// ");
    out += "//\n// The C ABI's enums as `enum class`es whose values are the C constants, the job\n";
    out += "// priorities, and the names of the result codes. Included by flux/engine.hpp.\n\n";
    out += "#pragma once\n\n#include <cstdint>\n\n#include \"flux_engine.h\"\n\nnamespace flux {\n";
    for e in enums {
        let Some(cxx) = names(&e.name).4 else {
            continue;
        };
        out += &format!("\n{}enum class {cxx} : int32_t {{\n", doc(&e.doc, ""));
        let p = prefix(&e.name);
        for (name, _, d) in &e.values {
            out += &doc(d, "  ");
            out += &format!("  {} = {name},\n", pascal(name.strip_prefix(&p).unwrap()));
        }
        out += "};\n";
    }
    out += "\n/// Job priorities: higher runs first, equal ones in submission order.\nnamespace priority {\n";
    for d in defines.iter().filter(|d| d.name.starts_with("PRIORITY_")) {
        out += &doc(&d.doc, "");
        let name = d.name["PRIORITY_".len()..].to_ascii_lowercase();
        out += &format!("constexpr int32_t {name} = FLUX_{};\n", d.name);
    }
    out += "}  // namespace priority\n";
    out += "\n/// The constant's name of a result code (\"FLUX_RESULT_TIMEOUT\").\n";
    out += "inline const char *result_name(FluxResult result) noexcept {\n  switch (result) {\n";
    let results = enums.iter().find(|e| e.name == "FluxResult").unwrap();
    for (name, ..) in &results.values {
        out += &format!("    case {name}: return \"{name}\";\n");
    }
    out += "  }\n  return \"FLUX_RESULT_(unknown)\";\n}\n\n}  // namespace flux\n";
    out
}

/// The names of the C enum `c_name` in [`NAMES`]; every enum of the header must have them.
fn names(c_name: &str) -> Names {
    *NAMES
        .iter()
        .find(|n| n.0 == c_name)
        .unwrap_or_else(|| panic!("{c_name}: add it to NAMES in ffi/tests/bindings.rs"))
}

#[test]
fn binding_enums_and_constants_are_generated_from_the_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let header = std::fs::read_to_string(root.join("include/flux_engine.h")).unwrap();
    let (enums, defines) = parse(&header);
    assert_eq!(enums.len(), NAMES.len(), "every enum of the header, once");
    assert!(defines.iter().any(|d| d.name == "ABI_VERSION"));
    let bless = std::env::var_os("FLUX_BLESS_HEADER").is_some();
    for (path, generated) in [
        (
            "bindings/python/flux_engine/_abi.py",
            python(&enums, &defines),
        ),
        (
            "bindings/csharp/FluxEngine/Abi.g.cs",
            csharp(&enums, &defines),
        ),
        ("bindings/cxx/include/flux/enums.hpp", cxx(&enums, &defines)),
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
