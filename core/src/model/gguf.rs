//! GGUF files as city96's FLUX conversions, llama.cpp's T5 encoders and stable-diffusion.cpp
//! write them: the header is read and checked here, tensor data is read later by the store.
//!
//! candle reads GGUF too, but its reader stops at the first tensor of a type it does not know
//! without naming the tensor, and checks a tensor's data against the file length only when the
//! tensor is read. This reader checks every count, string, shape and data range against the file
//! before anything is allocated from it, names the tensor and its type when the engine cannot
//! read that type (IQ*, MXFP4, …), and reports the tensors in PyTorch order (dims reversed).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;

use crate::error::{Error, Result};

/// What the header says about one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensor {
    /// PyTorch order (the reverse of GGUF's `ne`).
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
    /// Absolute offset of the data in the file.
    pub start: u64,
    /// Bytes of data.
    pub len: u64,
}

/// A GGUF file's header: its metadata scalars and strings (arrays are skipped) and tensors.
#[derive(Debug, Default)]
pub struct GgufHeader {
    pub metadata: HashMap<String, String>,
    pub tensors: HashMap<String, GgufTensor>,
}

impl GgufHeader {
    /// `general.architecture`, when the file has it (stable-diffusion.cpp writes none).
    pub fn architecture(&self) -> Option<&str> {
        self.metadata
            .get("general.architecture")
            .map(String::as_str)
    }
}

/// Whether `path` starts with the GGUF magic.
pub fn is_gguf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF"
}

/// ggml's name for a tensor type id, for messages about types the engine cannot read.
fn type_name(id: u32) -> String {
    let name = match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return format!("unknown type {id}"),
    };
    name.to_string()
}

/// The types candle reads (and so the engine), by ggml type id.
const TYPES: [(u32, GgmlDType); 15] = [
    (0, GgmlDType::F32),
    (1, GgmlDType::F16),
    (2, GgmlDType::Q4_0),
    (3, GgmlDType::Q4_1),
    (6, GgmlDType::Q5_0),
    (7, GgmlDType::Q5_1),
    (8, GgmlDType::Q8_0),
    (9, GgmlDType::Q8_1),
    (10, GgmlDType::Q2K),
    (11, GgmlDType::Q3K),
    (12, GgmlDType::Q4K),
    (13, GgmlDType::Q5K),
    (14, GgmlDType::Q6K),
    (15, GgmlDType::Q8K),
    (30, GgmlDType::BF16),
];

fn ggml_dtype(id: u32) -> Option<GgmlDType> {
    TYPES.iter().find(|(i, _)| *i == id).map(|(_, d)| *d)
}

fn type_id(dtype: GgmlDType) -> u32 {
    TYPES
        .iter()
        .find(|(_, d)| *d == dtype)
        .map_or(0, |(i, _)| *i)
}

/// ggml's name of a type the engine reads.
pub fn dtype_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// Metadata value types (GGUF `gguf_type`).
const STRING: u32 = 8;
const ARRAY: u32 = 9;
/// The longest key, tensor name or kept string value (bytes).
const MAX_NAME: u64 = 1 << 16;
/// More dimensions than ggml has (`GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;

/// A reader that knows the file's length, so every declared size is checked before use.
struct Cursor {
    inner: BufReader<File>,
    path: PathBuf,
    len: u64,
    pos: u64,
}

