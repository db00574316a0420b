//! `bindings/csharp/FluxEngine/Abi.g.cs`: enums, constants and the P/Invoke declarations.

use crate::header::{inline_code, names, pascal, prefix, value, Doc, Function, Header};
use crate::notice;

pub fn generate(h: &Header) -> String {
    let (enums, defines) = (&h.enums, &h.defines);
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
    let mut out = format!(
        "{}\nusing System;\nusing System.Runtime.InteropServices;\n\nnamespace Flux\n{{\n",
        notice("// ")
    );
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
    out += &pinvoke(&h.functions);
    out += &structs(&h.structs);
    out + "}\n"
}

/// The functions as P/Invoke declarations in `Native`, in the header's order. Handles travel as
/// SafeHandles (the `*_destroy` functions, called from `ReleaseHandle`, take the raw pointer);
/// structs by `ref` (the `*_defaults` functions take any buffer, as `IntPtr`); outputs as `out`;
/// strings as UTF-8 pointers (`IntPtr`, built by `Utf8Strings`); a `const FluxSemaphore *` that
/// may be NULL as an array of none or one.
fn pinvoke(functions: &[Function]) -> String {
    let mut out = String::from("\n    internal static partial class Native\n    {\n");
    for (i, f) in functions.iter().enumerate() {
        let raw = f.name.ends_with("_defaults") || f.name.ends_with("_destroy");
        let params: Vec<String> = f
            .params
            .iter()
            .map(|(ty, name)| param(ty, name, raw))
            .collect();
        if i > 0 {
            out += "\n";
        }
        out += "        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]\n";
        out += &format!(
            "        internal static extern {} {}({});\n",
            scalar(&f.ret),
            f.name,
            params.join(", ")
        );
    }
    out + "    }\n"
}

/// The structs, field for field with the header's names, in `Native` (sequential layout; every
/// pointer an `IntPtr`, a fixed array marshalled by value).
fn structs(structs: &[(String, Vec<(String, String)>)]) -> String {
    let mut out = String::from("\n    internal static partial class Native\n    {\n");
    for (i, (name, fields)) in structs.iter().enumerate() {
        if i > 0 {
            out += "\n";
        }
        out += "        [StructLayout(LayoutKind.Sequential)]\n";
        out += &format!("        internal struct {name}\n        {{\n");
        for (ty, field) in fields {
            let ty = match ty.split_once('[') {
                Some(("uint8_t", len)) => format!(
                    "[MarshalAs(UnmanagedType.ByValArray, SizeConst = {})]\n            public byte[]",
                    len.trim_end_matches(']')
                ),
                Some(_) => panic!("{name}.{field}: only byte arrays are mapped"),
                None if ty.ends_with('*') || ty.ends_with("Callback") => "public IntPtr".into(),
                None => format!("public {}", scalar(ty)),
            };
            out += &format!("            {ty} {field};\n");
        }
        out += "        }\n";
    }
    out + "    }\n"
}

/// The C# type of a C value type.
fn scalar(c_type: &str) -> String {
    match c_type {
        "void" => "void",
        "FluxResult" => "FluxResult",
        "const char *" => "IntPtr",
        "int32_t" => "int",
        "int64_t" => "long",
        "double" => "double",
        "uint32_t" => "uint",
        "uint64_t" | "FluxJob" => "ulong",
        "uint8_t" => "byte",
        "size_t" => "UIntPtr",
        "float" => "float",
        "bool" => "[MarshalAs(UnmanagedType.U1)] bool",
        other => panic!("no C# type for '{other}': add it to ffi/tests/bindings/csharp.rs"),
    }
    .to_string()
}

/// One parameter: its C type and name as C# (`raw`: pointers as `IntPtr`).
fn param(c_type: &str, c_name: &str, raw: bool) -> String {
    let name = match c_name.strip_prefix("out_").unwrap_or(c_name) {
        "out" => "result".to_string(),
        n => {
            let p = pascal(&n.to_ascii_uppercase());
            p[..1].to_ascii_lowercase() + &p[1..]
        }
    };
    let base = c_type
        .trim_start_matches("const ")
        .trim_start_matches("struct ");
    let (pointee, stars) = (base.trim_end_matches([' ', '*']), base.matches('*').count());
    let handle = match pointee {
        "FluxEngine" => Some("EngineHandle"),
        "FluxRequest" => Some("RequestHandle"),
        "FluxImage" => Some("ImageHandle"),
        _ => None,
    };
    let ty = match (pointee, stars, handle) {
        (_, 0, _) => scalar(c_type),
        ("char" | "void", 1, _) => "IntPtr".into(),
        (_, 1, _) if raw => "IntPtr".into(),
        (_, 1, Some(h)) => h.into(),
        (_, 2, Some(h)) => format!("out {h}"),
        ("FluxSemaphore", 1, _) => "[In] FluxSemaphore[]".into(),
        ("uint8_t", 1, _) => "[Out] byte[]".into(),
        ("FluxJob", 1, _) => "out ulong".into(),
        (s, 1, _) if s.starts_with("Flux") => format!("ref {s}"),
        (s, 1, _) => format!("out {}", scalar(s)),
        _ => panic!("no C# type for '{c_type}': add it to ffi/tests/bindings/csharp.rs"),
    };
    format!("{ty} {name}")
}
