//! LoRA adapters: files parsed once ([`LoraFile`]: kohya, diffusers / PEFT and XLabs layouts,
//! see [`formats`]), then the LoRAs of a job combined with their strengths into one low-rank
//! pair per dense layer ([`Adapters`]), which the transformer merges into its weights or runs as
//! a branch beside them (`FluxTransformer::set_adapters`).
//!
//! For a layer `y = x·Wᵀ + b` and a LoRA pair down A (r, in), up B (out, r) at strength w:
//! `ΔW = w · scale · B·A`, with scale = alpha / r (kohya's `.alpha`, PEFT's when present) or 1.
//! Several LoRAs add; stacking their A's and (scaled) B's keeps the sum one low-rank pair.

mod cache;
pub mod formats;

pub use cache::LoraCache;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::model::store::WeightSet;
use formats::Rows;

/// One module of a LoRA file: its pair as stored (f32 on the CPU) and where it lands.
struct Module {
    /// The file's name for it (the key without its factor suffix), for errors.
    name: String,
    layer: String,
    rows: Rows,
    down: Tensor,
    up: Tensor,
    /// alpha / r, or 1.
    scale: f64,
}

/// A LoRA file, parsed and checked on its own (its fit to a model is checked by [`Adapters`]).
pub struct LoraFile {
    path: PathBuf,
    modules: Vec<Module>,
    unknown: Vec<String>,
}