impl Cursor {
    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::CorruptFile {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.remaining() {
            return Err(self.corrupt(format!(
                "truncated: {what} needs {n} bytes at offset {}, the file has {} left",
                self.pos,
                self.remaining()
            )));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| Error::io(&self.path, e))?;
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<()> {
        if n > self.remaining() {
            return Err(self.corrupt(format!("truncated: {what} runs past the end of the file")));
        }
        self.inner
            .seek_relative(n as i64)
            .map_err(|e| Error::io(&self.path, e))?;
        self.pos += n;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.bytes(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A key or tensor name (at most [`MAX_NAME`] bytes).
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        if n > MAX_NAME {
            return Err(self.corrupt(format!("{what} claims {n} bytes")));
        }
        self.text(n, what)
    }

    fn text(&mut self, n: u64, what: &str) -> Result<String> {
        let b = self.bytes(n, what)?;
        String::from_utf8(b).map_err(|_| self.corrupt(format!("{what} is not UTF-8")))
    }

    /// A metadata value: scalars and strings as text, arrays skipped (`None`).
    fn value(&mut self, ty: u32, key: &str) -> Result<Option<String>> {
        let scalar = |c: &mut Self, n: u64| -> Result<Vec<u8>> { c.bytes(n, key) };
        Ok(Some(match ty {
            0 => scalar(self, 1)?[0].to_string(),
            1 => (scalar(self, 1)?[0] as i8).to_string(),
            2 => u16::from_le_bytes(scalar(self, 2)?.try_into().expect("2")).to_string(),
            3 => i16::from_le_bytes(scalar(self, 2)?.try_into().expect("2")).to_string(),
            4 => self.u32(key)?.to_string(),
            5 => (self.u32(key)? as i32).to_string(),
            6 => f32::from_bits(self.u32(key)?).to_string(),
            7 => (scalar(self, 1)?[0] != 0).to_string(),
            STRING => match self.u64(key)? {
                // Kept only when small: nothing the engine reads is long, and a hostile length
                // must not size an allocation (long values, e.g. chat templates, are skipped).
                n if n <= MAX_NAME => self.text(n, key)?,
                n => {
                    self.skip(n, key)?;
                    return Ok(None);
                }
            },
            10 => self.u64(key)?.to_string(),
            11 => (self.u64(key)? as i64).to_string(),
            12 => f64::from_bits(self.u64(key)?).to_string(),
            ARRAY => {
                let elem = self.u32(key)?;
                let count = self.u64(key)?;
                match elem {
                    STRING => {
                        if count.saturating_mul(8) > self.remaining() {
                            return Err(self
                                .corrupt(format!("truncated: '{key}' declares {count} strings")));
                        }
                        for _ in 0..count {
                            let n = self.u64(key)?;
                            self.skip(n, key)?;
                        }
                    }
                    ARRAY => return Err(self.corrupt(format!("'{key}': nested arrays"))),
                    scalar => {
                        let size = match scalar {
                            0 | 1 | 7 => 1,
                            2 | 3 => 2,
                            4..=6 => 4,
                            10..=12 => 8,
                            t => {
                                return Err(self.corrupt(format!("'{key}': unknown value type {t}")))
                            }
                        };
                        let n = count
                            .checked_mul(size)
                            .ok_or_else(|| self.corrupt(format!("'{key}': array too large")))?;
                        self.skip(n, key)?;
                    }
                }
                return Ok(None);
            }
            t => return Err(self.corrupt(format!("'{key}': unknown value type {t}"))),
        }))
    }
}

/// Reads and checks the header of a GGUF file (versions 2 and 3).
pub fn read_header(path: &Path) -> Result<GgufHeader> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut c = Cursor {
        inner: BufReader::new(file),
        path: path.to_path_buf(),
        len,
        pos: 0,
    };
    if c.bytes(4, "the magic")? != b"GGUF" {
        return Err(c.corrupt("no GGUF magic at the start"));
    }
    let version = c.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(c.corrupt(format!("GGUF version {version} (2 and 3 are read)")));
    }
    let tensor_count = c.u64("the tensor count")?;
    let kv_count = c.u64("the metadata count")?;
    // Each metadata entry takes at least 13 bytes and each tensor entry 24: a count the file
    // cannot hold is refused before it sizes anything.
    let least = kv_count
        .saturating_mul(13)
        .saturating_add(tensor_count.saturating_mul(24));
    if least > c.remaining() {
        return Err(c.corrupt(format!(
            "truncated: the header declares {tensor_count} tensors and {kv_count} metadata entries, more than the file holds"
        )));
    }
    let mut header = GgufHeader::default();
    for _ in 0..kv_count {
        let key = c.string("a metadata key")?;
        let ty = c.u32(&key)?;
        if let Some(v) = c.value(ty, &key)? {
            header.metadata.insert(key, v);
        }
    }
    let mut infos = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        let name = c.string("a tensor name")?;
        let dims = c.u32(&name)?;
        if dims == 0 || dims > MAX_DIMS {
            return Err(c.corrupt(format!("tensor '{name}' has {dims} dimensions")));
        }
        let mut ne = (0..dims)
            .map(|_| c.u64(&name))
            .collect::<Result<Vec<u64>>>()?;
        let id = c.u32(&name)?;
        let offset = c.u64(&name)?;
        let dtype = ggml_dtype(id).ok_or_else(|| Error::BadTensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            reason: format!(
                "GGUF type {} is not supported (the engine reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K to Q6_K)",
                type_name(id)
            ),
        })?;
        let elements = ne
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= usize::MAX as u64 / 4)
            .ok_or_else(|| c.corrupt(format!("tensor '{name}': shape {ne:?} overflows")))?;
        // No model has an empty tensor, and candle cannot view empty data as blocks.
        if elements == 0 {
            return Err(c.corrupt(format!("tensor '{name}': shape {ne:?} has no elements")));
        }
        let block = dtype.block_size() as u64;
        if ne[0] % block != 0 {
            return Err(c.corrupt(format!(
                "tensor '{name}': rows of {} values do not fill {} blocks of {block}",
                ne[0],
                type_name(id)
            )));
        }
        ne.reverse();
        let shape = ne.iter().map(|&d| d as usize).collect();
        let bytes = elements / block * dtype.type_size() as u64;
        infos.push((name, shape, dtype, offset, bytes));
    }
    let alignment = match header.metadata.get("general.alignment") {
        Some(a) => a
            .parse::<u64>()
            .ok()
            .filter(|a| a.is_power_of_two())
            .ok_or_else(|| c.corrupt(format!("general.alignment {a} is not a power of two")))?,
        None => 32,
    };
    let data_start = c.pos.div_ceil(alignment) * alignment;
    for (name, shape, dtype, offset, len) in infos {
        let start = data_start.checked_add(offset);
        if start
            .and_then(|s| s.checked_add(len))
            .is_none_or(|end| end > c.len)
        {
            return Err(Error::BadTensor {
                path: path.to_path_buf(),
                tensor: name,
                reason: format!(
                    "its {len} bytes at data offset {offset} run past the end of the file ({} bytes): the file is truncated",
                    c.len
                ),
            });
        }
        let start = start.expect("checked above");
        if header.tensors.contains_key(&name) {
            return Err(c.corrupt(format!("tensor '{name}' is listed twice")));
        }
        header.tensors.insert(
            name,
            GgufTensor {
                shape,
                dtype,
                start,
                len,
            },
        );
    }
    Ok(header)
}

