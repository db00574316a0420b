//! LoRA adapters: files parsed once ([`LoraFile`]: kohya, diffusers / PEFT, XLabs and BFL
//! layouts, see [`formats`]), then the LoRAs of a job combined with their strengths into one
//! low-rank pair per dense layer ([`Adapters`]), which the transformer merges into its weights or
//! runs as a branch beside them (`FluxTransformer::set_adapters`).
//!
//! For a layer `y = x·Wᵀ + b` and a LoRA pair down A (r, in), up B (out, r) at strength w:
//! `ΔW = w · scale · B·A`, with scale = alpha / r (kohya's `.alpha`, PEFT's when present) or 1,
//! and `Δb = w · scale · b_B` when the up projection has a bias (BFL, PEFT `lora_bias`).
//! Several LoRAs add; stacking their A's and (scaled) B's keeps the sum one low-rank pair.
//!
//! BFL's FLUX.1 Canny / Depth LoRAs turn FLUX.1 dev into a Control model: their `img_in` pair
//! reads 128 input features where the model's `img_in` reads 64 (the base weight then reads the
//! first 64, as BFL's loader pads it with zeros), and they replace the q/k norm scales whole,
//! whatever the strength (as BFL's loader and ComfyUI do). BFL runs them at strength 0.85.

mod cache;
pub mod formats;

pub use cache::LoraCache;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::model::store::WeightSet;
use crate::model::transformer::Tool;
use formats::{Factor, Rows};

/// One module of a LoRA file: its pair as stored (f32 on the CPU) and where it lands.
struct Module {
    /// The file's name for it (the key without its factor suffix), for errors.
    name: String,
    layer: String,
    rows: Rows,
    down: Tensor,
    up: Tensor,
    /// The up projection's bias (out), if it has one.
    bias: Option<Tensor>,
    /// alpha / r, or 1.
    scale: f64,
}