impl LoraFile {
    /// Reads a LoRA safetensors file. Keys of no known layout are kept aside
    /// ([`LoraFile::unknown_keys`]); a file with no key this engine understands, a module
    /// missing a factor, and factors whose shapes disagree are errors naming the file and key.
    pub fn open(path: &Path) -> Result<Self> {
        let set = WeightSet::open("LoRA", &[path.to_path_buf()])?;
        let bad = |key: &str, reason: String| Error::BadTensor {
            path: path.to_path_buf(),
            tensor: key.to_string(),
            reason,
        };
        let mut unknown = Vec::new();
        // Per module: its layer and rows, and the key of each factor.
        let mut found: BTreeMap<String, (String, Rows, [Option<String>; 3])> = BTreeMap::new();
        for key in set.names() {
            let Some(k) = formats::parse(&key) else {
                unknown.push(key);
                continue;
            };
            let entry = found
                .entry(k.module)
                .or_insert_with(|| (k.layer, k.rows, [None, None, None]));
            entry.2[k.factor as usize] = Some(key);
        }
        if found.is_empty() {
            unknown.sort();
            return Err(Error::invalid(format!(
                "'{}' holds no LoRA layer this engine understands ({} keys, e.g. {}); it reads \
                 kohya, diffusers/PEFT and XLabs FLUX LoRAs",
                path.display(),
                unknown.len(),
                examples(&unknown)
            )));
        }
        let load = |key: &str| set.load(key, DType::F32, &Device::Cpu);
        let mut modules = Vec::with_capacity(found.len());
        for (name, (layer, rows, [down, up, alpha])) in found {
            let (Some(down), Some(up)) = (down, up) else {
                return Err(bad(&name, "the module lacks its down or up factor".into()));
            };
            let (d, u) = (load(&down)?, load(&up)?);
            let rank = match (d.dims(), u.dims()) {
                ([r, _], [_, r2]) if r == r2 && *r > 0 => *r,
                (a, b) => {
                    return Err(bad(
                        &name,
                        format!("down {a:?} and up {b:?} are not a low-rank pair"),
                    ))
                }
            };
            let scale = match alpha {
                Some(a) => load(&a)?.flatten_all()?.to_vec1::<f32>()?[0] as f64 / rank as f64,
                None => 1.0,
            };
            if !scale.is_finite() {
                return Err(bad(&name, format!("its alpha gives the scale {scale}")));
            }
            modules.push(Module {
                name,
                layer,
                rows,
                down: d,
                up: u,
                scale,
            });
        }
        unknown.sort();
        Ok(Self {
            path: path.to_path_buf(),
            modules,
            unknown,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many modules (layer parts) it changes.
    pub fn module_count(&self) -> usize {
        self.modules.len()
    }

    /// Keys of no known layout, sorted (ignored).
    pub fn unknown_keys(&self) -> &[String] {
        &self.unknown
    }

    /// Bytes its factors take.
    pub fn bytes(&self) -> u64 {
        let n: usize = self
            .modules
            .iter()
            .map(|m| m.down.elem_count() + m.up.elem_count())
            .sum();
        4 * n as u64
    }
}

/// A few of `keys`, for messages.
pub fn examples(keys: &[String]) -> String {
    let mut shown: Vec<&str> = keys.iter().take(3).map(String::as_str).collect();
    if keys.len() > shown.len() {
        shown.push("…");
    }
    shown.join(", ")
}

/// A LoRA a job asks for: its file and strength (the user's weight, multiplying the file's own
/// alpha / rank scale).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraChoice {
    pub path: PathBuf,
    pub strength: f32,
}

impl LoraChoice {
    /// `file name:strength`, as the PNG metadata and logs show it.
    pub fn describe(&self) -> String {
        let name = self.path.file_name().unwrap_or(self.path.as_os_str());
        format!("{}:{}", name.to_string_lossy(), self.strength)
    }
}

/// One layer's LoRA: down (R, in) and up (out, R), every scale and strength folded into `up`;
/// f32 on the CPU.
pub struct LowRank {
    pub down: Tensor,
    pub up: Tensor,
}

/// The LoRAs of a job with their strengths, combined per dense layer of one model.
pub struct Adapters {
    layers: HashMap<String, LowRank>,
    sources: Vec<LoraChoice>,
}

impl Adapters {
    /// Combines `loras` (file, strength) for a model whose dense layer `<layer>.weight` has the
    /// shape (out, in) `shape_of(layer)` gives (`None`: the model has no such layer). Every
    /// module is checked against the model before anything is built: a layer it lacks, or a
    /// shape that does not fit, is an error naming the file and key.
    pub fn new(
        loras: &[(Arc<LoraFile>, f32)],
        shape_of: impl Fn(&str) -> Option<(usize, usize)>,
    ) -> Result<Self> {
        let mut parts: HashMap<String, (Vec<Tensor>, Vec<Tensor>)> = HashMap::new();
        for (file, strength) in loras {
            if !strength.is_finite() {
                return Err(Error::invalid(format!(
                    "the strength of LoRA '{}' is {strength}, not a finite number",
                    file.path.display()
                )));
            }
            for m in &file.modules {
                let misfit = |reason: String| {
                    Error::invalid(format!(
                        "LoRA '{}': '{}' does not fit this model: {reason}",
                        file.path.display(),
                        m.name
                    ))
                };
                let (out, input) = shape_of(&m.layer)
                    .ok_or_else(|| misfit(format!("the model has no layer '{}'", m.layer)))?;
                let (rank, down_in) = m.down.dims2()?;
                let rows = m.rows.range(out, input).filter(|_| down_in == input);
                let rows = rows.filter(|r| m.up.dims()[0] == r.len()).ok_or_else(|| {
                    misfit(format!(
                        "down {:?} and up {:?} against '{}.weight' ({out}, {input})",
                        m.down.dims(),
                        m.up.dims(),
                        m.layer
                    ))
                })?;
                let up = (m.up.clone() * (m.scale * *strength as f64))?;
                let up = match m.rows {
                    Rows::SwappedHalves if out.is_multiple_of(2) => {
                        let half = out / 2;
                        Tensor::cat(&[up.narrow(0, half, half)?, up.narrow(0, 0, half)?], 0)?
                    }
                    Rows::SwappedHalves => return Err(misfit(format!("{out} rows are odd"))),
                    _ => up,
                };
                // Zero rows outside the part, so that every pair of a layer spans all its rows.
                let pad = |n: usize| Tensor::zeros((n, rank), DType::F32, &Device::Cpu);
                let up = Tensor::cat(&[pad(rows.start)?, up, pad(out - rows.end)?], 0)?;
                let entry = parts.entry(m.layer.clone()).or_default();
                entry.0.push(m.down.clone());
                entry.1.push(up);
            }
        }
        let layers = parts
            .into_iter()
            .map(|(layer, (downs, ups))| {
                let pair = LowRank {
                    down: Tensor::cat(&downs, 0)?,
                    up: Tensor::cat(&ups, 1)?,
                };
                Ok((layer, pair))
            })
            .collect::<Result<_>>()?;
        let sources = loras
            .iter()
            .map(|(file, strength)| LoraChoice {
                path: file.path.clone(),
                strength: *strength,
            })
            .collect();
        Ok(Self { layers, sources })
    }

    /// The files and strengths it combines.
    pub fn sources(&self) -> &[LoraChoice] {
        &self.sources
    }

    /// The layers it changes (BFL prefixes).
    pub fn layers(&self) -> impl Iterator<Item = &str> {
        self.layers.keys().map(String::as_str)
    }

    /// The LoRA of the dense layer `layer` (its BFL prefix), if any.
    pub fn get(&self, layer: &str) -> Option<&LowRank> {
        self.layers.get(layer)
    }

    /// How many layers it changes.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }
}
