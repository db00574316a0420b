//! `bindings/cxx/include/flux/enums.hpp`: `enum class`es, priorities and `result_name()`.

use crate::header::{names, pascal, prefix, Doc, Header};
use crate::notice;

pub fn generate(h: &Header) -> String {
    let (enums, defines) = (&h.enums, &h.defines);
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