/// A LoRA file, parsed and checked on its own (its fit to a model is checked by [`Adapters`]).
pub struct LoraFile {
    path: PathBuf,
    modules: Vec<Module>,
    /// Tensors the file replaces whole: the BFL name and the value (f32 on the CPU).
    replaced: Vec<(String, Tensor)>,
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
        let mut replaced = Vec::new();
        // Per module: its layer and rows, and the key of each factor.
        let mut found: BTreeMap<String, (String, Rows, HashMap<Factor, String>)> = BTreeMap::new();
        for key in set.names() {
            if let Some(name) = formats::replaced(&key) {
                let value = set.load(&key, DType::F32, &Device::Cpu)?;
                replaced.push((name.to_string(), value));
                continue;
            }
            let Some(k) = formats::parse(&key) else {
                unknown.push(key);
                continue;
            };
            let entry = found
                .entry(k.module)
                .or_insert_with(|| (k.layer, k.rows, HashMap::new()));
            entry.2.insert(k.factor, key);
        }
        if found.is_empty() {
            unknown.sort();
            return Err(Error::invalid(format!(
                "'{}' holds no LoRA layer this engine understands ({} keys, e.g. {}); it reads \
                 kohya (LoRA, LoHa, LoKr), diffusers/PEFT, XLabs and BFL FLUX LoRAs",
                path.display(),
                unknown.len(),
                examples(&unknown)
            )));
        }
        let mut modules = Vec::with_capacity(found.len());
        for (name, (layer, rows, keys)) in found {
            let factor = |f: Factor| -> Result<Option<Tensor>> {
                keys.get(&f)
                    .map(|k| set.load(k, DType::F32, &Device::Cpu))
                    .transpose()
            };
            let (down, up, scale) = pair(&factor)
                .and_then(|p| {
                    p.ok_or_else(|| {
                        Error::invalid(
                            "the module lacks the factors of a LoRA (lora_down and lora_up), \
                             a LoHa or a LoKr",
                        )
                    })
                })
                .map_err(|e| bad(&name, e.to_string()))?;
            if !scale.is_finite() {
                return Err(bad(&name, format!("its alpha gives the scale {scale}")));
            }
            let bias = factor(Factor::UpBias)?;
            if let Some(b) = &bias {
                if b.dims() != [up.dim(0)?] {
                    let reason = format!("bias {:?} against up {:?}", b.dims(), up.dims());
                    return Err(bad(&name, reason));
                }
            }
            modules.push(Module {
                name,
                layer,
                rows,
                down,
                up,
                bias,
                scale,
            });
        }
        unknown.sort();
        Ok(Self {
            path: path.to_path_buf(),
            modules,
            replaced,
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

    /// Bytes its tensors take.
    pub fn bytes(&self) -> u64 {
        let factors = self
            .modules
            .iter()
            .flat_map(|m| [&m.down, &m.up].into_iter().chain(&m.bias));
        let whole = self.replaced.iter().map(|(_, t)| t);
        let n: usize = factors.chain(whole).map(Tensor::elem_count).sum();
        4 * n as u64
    }
}

/// A module's delta as one low-rank pair (down (R, in), up (out, R)) and its scale, from the
/// factors its keys hold (`factor(f)`: the tensor, if the file has it): a LoRA pair, a LoHa
/// (whose Hadamard product of two rank-r products is exactly a rank-r² pair) or a LoKr (by the
/// mixed product, `(A₁B₁)⊗(A₂B₂) = (A₁⊗A₂)(B₁⊗B₂)`, a whole factor being itself times the
/// identity). `None` when the module lacks the factors of every kind.
fn pair(
    factor: &dyn Fn(Factor) -> Result<Option<Tensor>>,
) -> Result<Option<(Tensor, Tensor, f64)>> {
    use Factor as F;
    let alpha = match factor(F::Alpha)? {
        Some(a) => Some(
            a.flatten_all()?
                .to_vec1::<f32>()?
                .first()
                .copied()
                .unwrap_or(f32::NAN) as f64,
        ),
        None => None,
    };
    let scaled = |rank: usize| alpha.map_or(1.0, |a| a / rank as f64);
    if let (Some(down), Some(up)) = (factor(F::Down)?, factor(F::Up)?) {
        let rank = low_rank(&up, &down)?;
        return Ok(Some((down, up, scaled(rank))));
    }
    let hada = [F::HadaW1A, F::HadaW1B, F::HadaW2A, F::HadaW2B]
        .into_iter()
        .map(factor)
        .collect::<Result<Vec<_>>>()?;
    if let [Some(a1), Some(b1), Some(a2), Some(b2)] = hada.as_slice() {
        let (a1, b1, a2, b2) = (a1.clone(), b1.clone(), a2.clone(), b2.clone());
        let (r1, r2) = (low_rank(&a1, &b1)?, low_rank(&a2, &b2)?);
        let (out, input) = (a1.dim(0)?, b1.dim(1)?);
        let up = a1
            .reshape((out, r1, 1))?
            .broadcast_mul(&a2.reshape((out, 1, r2))?)?;
        let down = b1
            .reshape((r1, 1, input))?
            .broadcast_mul(&b2.reshape((1, r2, input))?)?;
        let pair = (down.reshape((r1 * r2, input))?, up.reshape((out, r1 * r2))?);
        return Ok(Some((pair.0, pair.1, scaled(r1))));
    }
    // A LoKr factor as (A, B): its two halves, or the whole matrix and the identity.
    let lokr = |whole: F, a: F, b: F| -> Result<Option<(Tensor, Tensor, bool)>> {
        Ok(match (factor(whole)?, factor(a)?, factor(b)?) {
            (Some(w), _, _) => {
                let eye = Tensor::eye(w.dim(1)?, DType::F32, &Device::Cpu)?;
                Some((w, eye, false))
            }
            (None, Some(a), Some(b)) => {
                low_rank(&a, &b)?;
                Some((a, b, true))
            }
            _ => None,
        })
    };
    let w1 = lokr(F::LokrW1, F::LokrW1A, F::LokrW1B)?;
    let w2 = lokr(F::LokrW2, F::LokrW2A, F::LokrW2B)?;
    let (Some((a1, b1, split1)), Some((a2, b2, split2))) = (w1, w2) else {
        return Ok(None);
    };
    // LyCORIS' scale: alpha / the rank of the decomposed factor (w2's first), or 1 when both
    // are whole.
    let scale = match (split2, split1) {
        (true, _) => scaled(b2.dim(0)?),
        (false, true) => scaled(b1.dim(0)?),
        (false, false) => 1.0,
    };
    Ok(Some((kron(&b1, &b2)?, kron(&a1, &a2)?, scale)))
}

/// The rank of the pair `up` (out, r) · `down` (r, in), checked.
fn low_rank(up: &Tensor, down: &Tensor) -> Result<usize> {
    match (up.dims(), down.dims()) {
        ([_, r], [r2, _]) if r == r2 && *r > 0 => Ok(*r),
        (u, d) => Err(Error::invalid(format!(
            "factors {u:?} and {d:?} are not a low-rank pair"
        ))),
    }
}

/// The Kronecker product of two matrices: `x ⊗ y`, (p·r, q·s).
fn kron(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let ((p, q), (r, s)) = (x.dims2()?, y.dims2()?);
    let product = x
        .reshape((p, 1, q, 1))?
        .broadcast_mul(&y.reshape((1, r, 1, s))?)?;
    Ok(product.reshape((p * r, q * s))?)
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

/// One layer's LoRA: down (R, in) and up (out, R), every scale and strength folded into `up`,
/// and the bias it adds (out), if any; f32 on the CPU. `in` may exceed the layer's own input
/// width ([`Adapters::new`]: a control LoRA's `img_in`).
pub struct LowRank {
    pub down: Tensor,
    pub up: Tensor,
    pub bias: Option<Tensor>,
}

/// The LoRAs of a job with their strengths, combined per dense layer of one model, and the
/// tensors they replace whole.
pub struct Adapters {
    layers: HashMap<String, LowRank>,
    replaced: HashMap<String, Tensor>,
    sources: Vec<LoraChoice>,
}

/// The layer a LoRA may widen: `img_in`, whose extra inputs are then a FLUX.1 tool's conditioning
/// (its width, a multiple of the model's, says which tool: [`Tool::of_widths`]).
pub const WIDENED_LAYER: &str = "img_in";

impl Adapters {
    /// Combines `loras` (file, strength) for a model whose tensor `name` has the shape
    /// `shape_of(name)` (`None`: the model has no such tensor). Every module is checked against
    /// the model before anything is built: a layer it lacks, a shape that does not fit (only
    /// [`WIDENED_LAYER`] may read more inputs than the model's: a tool's), or two files
    /// replacing the same tensor is an error naming the file and key.
    pub fn new(
        loras: &[(Arc<LoraFile>, f32)],
        shape_of: impl Fn(&str) -> Option<Vec<usize>>,
    ) -> Result<Self> {
        type Parts = (Vec<Tensor>, Vec<Tensor>, Option<Tensor>);
        let mut parts: HashMap<String, Parts> = HashMap::new();
        let mut replaced: HashMap<String, (Tensor, &Path)> = HashMap::new();
        for (file, strength) in loras {
            if !strength.is_finite() {
                return Err(Error::invalid(format!(
                    "the strength of LoRA '{}' is {strength}, not a finite number",
                    file.path.display()
                )));
            }
            let misfit = |name: &str, reason: String| {
                Error::invalid(format!(
                    "LoRA '{}': '{name}' does not fit this model: {reason}",
                    file.path.display(),
                ))
            };
            for (name, value) in &file.replaced {
                match shape_of(name) {
                    Some(shape) if shape == value.dims() => {}
                    shape => {
                        let has = shape.map_or("no such tensor".into(), |s| format!("{s:?}"));
                        return Err(misfit(name, format!("{:?} against {has}", value.dims())));
                    }
                }
                if let Some((_, other)) = replaced.insert(name.clone(), (value.clone(), &file.path))
                {
                    return Err(misfit(
                        name,
                        format!("'{}' replaces it too", other.display()),
                    ));
                }
            }
            for m in &file.modules {
                let misfit = |reason: String| misfit(&m.name, reason);
                let (out, input) = match shape_of(&format!("{}.weight", m.layer)).as_deref() {
                    Some(&[out, input]) => (out, input),
                    _ => return Err(misfit(format!("the model has no layer '{}'", m.layer))),
                };
                let down_in = m.down.dims2()?.1;
                let widens = m.layer == WIDENED_LAYER && Tool::of_widths(down_in, input).is_some();
                let reads = down_in == input || widens;
                let rows = m.rows.range(out, input).filter(|_| reads);
                let rows = rows.filter(|r| m.up.dims()[0] == r.len()).ok_or_else(|| {
                    misfit(format!(
                        "down {:?} and up {:?} against '{}.weight' ({out}, {input})",
                        m.down.dims(),
                        m.up.dims(),
                        m.layer
                    ))
                })?;
                let scale = m.scale * *strength as f64;
                // Rows outside the part are zero, so that every pair of a layer spans all its rows.
                let place = |t: Tensor| -> Result<Tensor> {
                    let t = match m.rows {
                        Rows::SwappedHalves if out.is_multiple_of(2) => {
                            let half = out / 2;
                            Tensor::cat(&[t.narrow(0, half, half)?, t.narrow(0, 0, half)?], 0)?
                        }
                        Rows::SwappedHalves => return Err(misfit(format!("{out} rows are odd"))),
                        _ => t,
                    };
                    let pad = |n: usize| {
                        let mut shape = t.dims().to_vec();
                        shape[0] = n;
                        Tensor::zeros(shape, DType::F32, &Device::Cpu)
                    };
                    Ok(Tensor::cat(
                        &[pad(rows.start)?, t.clone(), pad(out - rows.end)?],
                        0,
                    )?)
                };
                let up = place((m.up.clone() * scale)?)?;
                let bias = match &m.bias {
                    Some(b) => Some(place((b.clone() * scale)?)?),
                    None => None,
                };
                let entry = parts.entry(m.layer.clone()).or_default();
                entry.0.push(m.down.clone());
                entry.1.push(up);
                entry.2 = match (entry.2.take(), bias) {
                    (Some(sum), Some(b)) => Some((sum + b)?),
                    (sum, b) => sum.or(b),
                };
            }
        }
        let layers = parts
            .into_iter()
            .map(|(layer, (downs, ups, bias))| {
                // Pairs reading fewer inputs than the widest one of the layer read zeros there.
                let width = downs.iter().map(|d| d.dims()[1]).max().unwrap_or(0);
                let downs = downs
                    .into_iter()
                    .map(|d| d.pad_with_zeros(1, 0, width - d.dims()[1]))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let pair = LowRank {
                    down: Tensor::cat(&downs, 0)?,
                    up: Tensor::cat(&ups, 1)?,
                    bias,
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
        let replaced = replaced.into_iter().map(|(k, (t, _))| (k, t)).collect();
        Ok(Self {
            layers,
            replaced,
            sources,
        })
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

    /// The value replacing the tensor `name` (a BFL name) whole, if any (f32 on the CPU).
    pub fn replaced(&self, name: &str) -> Option<&Tensor> {
        self.replaced.get(name)
    }

    /// The input width of [`WIDENED_LAYER`]'s LoRA, if it has one: more than the model's when a
    /// control LoRA widens the layer.
    pub fn widened_inputs(&self) -> Option<usize> {
        self.get(WIDENED_LAYER).map(|l| l.down.dims()[1])
    }

    /// How many layers it changes.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }
}
