//! What the generators read from `include/flux_engine.h`, and the naming rules they share.

/// A doc comment, its lines without the comment markers.
pub type Doc = Vec<String>;

/// One enum of the header: its C name, doc and constants (name, value, doc).
pub struct Enum {
    pub name: String,
    pub doc: Doc,
    pub values: Vec<(String, i64, Doc)>,
}

/// One `#define FLUX_…` value of the header: name, C expression, doc.
pub struct Define {
    pub name: String,
    pub value: String,
    pub doc: Doc,
}

/// One function of the header: name, return type and parameters (C type, name).
pub struct Function {
    pub name: String,
    pub ret: String,
    pub params: Vec<(String, String)>,
}

impl Function {
    /// `RET NAME(TYPE NAME, ...);` with C's spacing (`struct FluxEngine **out_engine`).
    fn parse(decl: &str) -> Self {
        let (head, rest) = decl.split_once('(').expect("a function declaration");
        let (ret, name) = split_declaration(head.trim());
        let params = rest.trim_end_matches(");").trim();
        let params = match params {
            "void" => Vec::new(),
            list => list
                .split(',')
                .map(|p| split_declaration(p.trim()))
                .collect(),
        };
        Self { name, ret, params }
    }
}

/// `TYPE NAME` as (type with C's spacing, `struct FluxEngine **`, name).
fn split_declaration(typed: &str) -> (String, String) {
    let at = typed.rfind([' ', '*']).map_or(0, |i| i + 1);
    let ty = typed[..at].split_whitespace().collect::<Vec<_>>().join(" ");
    let ty = ty
        .replace(" *", "*")
        .replace('*', " *")
        .replace("* *", "**");
    (ty, typed[at..].to_string())
}

/// What the generators read from the header.
#[derive(Default)]
pub struct Header {
    pub enums: Vec<Enum>,
    pub defines: Vec<Define>,
    pub functions: Vec<Function>,
    /// The structs: name and fields (C type, name; an array's length in its type: `uint8_t[16]`).
    pub structs: Vec<(String, Vec<(String, String)>)>,
}

/// How each binding names a C enum: Python class, C# type, whether C# makes it public, C++
/// `enum class` (`None`: the C++ API uses the C type). C#'s event type keeps its prefix so that
/// it does not clash with `UnityEngine.EventType`.
pub type Names = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
);
pub const NAMES: [Names; 12] = [
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

/// The enums, defines and functions of the header, in order.
pub fn parse(header: &str) -> Header {
    let mut h = Header::default();
    let (enums, defines) = (&mut h.enums, &mut h.defines);
    // A function declaration being read (it may span lines), or a struct's fields.
    let mut pending: Option<String> = None;
    let mut in_struct = false;
    let (mut doc, mut in_doc): (Doc, bool) = (Vec::new(), false);
    let mut current: Option<Enum> = None;
    for line in header.lines() {
        let t = line.trim();
        if let Some(decl) = &mut pending {
            decl.push(' ');
            decl.push_str(t);
        } else if is_function(line) {
            pending = Some(t.to_string());
        }
        if let Some(decl) = pending.take_if(|d| d.ends_with(");")) {
            h.functions.push(Function::parse(&decl));
            doc.clear();
            continue;
        }
        if pending.is_some() {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("typedef struct ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            h.structs.push((name.to_string(), Vec::new()));
            in_struct = true;
            continue;
        }
        if in_struct {
            if line.starts_with('}') {
                in_struct = false;
            } else if let Some(field) = t.strip_suffix(';').filter(|_| !t.starts_with('*')) {
                let (ty, name) = split_declaration(field);
                let (name, ty) = match name.split_once('[') {
                    Some((name, len)) => (name.to_string(), format!("{ty}[{len}")),
                    None => (name, ty),
                };
                h.structs.last_mut().unwrap().1.push((ty, name));
            }
            continue;
        }
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
    h
}

/// Whether `line` opens a function declaration of the ABI (not a `static inline` helper).
fn is_function(line: &str) -> bool {
    let head = line.split('(').next().unwrap_or("");
    line.contains('(')
        && !line.starts_with([' ', '#', '/', '*', 's', 't'])
        && head
            .rsplit([' ', '*'])
            .next()
            .is_some_and(|n| n.starts_with("flux_"))
}

/// `FluxPixelFormat` → `FLUX_PIXEL_FORMAT_`, the prefix of its constants.
pub fn prefix(c_name: &str) -> String {
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
pub fn pascal(screaming: &str) -> String {
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
pub fn inline_code(line: &str, python: bool) -> String {
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
pub fn value(expr: &str, python: bool) -> (String, &'static str) {
    match expr {
        "UINT64_MAX" if python => ("2**64 - 1".into(), ""),
        "UINT64_MAX" => ("ulong.MaxValue".into(), "ulong"),
        other => (other.trim_matches(['(', ')']).to_string(), "int"),
    }
}

/// The names of the C enum `c_name` in [`NAMES`]; every enum of the header must have them.
pub fn names(c_name: &str) -> Names {
    *NAMES
        .iter()
        .find(|n| n.0 == c_name)
        .unwrap_or_else(|| panic!("{c_name}: add it to NAMES in ffi/tests/bindings/header.rs"))
}
