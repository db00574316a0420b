//! Weight files — safetensors or GGUF — of one component, from a single file or a sharded set.
//!
//! Files are validated when opened (header, offsets, length), so a truncated or corrupt file is
//! reported with its path before any tensor is read. Each tensor is then read with a plain
//! positional read and converted on its own: no file page stays mapped into the process, so peak
//! memory while loading is the converted weights plus one tensor in flight, not twice the weights
//! as with a memory map whose touched pages count as resident. Quantized GGUF tensors and fp8
//! tensors can instead be kept in their stored form ([`WeightSet::load_compact`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::tensor::Dtype as StDtype;
use safetensors::SafeTensors;

use super::compact::CompactWeight;
use super::gguf;
use crate::error::{Error, Result};

/// How a tensor's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stored {
    /// A safetensors dtype (`None`: one the engine cannot read, named in the error).
    Safetensors(Option<DType>, StDtype),
    /// GGUF blocks.
    Ggml(GgmlDType),
}

impl Stored {
    /// Whether a weight stored this way stays in its stored form when the model computes in
    /// `compute`: GGUF types narrower than f32, fp8, and bf16/f16 safetensors under f32 compute
    /// (the CPU), each expanded per layer as it runs.
    fn is_compact(self, compute: DType) -> bool {
        match self {
            Stored::Ggml(d) => d != GgmlDType::F32,
            Stored::Safetensors(Some(DType::F8E4M3), _) => true,
            Stored::Safetensors(Some(DType::BF16 | DType::F16), _) => compute == DType::F32,
            Stored::Safetensors(..) => false,
        }
    }

    /// The GGUF type whose blocks hold the same bytes (bf16/f16 safetensors are plain arrays).
    fn ggml(self) -> Option<GgmlDType> {
        match self {
            Stored::Ggml(d) => Some(d),
            Stored::Safetensors(Some(DType::BF16), _) => Some(GgmlDType::BF16),
            Stored::Safetensors(Some(DType::F16), _) => Some(GgmlDType::F16),
            Stored::Safetensors(..) => None,
        }
    }
}

/// One tensor of a file.
#[derive(Debug, Clone)]
struct Entry {
    shape: Vec<usize>,
    stored: Stored,
    /// Absolute offset of the data in the file.
    start: u64,
    len: u64,
}

/// One opened weight file (safetensors or GGUF).
pub struct WeightFile {
    path: PathBuf,
    tensors: HashMap<String, Entry>,
    metadata: HashMap<String, String>,
}

impl WeightFile {
    /// Opens and validates a safetensors or GGUF file (told apart by the GGUF magic).
    pub fn open(path: &Path) -> Result<Self> {
        if gguf::is_gguf(path) {
            let header = gguf::read_header(path)?;
            let tensors = header
                .tensors
                .into_iter()
                .map(|(k, t)| {
                    let entry = Entry {
                        shape: t.shape,
                        stored: Stored::Ggml(t.dtype),
                        start: t.start,
                        len: t.len,
                    };
                    (k, entry)
                })
                .collect();
            return Ok(Self {
                path: path.to_path_buf(),
                tensors,
                metadata: header.metadata,
            });
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // The map is only used to validate the header against the file length (no data page is
        // touched) and is dropped at the end of `open`.
        // SAFETY: read-only map; nothing keeps a reference into it past this function.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (header_len, meta) =
            SafeTensors::read_metadata(&mmap).map_err(|e| Error::CorruptFile {
                path: path.to_path_buf(),
                reason: describe_safetensors_error(&e),
            })?;
        let data_start = 8 + header_len as u64;
        let tensors = meta
            .tensors()
            .into_iter()
            .map(|(k, v)| {
                let (a, b) = v.data_offsets;
                let entry = Entry {
                    shape: v.shape.clone(),
                    stored: Stored::Safetensors(candle_dtype(v.dtype), v.dtype),
                    start: data_start + a as u64,
                    len: (b - a) as u64,
                };
                (k, entry)
            })
            .collect();
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            metadata,
        })
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the tensors in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }

    /// The file's metadata: safetensors' `__metadata__`, or GGUF's scalar and string values.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    fn info(&self, name: &str) -> Option<&Entry> {
        self.tensors.get(name)
    }

    fn bad(&self, name: &str, reason: String) -> Error {
        Error::BadTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
            reason,
        }
    }

    /// The stored bytes of tensor `name`, in a buffer allocated fallibly.
    fn read(&self, name: &str, entry: &Entry) -> Result<Vec<u8>> {
        crate::memory::read_exact_at(&self.path, entry.start, entry.len, || {
            format!("tensor '{name}' of '{}'", self.path.display())
        })
    }

    /// Reads a tensor's stored bytes into `dst`, which must be their size.
    fn read_into(&self, entry: &Entry, dst: &mut [u8]) -> Result<()> {
        if dst.len() as u64 != entry.len {
            return Err(Error::invalid(format!(
                "'{}': {} bytes asked of a {}-byte tensor",
                self.path.display(),
                dst.len(),
                entry.len
            )));
        }
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        file.seek(SeekFrom::Start(entry.start))
            .and_then(|_| file.read_exact(dst))
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Reads a tensor in its stored dtype on the CPU (GGUF blocks dequantized to f32).
    fn load_stored(&self, name: &str, entry: &Entry) -> Result<Tensor> {
        let bytes = self.read(name, entry)?;
        let t = match entry.stored {
            Stored::Safetensors(None, d) => {
                return Err(self.bad(name, format!("unsupported dtype {d:?}")))
            }
            Stored::Safetensors(Some(d), _) => {
                Tensor::from_raw_buffer(&bytes, d, &entry.shape, &Device::Cpu)
            }
            Stored::Ggml(d) => QStorage::from_data(bytes.into(), &Device::Cpu, d)
                .and_then(|s| QTensor::new(s, entry.shape.as_slice()))
                .and_then(|q| q.dequantize(&Device::Cpu)),
        };
        t.map_err(|e| self.bad(name, e.to_string()))
    }
}