/// `general.file_type` (llama.cpp's `llama_ftype`) of a file whose quantized tensors are `dtype`;
/// K-quants as their "_S" variants, the ones city96's FLUX rules make.
fn file_type(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 7,
        GgmlDType::Q5_0 => 8,
        GgmlDType::Q5_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 14,
        GgmlDType::Q5K => 16,
        GgmlDType::Q6K => 18,
        GgmlDType::BF16 => 32,
        GgmlDType::Q8_1 | GgmlDType::Q8K => 7,
    }
}

/// Whether city96's rules quantize a FLUX tensor: 2-D weights outside the input and output
/// layers (`img_in`, `txt_in`, `time_in`, `vector_in`, `guidance_in`, `final_layer`).
fn quantizes(name: &str, shape: &[usize]) -> bool {
    const KEPT: [&str; 6] = [
        "img_in.",
        "txt_in.",
        "time_in.",
        "vector_in.",
        "guidance_in.",
        "final_layer.",
    ];
    name.ends_with("weight") && shape.len() == 2 && !KEPT.iter().any(|k| name.contains(k))
}

/// The type city96's rules give a FLUX tensor of `shape` in a `dtype` file: `dtype` for the weights
/// they quantize (F16 where a row does not fill the type's blocks), F16 for the other matrices,
/// F32 for 1-D tensors.
pub fn flux_type(name: &str, shape: &[usize], dtype: GgmlDType) -> GgmlDType {
    match shape {
        [_] => GgmlDType::F32,
        [.., row] if quantizes(name, shape) && row % dtype.block_size() == 0 => dtype,
        _ => GgmlDType::F16,
    }
}

/// Writes a FLUX transformer (BFL names, PyTorch shapes) as city96's tools would from a
/// checkpoint of these tensors, each stored as [`flux_type`] says; `values(i)` gives tensor `i`
/// (one in memory at a time); `general.architecture = flux`.
pub fn write_flux(
    path: &Path,
    tensors: &[(String, Vec<usize>)],
    dtype: GgmlDType,
    values: impl FnMut(usize) -> Result<Tensor>,
) -> Result<()> {
    let plan: Vec<(String, Vec<usize>, GgmlDType)> = tensors
        .iter()
        .map(|(n, shape)| (n.clone(), shape.clone(), flux_type(n, shape, dtype)))
        .collect();
    let metadata = [
        ("general.architecture", Meta::String("flux".into())),
        ("general.quantization_version", Meta::U32(2)),
        ("general.file_type", Meta::U32(file_type(dtype))),
    ];
    write(path, &metadata, &plan, values)
}

