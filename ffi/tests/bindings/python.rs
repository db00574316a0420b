//! `bindings/python/flux_engine/_abi.py`: enums, constants and the functions' C signatures.

use crate::header::{inline_code, names, prefix, value, Header};
use crate::notice;

pub fn generate(h: &Header) -> String {
    let (enums, defines) = (&h.enums, &h.defines);
    let mut out = format!(
        "\"\"\"The C ABI's enums, constants and functions.\n\n{}\"\"\"\n\nfrom enum import IntEnum\n",
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
    out += "\n\n#: The structs: name -> fields (name, type), spelt as in C; ``_native`` builds their\n";
    out += "#: ctypes mirrors from them.\nSTRUCTS = {\n";
    for (name, fields) in &h.structs {
        out += &format!("    \"{name}\": (\n");
        for (ty, field) in fields {
            out += &format!("        (\"{field}\", \"{ty}\"),\n");
        }
        out += "    ),\n";
    }
    out += "}\n";
    out +=
        "\n#: The functions: name -> (return type, parameter types), spelt as in C; ``_native``\n";
    out += "#: gives each its ctypes types.\nFUNCTIONS = {\n";
    for f in &h.functions {
        let params: Vec<String> = f
            .params
            .iter()
            .map(|(ty, _)| format!("\"{ty}\", "))
            .collect();
        out += &format!(
            "    \"{}\": (\"{}\", ({})),\n",
            f.name,
            f.ret,
            params.concat().trim_end()
        );
    }
    out + "}\n"
}