fn describe_safetensors_error(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::MetadataIncompleteBuffer => {
            "the file is truncated (its header declares more tensor data than the file holds)"
                .into()
        }
        E::HeaderTooSmall => "the file is too small to hold a safetensors header".into(),
        E::InvalidHeaderLength => {
            "the header length is larger than the file (truncated or not a safetensors file)".into()
        }
        other => format!("corrupt header: {other}"),
    }
}

/// Maps safetensors dtypes to candle's; `None` for dtypes the engine cannot read.
fn candle_dtype(d: StDtype) -> Option<DType> {
    Some(match d {
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F64 => DType::F64,
        StDtype::F8_E4M3 => DType::F8E4M3,
        StDtype::U8 => DType::U8,
        StDtype::U32 => DType::U32,
        StDtype::I64 => DType::I64,
        _ => return None,
    })
}

/// Where a tensor lives: which file and under which stored name.
#[derive(Clone, Copy)]
pub struct Located<'a> {
    pub file: &'a WeightFile,
    pub shape: &'a [usize],
}

/// All files of one component (transformer, AE, T5, CLIP), searched in order.
pub struct WeightSet {
    component: String,
    files: Vec<WeightFile>,
    /// A key prefix stripped from stored names (e.g. ComfyUI's `model.diffusion_model.`).
    prefix: String,
}