/// A metadata value to write.
pub enum Meta {
    U32(u32),
    String(String),
}

/// A GGUF v3 header for `tensors` (name, PyTorch shape, stored type) and `metadata`, padded to
/// the data alignment, with each tensor's data length and the alignment.
fn header(
    metadata: &[(&str, Meta)],
    tensors: &[(String, Vec<usize>, GgmlDType)],
) -> Result<(Vec<u8>, Vec<u64>, u64)> {
    // GGUF's default data alignment, or the `general.alignment` the metadata declares.
    let alignment = match metadata.iter().find(|(k, _)| *k == "general.alignment") {
        Some((_, Meta::U32(a))) if a.is_power_of_two() => *a as u64,
        Some(_) => {
            return Err(Error::invalid(
                "general.alignment must be a power of two (U32)",
            ))
        }
        None => 32,
    };
    let mut header: Vec<u8> = b"GGUF".to_vec();
    let string = |h: &mut Vec<u8>, s: &str| {
        h.extend((s.len() as u64).to_le_bytes());
        h.extend(s.as_bytes());
    };
    header.extend(3u32.to_le_bytes());
    header.extend((tensors.len() as u64).to_le_bytes());
    header.extend((metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        string(&mut header, key);
        match value {
            Meta::U32(v) => header.extend([4u32.to_le_bytes(), v.to_le_bytes()].concat()),
            Meta::String(v) => {
                header.extend(STRING.to_le_bytes());
                string(&mut header, v);
            }
        }
    }
    let mut offset = 0u64;
    let mut lens = Vec::with_capacity(tensors.len());
    for (name, shape, dtype) in tensors {
        let elements: usize = shape.iter().product();
        let len = (elements / dtype.block_size() * dtype.type_size()) as u64;
        string(&mut header, name);
        header.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            header.extend((*d as u64).to_le_bytes());
        }
        header.extend(type_id(*dtype).to_le_bytes());
        header.extend(offset.to_le_bytes());
        lens.push(len);
        offset += len.div_ceil(alignment) * alignment;
    }
    header.resize(
        (header.len() as u64).div_ceil(alignment) as usize * alignment as usize,
        0,
    );
    Ok((header, lens, alignment))
}

/// Writes a GGUF v3 file of `tensors` (name, PyTorch shape, stored type) whose values
/// `values(i)` gives one tensor at a time (quantized here, then dropped), so a file of any size is
/// written in the memory of its largest tensor. candle's writer needs every tensor quantized in
/// memory at once, which a full-size FLUX file (12.7 GB in Q8_0) cannot afford.
pub fn write(
    path: &Path,
    metadata: &[(&str, Meta)],
    tensors: &[(String, Vec<usize>, GgmlDType)],
    mut values: impl FnMut(usize) -> Result<Tensor>,
) -> Result<()> {
    use std::io::Write;
    let io = |e| Error::io(path, e);
    let (header, lens, alignment) = header(metadata, tensors)?;
    let mut out = std::io::BufWriter::new(File::create(path).map_err(io)?);
    out.write_all(&header).map_err(io)?;
    for (i, ((name, shape, dtype), len)) in tensors.iter().zip(lens).enumerate() {
        let t = values(i)?;
        if t.dims() != shape.as_slice() {
            return Err(Error::invalid(format!(
                "GGUF writer: '{name}' has shape {:?}, planned {shape:?}",
                t.dims()
            )));
        }
        let q = QTensor::quantize(&t, *dtype)?;
        let data = q.data()?;
        out.write_all(&data).map_err(io)?;
        let pad = len.div_ceil(alignment) * alignment - len;
        out.write_all(&vec![0u8; pad as usize]).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Writes the header of a GGUF file of `tensors` and leaves their data a hole of the right
/// length (zeros, no disk used on file systems with sparse files): a full-size model's layout
/// for planning and loading tests.
pub fn write_sparse(
    path: &Path,
    metadata: &[(&str, Meta)],
    tensors: &[(String, Vec<usize>, GgmlDType)],
) -> Result<()> {
    let io = |e| Error::io(path, e);
    let (header, lens, alignment) = header(metadata, tensors)?;
    let data: u64 = lens.iter().map(|l| l.div_ceil(alignment) * alignment).sum();
    let file = File::create(path).map_err(io)?;
    std::io::Write::write_all(&mut &file, &header).map_err(io)?;
    file.set_len(header.len() as u64 + data).map_err(io)
}