impl WeightSet {
    /// Opens the given files (a single file, or every shard of a sharded set).
    pub fn open(component: &str, paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::UnknownLayout(format!(
                "{component}: no weight file given"
            )));
        }
        let files = paths
            .iter()
            .map(|p| WeightFile::open(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            component: component.to_string(),
            files,
            prefix: String::new(),
        })
    }

    /// Opens the files named by a `*.safetensors.index.json` shard index.
    pub fn open_index(component: &str, index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::CorruptFile {
                path: index.to_path_buf(),
                reason: format!("invalid shard index JSON: {e}"),
            })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::CorruptFile {
                path: index.to_path_buf(),
                reason: "shard index has no 'weight_map' object".into(),
            })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shards: Vec<PathBuf> = Vec::new();
        for v in map.values() {
            let name = v.as_str().ok_or_else(|| Error::CorruptFile {
                path: index.to_path_buf(),
                reason: "shard index 'weight_map' values must be file names".into(),
            })?;
            let p = dir.join(name);
            if !shards.contains(&p) {
                shards.push(p);
            }
        }
        shards.sort();
        let set = Self::open(component, &shards)?;
        // Every tensor the index names must be in the shard it names.
        for (tensor, shard) in map {
            let shard = dir.join(shard.as_str().unwrap_or_default());
            let found = set
                .files
                .iter()
                .any(|f| f.path == shard && f.info(tensor).is_some());
            if !found {
                return Err(Error::MissingTensor {
                    component: component.to_string(),
                    tensor: tensor.clone(),
                    files: vec![shard],
                });
            }
        }
        Ok(set)
    }

    /// Strips `prefix` from every stored name on lookup.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Component name used in error messages.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The opened files.
    pub fn files(&self) -> &[WeightFile] {
        &self.files
    }

    /// Paths of the opened files.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// Every stored tensor name (prefix removed).
    pub fn names(&self) -> Vec<String> {
        self.files
            .iter()
            .flat_map(|f| f.names())
            .filter_map(|n| n.strip_prefix(self.prefix.as_str()).map(str::to_string))
            .collect()
    }

    /// The first metadata value for `key` across the files.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.files
            .iter()
            .find_map(|f| f.metadata().get(key))
            .map(|s| s.as_str())
    }

    /// Finds a tensor by (unprefixed) name.
    pub fn locate(&self, name: &str) -> Option<Located<'_>> {
        let full = format!("{}{name}", self.prefix);
        self.files.iter().find_map(|f| {
            f.info(&full).map(|i| Located {
                file: f,
                shape: &i.shape,
            })
        })
    }

    /// True when the tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    /// Shape of a tensor, or a `MissingTensor` error naming the files searched.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.locate(name)
            .map(|l| l.shape.to_vec())
            .ok_or_else(|| self.missing(name))
    }

    /// Loads a tensor converted to `dtype` on `device`.
    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        for f in &self.files {
            if let Some(info) = f.info(&full) {
                let t = f.load_stored(&full, info)?;
                let t = match self.fp8_scale(name, info.stored)? {
                    Some(scale) => (t.to_dtype(DType::F32)? * scale as f64)?,
                    None => t,
                };
                return t
                    .to_dtype(dtype)
                    .and_then(|t| t.to_device(device))
                    .map_err(|e| f.bad(&full, e.to_string()));
            }
        }
        Err(self.missing(name))
    }

    /// Loads a 2-D tensor in its stored form when it is stored compactly for `compute` (GGUF
    /// types narrower than f32, fp8 with its scale, bf16/f16 under f32 compute); `None` for other
    /// storage.
    pub fn load_compact(
        &self,
        name: &str,
        compute: DType,
        device: &Device,
    ) -> Result<Option<CompactWeight>> {
        let full = format!("{}{name}", self.prefix);
        let Some(f) = self.files.iter().find(|f| f.info(&full).is_some()) else {
            return Err(self.missing(name));
        };
        let info = f.info(&full).expect("found above");
        let &[outputs, inputs] = info.shape.as_slice() else {
            return Ok(None);
        };
        // The compact forms are allocated infallibly (candle's block types): check first.
        crate::memory::ensure_free(info.len, || {
            format!("tensor '{full}' of '{}'", f.path.display())
        })?;
        let read = |dst: &mut [u8]| f.read_into(info, dst).map_err(candle_core::Error::wrap);
        let weight = match info.stored {
            s if !s.is_compact(compute) => return Ok(None),
            s => match s.ggml() {
                Some(d) => CompactWeight::ggml(d, (outputs, inputs), device, read),
                None => {
                    let scale = self.fp8_scale(name, info.stored)?.unwrap_or(1.0);
                    CompactWeight::fp8((outputs, inputs), scale, device, read)
                }
            },
        };
        weight.map(Some).map_err(|e| f.bad(&full, e.to_string()))
    }

    /// The scale of an fp8 weight in a ComfyUI "scaled fp8" file: `<layer>.scale_weight`, or
    /// `<layer>.weight_scale` in newer files (a one-value f32 tensor). `None` when the tensor is
    /// not fp8 or has no scale.
    fn fp8_scale(&self, name: &str, stored: Stored) -> Result<Option<f32>> {
        if stored != Stored::Safetensors(Some(DType::F8E4M3), StDtype::F8_E4M3) {
            return Ok(None);
        }
        let Some(layer) = name.strip_suffix(".weight") else {
            return Ok(None);
        };
        for scale in [
            format!("{layer}.scale_weight"),
            format!("{layer}.weight_scale"),
        ] {
            if self.contains(&scale) {
                let t = self.load(&scale, DType::F32, &Device::Cpu)?;
                let values = t.flatten_all()?.to_vec1::<f32>()?;
                return match values.as_slice() {
                    [v] => Ok(Some(*v)),
                    _ => Err(Error::BadTensor {
                        path: self.file_of(&scale),
                        tensor: scale,
                        reason: format!("a per-tensor scale with {} values", values.len()),
                    }),
                };
            }
        }
        Ok(None)
    }

    /// The error for a tensor that is in none of the files.
    pub fn missing(&self, name: &str) -> Error {
        Error::MissingTensor {
            component: self.component.clone(),
            tensor: format!("{}{name}", self.prefix),
            files: self.paths(),
        }
    }

    /// The file holding `name`, for error messages (the first file when absent).
    pub fn file_of(&self, name: &str) -> PathBuf {
        self.locate(name)
            .map(|l| l.file.path.clone())
            .unwrap_or_else(|| self.files[0].path.clone())
    }

    /// The stored size of `name` when it is a 2-D weight stored compactly for `compute` (see
    /// [`Self::load_compact`]); `None` otherwise.
    pub fn compact_len(&self, name: &str, compute: DType) -> Option<u64> {
        let full = format!("{}{name}", self.prefix);
        let info = self.files.iter().find_map(|f| f.info(&full))?;
        (info.shape.len() == 2 && info.stored.is_compact(compute)).then_some(info.len)
    }

    /// Bytes the tensors occupy once loaded to compute in `dtype`: compactly stored 2-D weights
    /// (see [`Self::load_compact`]) at their stored size when `compact`, plus the buffer the
    /// largest of them expands into when it runs; everything else at `dtype`.
    pub fn loaded_bytes(&self, dtype: DType, compact: bool) -> u64 {
        let size = dtype.size_in_bytes() as u64;
        let (mut total, mut largest) = (0, 0);
        for i in self.files.iter().flat_map(|f| f.tensors.values()) {
            let elements = i.shape.iter().product::<usize>() as u64;
            if compact && i.shape.len() == 2 && i.stored.is_compact(dtype) {
                total += i.len;
                largest = largest.max(elements);
            } else {
                total += elements * size;
            }
        }
        total + largest * size
    }

    /// Total bytes of tensor data in the files.
    pub fn stored_bytes(&self) -> u64 {
        self.files
            .iter()
            .flat_map(|f| f.tensors.values())
            .map(|i| i.len)
            .sum()
    }
}
