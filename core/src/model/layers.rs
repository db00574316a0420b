//! Building blocks of the FLUX transformer: dense layers, timestep embedding, RoPE, attention,
//! norms.
//!
//! f32 on the CPU runs the fused kernels of [`super::cpu`]; other devices and dtypes run the
//! generic candle ops below. RoPE tables and their application are computed in f32 whatever the
//! model dtype, as the reference does, so bf16 models keep accurate positions.

use std::ops::Range;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};
use parking_lot::Mutex;

use super::compact::CompactWeight;
use super::cpu::{self, QkvSegment};
use super::weights::ModelWeights;
use crate::error::Result;
use crate::lora::{Adapters, LowRank};

/// Where a [`Loader`] reads tensors: a model's files ([`ModelWeights`]) or a block held in host
/// memory (`model::stream::HostBlock`).
pub trait WeightSource: Sync {
    /// The tensor `name` of exactly `shape`, as `dtype` on `device`.
    fn tensor(&self, name: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor>;

    /// The dense-layer weight `name` (out, in) in its stored form when it is stored compactly
    /// for `compute` (GGUF, fp8, bf16/f16 under f32 compute), on `device`; `None` otherwise.
    fn compact(
        &self,
        name: &str,
        shape: &[usize],
        compute: DType,
        device: &Device,
    ) -> Result<Option<Arc<CompactWeight>>>;
}

impl WeightSource for ModelWeights {
    fn tensor(&self, name: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        self.load(name, Some(shape), dtype, device)
    }

    fn compact(
        &self,
        name: &str,
        shape: &[usize],
        compute: DType,
        device: &Device,
    ) -> Result<Option<Arc<CompactWeight>>> {
        Ok(self
            .load_compact(name, shape, compute, device)?
            .map(Arc::new))
    }
}

/// Loads tensors of one model with shape checks, converting to the compute dtype; dense-layer
/// weights stored compactly stay in their stored form, except on the CPU when the loader
/// expands them ([`Loader::expanded`]).
pub struct Loader<'a> {
    source: &'a dyn WeightSource,
    dtype: DType,
    device: &'a Device,
    /// The buffer every compact layer of the model expands its weight into on the CPU.
    scratch: Scratch,
    /// Whether compact weights on the CPU become f32 dense layers at load.
    expand: bool,
    /// LoRAs the dense layers take as run-time branches as they load (streamed blocks).
    adapters: Option<&'a Adapters>,
}

impl<'a> Loader<'a> {
    /// A loader of `source` at `dtype` on `device`.
    pub fn new(source: &'a dyn WeightSource, dtype: DType, device: &'a Device) -> Self {
        Self {
            source,
            dtype,
            device,
            scratch: Scratch::default(),
            expand: false,
            adapters: None,
        }
    }

    /// The same loader, whose dense layers take `adapters` as run-time branches.
    pub fn with_adapters(self, adapters: Option<&'a Adapters>) -> Self {
        Self { adapters, ..self }
    }

    /// A loader whose compact weights on the CPU are expanded to dense layers of the compute
    /// dtype as they load (the transformer's working form: the same kernels whether its blocks
    /// are resident or streamed).
    pub fn expanded(source: &'a dyn WeightSource, dtype: DType, device: &'a Device) -> Self {
        Self {
            expand: true,
            ..Self::new(source, dtype, device)
        }
    }

    /// A tensor of exactly `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.source.tensor(name, shape, self.dtype, self.device)
    }

    /// `prefix.weight` (out, in) and, when `bias`, `prefix.bias` (out).
    pub fn linear(&self, prefix: &str, input: usize, output: usize, bias: bool) -> Result<Dense> {
        let name = format!("{prefix}.weight");
        let b = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), &[output])?)
        } else {
            None
        };
        let shape = [output, input];
        let mut dense = match self
            .source
            .compact(&name, &shape, self.dtype, self.device)?
        {
            Some(w) if self.expand && w.device().is_cpu() => {
                Dense::new(w.dequantize(self.dtype)?, b)?
            }
            Some(w) => Dense::compact(w, b, &self.scratch)?,
            None => Dense::new(self.tensor(&name, &shape)?, b)?,
        };
        if let Some(lora) = self.adapters.and_then(|a| a.get(prefix)) {
            dense.set_adapter(Some(lora), false, (self.dtype, self.device))?;
        }
        Ok(dense)
    }
}

/// The buffer compact layers expand their weights into on the CPU, one layer at a time (sized
/// for the largest; shared by the layers of one model, freed with them).
#[derive(Clone, Default)]
pub struct Scratch(Arc<Mutex<Option<cpu::expand::Expanded>>>);

/// Whether `t` takes the fused CPU kernels (f32 on the CPU; tests can switch them off).
fn fused(t: &Tensor) -> bool {
    #[cfg(test)]
    if tests::GENERIC.with(|g| g.get()) {
        return false;
    }
    cpu::applies(t)
}

/// One input of [`Dense::forward_parts`]: a tensor, or the GELU (tanh approximation) of one,
/// which the packed CPU kernel applies as it reads the values (never storing the result).
#[derive(Clone, Copy)]
pub enum Input<'a> {
    /// The tensor's values.
    Value(&'a Tensor),
    /// The GELU of the tensor's values.
    Gelu(&'a Tensor),
}

impl Input<'_> {
    /// The tensor this input reads.
    pub fn tensor(&self) -> &Tensor {
        match self {
            Input::Value(t) | Input::Gelu(t) => t,
        }
    }

    /// The input's values, computed.
    pub(crate) fn value(&self) -> Result<Tensor> {
        match self {
            Input::Value(t) => Ok((*t).clone()),
            Input::Gelu(t) => gelu(t),
        }
    }
}

/// A dense layer `x·Wᵀ + b`. For f32 on the CPU the weight is kept in the layout the CPU
/// kernels read: packed panels ([`cpu::packed`]) on AVX-512 CPUs, else its (out, in) rows, which
/// gemm reads transposed through strides ([`cpu::linear_rows`]: as fast as a transposed copy
/// at the FLUX shapes, and a streamed block's dequantized weight needs no transpose).
pub struct Dense {
    weight: Weight,
    bias: Option<Tensor>,
    adapter: Option<Adapter>,
    /// The bias before a LoRA's bias was added into it, put back exactly when the LoRA goes.
    original_bias: Option<Option<Tensor>>,
}

/// A LoRA on a [`Dense`] layer.
enum Adapter {
    /// A low-rank branch added to the outputs, `x·downᵀ·upᵀ`: downᵀ (in, R) and upᵀ (R, out),
    /// contiguous, in the activations' dtype.
    Branch(Tensor, Tensor),
    /// The weight before the LoRA was merged into it, put back exactly when the LoRA goes.
    Merged(Weight),
}

/// The weight of a [`Dense`] layer, in the layout its kernel reads.
enum Weight {
    /// (out, in), for the generic candle ops (other devices and dtypes).
    Plain(Tensor),
    /// (out, in) contiguous, for [`cpu::linear_rows`].
    Rows(Tensor),
    /// Panels for [`cpu::packed::linear`].
    Packed(cpu::packed::PackedWeight),
    /// The stored form, expanded when the layer runs: into the scratch buffer in the CPU
    /// kernel's layout (`Some`: f32 on the CPU), else whole into the activations' dtype.
    Compact(Arc<CompactWeight>, Option<Scratch>),
}

impl Dense {
    /// A layer from its weight (out, in) and optional bias (out).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let weight = match cpu::applies(&weight) {
            true if cpu::packed::available() => {
                Weight::Packed(cpu::packed::PackedWeight::new(&weight)?)
            }
            true => Weight::Rows(weight.contiguous()?),
            false => Weight::Plain(weight),
        };
        Ok(Self {
            weight,
            bias,
            adapter: None,
            original_bias: None,
        })
    }

    /// A layer whose weight stays in its stored form; on the CPU each f32 call expands the
    /// outputs it computes into `scratch`, in the layout of the CPU's kernel (packed panels on
    /// AVX-512, plain rows that gemm reads through strides elsewhere); other devices expand the
    /// whole weight into the activations' dtype.
    pub fn compact(
        weight: Arc<CompactWeight>,
        bias: Option<Tensor>,
        scratch: &Scratch,
    ) -> Result<Self> {
        let cpu = bias.as_ref().is_none_or(cpu::applies) && weight.device().is_cpu();
        let scratch = cpu.then(|| scratch.clone());
        Ok(Self {
            weight: Weight::Compact(weight, scratch),
            bias,
            adapter: None,
            original_bias: None,
        })
    }

    /// Whether a LoRA can be merged into the weight: it is held whole in working form (not
    /// packed panels or a compact stored form, which take the run-time branch).
    pub fn can_merge(&self) -> bool {
        match &self.adapter {
            Some(Adapter::Merged(_)) => true,
            _ => matches!(self.weight, Weight::Plain(_) | Weight::Rows(_)),
        }
    }

    /// Sets the layer's LoRA (`None`: none), first putting back the weight a previous merge
    /// changed. `merge` adds `up·down` into the weight (computed in f32); otherwise, or when the
    /// weight cannot take it ([`Dense::can_merge`]) or the pair reads more inputs than the
    /// weight (whose inputs are then the first ones), the pair runs as a branch beside the
    /// layer, in `dtype` on `device` (the activations'). The LoRA's bias is added into the bias.
    pub fn set_adapter(
        &mut self,
        lora: Option<&LowRank>,
        merge: bool,
        (dtype, device): (DType, &Device),
    ) -> Result<()> {
        if let Some(Adapter::Merged(original)) = self.adapter.take() {
            self.weight = original;
        }
        if let Some(original) = self.original_bias.take() {
            self.bias = original;
        }
        let Some(lora) = lora else { return Ok(()) };
        let on = |t: &Tensor| t.to_dtype(dtype)?.to_device(device);
        if let Some(delta) = &lora.bias {
            let biased = match &self.bias {
                Some(b) => {
                    (b.to_dtype(DType::F32)? + delta.to_device(b.device())?)?.to_dtype(b.dtype())?
                }
                None => on(delta)?,
            };
            self.original_bias = Some(self.bias.replace(biased));
        }
        let merge = merge && lora.down.dim(1)? == self.inputs()?;
        let merged = match (&self.weight, merge) {
            (Weight::Plain(w) | Weight::Rows(w), true) => {
                let delta = lora.up.matmul(&lora.down)?.to_device(w.device())?;
                Some((w.to_dtype(DType::F32)? + delta)?.to_dtype(w.dtype())?)
            }
            _ => None,
        };
        self.adapter = Some(match merged {
            Some(w) => {
                let w = match &self.weight {
                    Weight::Rows(_) => Weight::Rows(w.contiguous()?),
                    _ => Weight::Plain(w),
                };
                Adapter::Merged(std::mem::replace(&mut self.weight, w))
            }
            None => Adapter::Branch(
                on(&lora.down.t()?.contiguous()?)?,
                on(&lora.up.t()?.contiguous()?)?,
            ),
        });
        Ok(())
    }

    /// The layer applied to `x` (…, in).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_parts(&[Input::Value(x)])
    }

    /// The layer applied to the concatenation of `parts` along the last dim; on the CPU the
    /// concatenation is never built.
    pub fn forward_parts(&self, parts: &[Input]) -> Result<Tensor> {
        self.apply(parts, 0..self.outputs()?)
    }

    /// Only the outputs `cols` of the layer applied to `x` (…, in), without computing the others.
    pub fn forward_columns(&self, x: &Tensor, cols: Range<usize>) -> Result<Tensor> {
        self.apply(&[Input::Value(x)], cols)
    }

    /// Number of outputs.
    pub fn outputs(&self) -> Result<usize> {
        Ok(match &self.weight {
            Weight::Plain(w) => w.dim(0)?,
            Weight::Rows(w) => w.dim(0)?,
            Weight::Packed(w) => w.outputs(),
            Weight::Compact(w, _) => w.shape().0,
        })
    }

    /// Number of inputs the weight reads.
    pub fn inputs(&self) -> Result<usize> {
        Ok(match &self.weight {
            Weight::Plain(w) => w.dim(1)?,
            Weight::Rows(w) => w.dim(1)?,
            Weight::Packed(w) => w.inputs(),
            Weight::Compact(w, _) => w.shape().1,
        })
    }

    /// Outputs `cols` of the layer applied to the concatenation of `parts`, with its LoRA branch.
    fn apply(&self, parts: &[Input], cols: Range<usize>) -> Result<Tensor> {
        let y = match (parts, &self.adapter) {
            // A LoRA widened the layer (a control LoRA's img_in): its branch reads every input,
            // the weight the first ones.
            ([Input::Value(x)], Some(Adapter::Branch(down, _)))
                if x.dim(D::Minus1)? == down.dim(0)? && down.dim(0)? > self.inputs()? =>
            {
                let x = x.narrow(D::Minus1, 0, self.inputs()?)?;
                self.apply_weight(&[Input::Value(&x)], cols.clone())?
            }
            _ => self.apply_weight(parts, cols.clone())?,
        };
        let Some(Adapter::Branch(down, up)) = &self.adapter else {
            return Ok(y);
        };
        // x·downᵀ summed over the parts (their concatenation is never built), then ·upᵀ.
        let mut low: Option<Tensor> = None;
        let mut at = 0;
        for part in parts {
            let value = part.value()?;
            let width = value.dim(D::Minus1)?;
            let projected = value.broadcast_matmul(&down.narrow(0, at, width)?)?;
            low = Some(match low {
                None => projected,
                Some(sum) => (sum + projected)?,
            });
            at += width;
        }
        let Some(low) = low else { return Ok(y) };
        let branch = low.broadcast_matmul(&up.narrow(1, cols.start, cols.len())?)?;
        Ok((y + branch)?)
    }

    /// Outputs `cols` of the layer's weight (and bias) applied to the concatenation of `parts`.
    fn apply_weight(&self, parts: &[Input], cols: Range<usize>) -> Result<Tensor> {
        let (start, len) = (cols.start, cols.len());
        let bias = match &self.bias {
            Some(b) => Some(b.narrow(0, start, len)?),
            None => None,
        };
        let expanded;
        let w = match &self.weight {
            Weight::Packed(w) => return Ok(cpu::packed::linear(parts, w, cols, bias.as_ref())?),
            Weight::Compact(w, Some(scratch)) if cpu::applies(parts[0].tensor()) => {
                let mut expanded = scratch.0.lock();
                let expanded = match &mut *expanded {
                    Some(e) => e,
                    empty => empty.insert(cpu::expand::Expanded::new()?),
                };
                let rows = w.rows()?;
                expanded.fill(w.shape(), cols.clone(), &|row, ks, dst| {
                    rows.read(row, ks, dst)
                });
                return Ok(expanded.linear(parts, cols, bias.as_ref())?);
            }
            Weight::Compact(w, _) => {
                expanded = w.dequantize(parts[0].tensor().dtype())?;
                &expanded
            }
            Weight::Plain(w) | Weight::Rows(w) => w,
        };
        // The other kernels read stored values: activations are applied first.
        let values = parts.iter().map(Input::value).collect::<Result<Vec<_>>>()?;
        let values: Vec<&Tensor> = values.iter().collect();
        if let Weight::Rows(_) = &self.weight {
            let w = w.narrow(0, start, len)?;
            return Ok(cpu::linear_rows(&values, &w, bias.as_ref())?);
        }
        let w = w.narrow(0, start, len)?;
        let y = Tensor::cat(&values, D::Minus1)?.broadcast_matmul(&w.t()?)?;
        Ok(match bias {
            Some(b) => y.broadcast_add(&b)?,
            None => y,
        })
    }
}

/// Sinusoidal embedding of `t` (B,) scaled by 1000, `[cos | sin]`, 256 wide, computed in f32.
pub fn timestep_embedding(t: &Tensor, dim: usize, dtype: DType) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10_000f64.ln()) * i as f64 / half as f64).exp() as f32)
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = (t.to_dtype(DType::F32)? * 1000.0)?
        .unsqueeze(1)?
        .broadcast_mul(&freqs)?;
    Ok(Tensor::cat(&[args.cos()?, args.sin()?], D::Minus1)?.to_dtype(dtype)?)
}

/// RoPE table (B, 1, N, D/2, 2, 2) of rotation matrices `[[cos, −sin], [sin, cos]]` for ids (B, N, axes).
pub fn rope_table(ids: &Tensor, axes_dim: &[usize], theta: f64) -> Result<Tensor> {
    let ids = ids.to_dtype(DType::F32)?;
    let (b, n, _) = ids.dims3()?;
    let mut angles = Vec::with_capacity(axes_dim.len());
    for (a, &dim) in axes_dim.iter().enumerate() {
        let omega: Vec<f32> = (0..dim / 2)
            .map(|j| (1.0 / theta.powf(2.0 * j as f64 / dim as f64)) as f32)
            .collect();
        let omega = Tensor::from_vec(omega, (1, 1, dim / 2), ids.device())?;
        angles.push(ids.narrow(2, a, 1)?.broadcast_mul(&omega)?);
    }
    let angles = Tensor::cat(&angles, 2)?;
    let (cos, sin) = (angles.cos()?, angles.sin()?);
    let table = Tensor::stack(&[&cos, &sin.neg()?, &sin, &cos], 3)?;
    Ok(table.reshape((b, 1, n, angles.dim(2)?, 2, 2))?)
}

/// Rotates adjacent pairs `(x[2k], x[2k+1])` of `x` (B, H, N, D) by the table, in f32.
pub fn apply_rope(x: &Tensor, pe: &Tensor) -> Result<Tensor> {
    rope_scaled(x, pe, 1.0)
}

/// [`apply_rope`] followed by a multiplication by `mul`, both in f32.
fn rope_scaled(x: &Tensor, pe: &Tensor, mul: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let (b, h, n, d) = x.dims4()?;
    let x = x.to_dtype(DType::F32)?.reshape((b, h, n, d / 2, 1, 2))?;
    // out[r] = pe[r, 0]·x0 + pe[r, 1]·x1, for the two rows r of each rotation matrix.
    let out = (pe.broadcast_mul(&x)?.sum(D::Minus1)? * mul)?;
    Ok(out.reshape((b, h, n, d))?.to_dtype(dtype)?)
}

/// q, k, v (B, H, N, D) of the joint sequence of `segments` (consecutive token runs, each a qkv
/// projection (B, n, 3·H·D) with its q/k norm): q and k RMS-normalised and rotated by `pe`, q
/// multiplied by the softmax scale 1/√D.
pub fn qkv_heads(
    segments: &[(&Tensor, &QkNorm)],
    pe: &Tensor,
    heads: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    if segments.iter().all(|(qkv, _)| fused(qkv)) {
        let segments: Vec<QkvSegment> = segments
            .iter()
            .map(|&(qkv, norm)| QkvSegment {
                qkv,
                q_scale: &norm.query,
                k_scale: &norm.key,
            })
            .collect();
        return Ok(cpu::prepare_qkv(&segments, pe, heads)?);
    }
    let (mut qs, mut ks, mut vs) = (vec![], vec![], vec![]);
    for (qkv, norm) in segments {
        let (q, k, v) = split_qkv(qkv, heads)?;
        let (q, k) = norm.forward(&q, &k)?;
        qs.push(q);
        ks.push(k);
        vs.push(v);
    }
    let (q, k) = (Tensor::cat(&qs, 2)?, Tensor::cat(&ks, 2)?);
    let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
    Ok((
        rope_scaled(&q, pe, scale)?,
        apply_rope(&k, pe)?,
        Tensor::cat(&vs, 2)?,
    ))
}

/// Softmax attention over (B, H, N, D) with the softmax scale already in q; returns (B, N, H·D).
/// On the CPU (f32) over chunks of query rows, never holding the whole score matrix; on CUDA
/// (bf16, head dim 128, with the `flash-attn` feature) through the fused FlashAttention kernel.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    if fused(q) {
        return Ok(cpu::attention(q, k, v)?);
    }
    #[cfg(feature = "flash-attn")]
    if super::flash::applies(q, k, v) {
        return super::flash::attention(q, k, v);
    }
    let scores = q.contiguous()?.matmul(&k.t()?.contiguous()?)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    let out = probs.matmul(&v.contiguous()?)?;
    Ok(out.transpose(1, 2)?.flatten_from(2)?)
}

/// GELU with the tanh approximation (the FLUX MLPs' activation); vectorised on the CPU (f32).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    Ok(match fused(x) {
        true => cpu::gelu(x)?,
        false => x.gelu()?,
    })
}

/// LayerNorm over the last dim without affine parameters (eps 1e-6).
pub fn layer_norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(centered.broadcast_div(&(var + 1e-6)?.sqrt()?)?)
}

/// `(1 + scale) · LN(x) + shift` for x (B, N, C) and shift, scale (B, 1, C); one fused pass per
/// row on the CPU (f32).
pub fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    if fused(x) {
        return Ok(cpu::modulate(x, shift, scale)?);
    }
    Ok(layer_norm(x)?
        .broadcast_mul(&(scale + 1.0)?)?
        .broadcast_add(shift)?)
}

/// The gated residual `x + y·gate` for x, y (B, N, C) and gate (B, 1, C); one pass on the CPU
/// (f32).
pub fn gated_residual(x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Tensor> {
    if fused(x) {
        return Ok(cpu::gated_residual(x, y, gate)?);
    }
    Ok((x + y.broadcast_mul(gate)?)?)
}

/// `out_layer(silu(in_layer(x)))`.
pub struct MlpEmbedder {
    in_layer: Dense,
    out_layer: Dense,
}

impl MlpEmbedder {
    pub fn load(l: &Loader, prefix: &str, input: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            in_layer: l.linear(&format!("{prefix}.in_layer"), input, hidden, true)?,
            out_layer: l.linear(&format!("{prefix}.out_layer"), hidden, hidden, true)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.out_layer
            .forward(&candle_nn::ops::silu(&self.in_layer.forward(x)?)?)
    }

    /// Its dense layers, named as after the embedder's prefix.
    pub fn dense_mut(&mut self) -> [(&'static str, &mut Dense); 2] {
        [
            ("in_layer", &mut self.in_layer),
            ("out_layer", &mut self.out_layer),
        ]
    }
}

/// RMSNorm of q and k over the head dim (eps 1e-6) with learned scales, which a LoRA may
/// replace whole ([`QkNorm::set_replaced`]).
pub struct QkNorm {
    query: Tensor,
    key: Tensor,
    /// The model's own scales while a LoRA's replace them, put back when it goes.
    originals: Option<(Tensor, Tensor)>,
}

impl QkNorm {
    /// `{prefix}.query_norm.scale` and `.key_norm.scale`, replaced as the loader's LoRAs say.
    pub fn load(l: &Loader, prefix: &str, head_dim: usize) -> Result<Self> {
        let mut norm = Self {
            query: l.tensor(&format!("{prefix}.query_norm.scale"), &[head_dim])?,
            key: l.tensor(&format!("{prefix}.key_norm.scale"), &[head_dim])?,
            originals: None,
        };
        norm.set_replaced(prefix, l.adapters)?;
        Ok(norm)
    }

    /// Puts back the model's scales, then takes those `adapters` replace (`None`: none).
    pub fn set_replaced(&mut self, prefix: &str, adapters: Option<&Adapters>) -> Result<()> {
        if let Some((query, key)) = self.originals.take() {
            (self.query, self.key) = (query, key);
        }
        let replacing =
            |part: &str| adapters.and_then(|a| a.replaced(&format!("{prefix}.{part}_norm.scale")));
        let (query, key) = (replacing("query"), replacing("key"));
        if query.is_none() && key.is_none() {
            return Ok(());
        }
        let like = |t: &Tensor, own: &Tensor| t.to_dtype(own.dtype())?.to_device(own.device());
        let originals = (self.query.clone(), self.key.clone());
        if let Some(q) = query {
            self.query = like(q, &self.query)?;
        }
        if let Some(k) = key {
            self.key = like(k, &self.key)?;
        }
        self.originals = Some(originals);
        Ok(())
    }

    pub fn forward(&self, q: &Tensor, k: &Tensor) -> Result<(Tensor, Tensor)> {
        let rms = |x: &Tensor, s: &Tensor| candle_nn::ops::rms_norm(&x.contiguous()?, s, 1e-6);
        Ok((rms(q, &self.query)?, rms(k, &self.key)?))
    }
}

/// `Lin(silu(vec))` split into `n` chunks (shift, scale, gate, …), each (B, 1, H).
pub struct Modulation {
    lin: Dense,
    n: usize,
}

impl Modulation {
    pub fn load(l: &Loader, prefix: &str, hidden: usize, n: usize) -> Result<Self> {
        Ok(Self {
            lin: l.linear(prefix, hidden, n * hidden, true)?,
            n,
        })
    }

    /// Its dense layer.
    pub fn dense_mut(&mut self) -> &mut Dense {
        &mut self.lin
    }

    pub fn forward(&self, vec: &Tensor) -> Result<Vec<Tensor>> {
        let out = self
            .lin
            .forward(&candle_nn::ops::silu(vec)?)?
            .unsqueeze(1)?;
        Ok(out.chunk(self.n, D::Minus1)?)
    }
}

/// Splits a (B, N, 3·H·D) qkv projection into q, k, v of shape (B, H, N, D).
pub fn split_qkv(qkv: &Tensor, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, n, f) = qkv.dims3()?;
    let qkv = qkv
        .reshape((b, n, 3, heads, f / 3 / heads))?
        .permute((2, 0, 3, 1, 4))?;
    Ok((qkv.get(0)?, qkv.get(1)?, qkv.get(2)?))
}

#[cfg(test)]
mod tests {
    //! The fused CPU kernels against the generic candle ops, both in f32.
    use super::*;
    use crate::pipeline::noise;
    use candle_core::quantized::GgmlDType;
    use std::cell::Cell;

    thread_local! {
        /// Set while a test runs the generic ops.
        pub static GENERIC: Cell<bool> = const { Cell::new(false) };
    }

    fn generic<T>(f: impl FnOnce() -> T) -> T {
        GENERIC.with(|g| g.set(true));
        let out = f();
        GENERIC.with(|g| g.set(false));
        out
    }

    fn randn(seed: u64, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(noise::gaussian(seed, n), shape, &Device::Cpu).unwrap()
    }

    /// Largest |fused − generic| relative to the largest |generic| is below `tol`.
    fn assert_close(what: &str, fused: &Tensor, generic: &Tensor, tol: f64) {
        assert_eq!(fused.dims(), generic.dims(), "{what}");
        let f64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let max = |t: Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        let err = max((f64(fused) - f64(generic)).unwrap());
        let rel = err.to_scalar::<f64>().unwrap() / max(f64(generic)).to_scalar::<f64>().unwrap();
        assert!(rel < tol, "{what}: relative error {rel:e}");
    }

    /// A layer over `w` (out, in) and `b` in each weight layout (packed only where the CPU has
    /// AVX-512F, which `Dense::new` then picks for f32).
    fn every_layout(w: &Tensor, b: Option<&Tensor>) -> Vec<(&'static str, Dense)> {
        let dense = |weight| Dense {
            weight,
            bias: b.cloned(),
            adapter: None,
            original_bias: None,
        };
        let mut layers = vec![
            ("plain", dense(Weight::Plain(w.clone()))),
            ("rows", dense(Weight::Rows(w.contiguous().unwrap()))),
        ];
        match cpu::packed::available() {
            true => {
                let packed = cpu::packed::PackedWeight::new(w).unwrap();
                layers.push(("packed", dense(Weight::Packed(packed))));
            }
            false => eprintln!("SKIPPED: the packed layout (this CPU has no AVX-512F)"),
        }
        // A weight kept in a stored (GGUF F32) form: expanded into packed panels per call on
        // AVX-512 CPUs, into a whole weight elsewhere.
        let bytes: Vec<u8> = w
            .flatten_all()
            .and_then(|w| w.to_vec1::<f32>())
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let stored = CompactWeight::ggml(GgmlDType::F32, w.dims2().unwrap(), &Device::Cpu, |b| {
            b.copy_from_slice(&bytes);
            Ok(())
        });
        let compact =
            Dense::compact(Arc::new(stored.unwrap()), b.cloned(), &Scratch::default()).unwrap();
        layers.push(("compact", compact));
        layers
    }

    #[test]
    fn every_layout_takes_a_lora_merged_or_as_a_branch_and_restores_exactly() {
        let (out, inp, rank) = (48, 40, 3);
        let (w, b) = (randn(1, &[out, inp]), randn(2, &[out]));
        let lora = crate::lora::LowRank {
            down: randn(4, &[rank, inp]),
            up: randn(5, &[out, rank]),
            bias: Some(randn(6, &[out])),
        };
        let x = randn(3, &[2, 7, inp]);
        let plain = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        let delta = lora.up.matmul(&lora.down).unwrap();
        let adapted = x.broadcast_matmul(&(&w + &delta).unwrap().t().unwrap());
        let bias = (&b + lora.bias.as_ref().unwrap()).unwrap();
        let want = adapted.unwrap().broadcast_add(&bias).unwrap();
        let (head, tail) = (
            x.narrow(2, 0, 15).unwrap(),
            x.narrow(2, 15, inp - 15).unwrap(),
        );
        let parts = [Input::Value(&head), Input::Value(&tail)];
        let cpu = (DType::F32, &Device::Cpu);
        for (layout, mut dense) in every_layout(&w, Some(&b)) {
            let before = dense.forward(&x).unwrap();
            assert_close(layout, &before, &plain.broadcast_add(&b).unwrap(), 1e-6);
            for merge in [true, false] {
                let what = format!("{layout} merge {merge}");
                dense.set_adapter(Some(&lora), merge, cpu).unwrap();
                let merged = matches!(dense.adapter, Some(Adapter::Merged(_)));
                let whole = matches!(layout, "plain" | "rows");
                assert_eq!(
                    merged,
                    merge && whole,
                    "{what}: merged only into whole weights"
                );
                assert_close(&what, &dense.forward(&x).unwrap(), &want, 1e-5);
                let got = dense.forward_parts(&parts).unwrap();
                assert_close(&format!("{what} parts"), &got, &want, 1e-5);
                let cols = dense.forward_columns(&x, 10..30).unwrap();
                let want_cols = want.narrow(2, 10, 20).unwrap();
                assert_close(&format!("{what} columns"), &cols, &want_cols, 1e-5);
                dense.set_adapter(None, merge, cpu).unwrap();
                let back = dense.forward(&x).unwrap();
                let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(bits(&back), bits(&before), "{what}: restored exactly");
            }
        }
    }

    #[test]
    fn a_lora_reading_more_inputs_widens_every_layout_and_goes_exactly() {
        let (out, inp, wide, rank) = (48, 40, 80, 5);
        let (w, b) = (randn(1, &[out, inp]), randn(2, &[out]));
        let lora = crate::lora::LowRank {
            down: randn(4, &[rank, wide]),
            up: randn(5, &[out, rank]),
            bias: None,
        };
        let x = randn(3, &[2, 7, wide]);
        let base = x
            .narrow(2, 0, inp)
            .unwrap()
            .broadcast_matmul(&w.t().unwrap());
        let delta = lora.up.matmul(&lora.down).unwrap();
        let branch = x.broadcast_matmul(&delta.t().unwrap()).unwrap();
        let want = (base.unwrap() + branch).unwrap().broadcast_add(&b).unwrap();
        let narrow = x.narrow(2, 0, inp).unwrap();
        let cpu = (DType::F32, &Device::Cpu);
        for (layout, mut dense) in every_layout(&w, Some(&b)) {
            let before = dense.forward(&narrow).unwrap();
            assert!(
                dense.forward(&x).is_err(),
                "{layout}: wide input without the LoRA"
            );
            for merge in [true, false] {
                let what = format!("{layout} merge {merge}");
                dense.set_adapter(Some(&lora), merge, cpu).unwrap();
                assert!(matches!(dense.adapter, Some(Adapter::Branch(..))), "{what}");
                assert_close(&what, &dense.forward(&x).unwrap(), &want, 1e-5);
                dense.set_adapter(None, merge, cpu).unwrap();
                let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let back = dense.forward(&narrow).unwrap();
                assert_eq!(bits(&back), bits(&before), "{what}: restored exactly");
            }
        }
    }

    #[test]
    fn dense_layouts_match_matmul_plus_bias_over_parts_and_columns() {
        // (outputs, inputs, input parts): a whole panel, a partial last panel, several input
        // blocks with a part straddling a block boundary, a single output.
        let cases: [(usize, usize, &[usize]); 4] = [
            (48, 40, &[16, 24]),
            (50, 40, &[40]),
            (130, 800, &[700, 100]),
            (1, 7, &[3, 4]),
        ];
        for (out, inp, split) in cases {
            let (w, b) = (randn(1, &[out, inp]), randn(2, &[out]));
            // 14 rows: a partial group of rows; the parts are slices of a wider input.
            let wide = randn(3, &[2, 7, inp + 5]);
            let x = wide.narrow(2, 5, inp).unwrap();
            let plain = x.broadcast_matmul(&w.t().unwrap()).unwrap();
            let want = plain.broadcast_add(&b).unwrap();
            let mut at = 0;
            let parts: Vec<Tensor> = split
                .iter()
                .map(|&len| {
                    at += len;
                    x.narrow(2, at - len, len).unwrap()
                })
                .collect();
            let inputs: Vec<Input> = parts.iter().map(Input::Value).collect();
            // The last part through GELU, applied by the layer and, for the expected value, by
            // candle's generic op.
            let (last, rest) = parts.split_last().unwrap();
            let mut gelu_inputs = inputs.clone();
            *gelu_inputs.last_mut().unwrap() = Input::Gelu(last);
            let gelu_last = generic(|| gelu(last)).unwrap();
            let gelu_x = Tensor::cat(&[rest, &[gelu_last]].concat(), 2).unwrap();
            let want_gelu = gelu_x.broadcast_matmul(&w.t().unwrap()).unwrap();
            let want_gelu = want_gelu.broadcast_add(&b).unwrap();
            for (layout, dense) in every_layout(&w, Some(&b)) {
                let what = format!("{layout} {out}x{inp}");
                assert_eq!(dense.outputs().unwrap(), out, "{what}");
                assert_close(&what, &dense.forward(&x).unwrap(), &want, 1e-6);
                let got = dense.forward_parts(&inputs).unwrap();
                assert_close(&format!("{what} parts"), &got, &want, 1e-6);
                let got = dense.forward_parts(&gelu_inputs).unwrap();
                // 2e-6: the vectorised GELU differs from candle's in the last bits (see
                // `gelu_modulate_and_gated_residual_match_generic_ops`), and 800 inputs add
                // those up.
                assert_close(&format!("{what} GELU part"), &got, &want_gelu, 2e-6);
                let ranges = [
                    (0, out),
                    (out / 3, out - out / 3),
                    (out / 4, (out / 2).max(1)),
                ];
                for (start, len) in ranges {
                    let got = dense.forward_columns(&x, start..start + len).unwrap();
                    let cols = want.narrow(2, start, len).unwrap();
                    assert_close(&format!("{what} columns {start}+{len}"), &got, &cols, 1e-6);
                }
                assert!(dense.forward_columns(&x, 0..out + 1).is_err(), "{what}");
                assert!(
                    dense.forward(&randn(4, &[2, 7, inp + 1])).is_err(),
                    "{what}"
                );
            }
            for (layout, dense) in every_layout(&w, None) {
                let got = dense.forward(&x).unwrap();
                assert_close(&format!("{layout} {out}x{inp} no bias"), &got, &plain, 1e-6);
            }
        }
    }

    #[test]
    fn dense_picks_the_layout_of_its_kernel() {
        let w = randn(1, &[50, 40]);
        let kind = |w: Tensor| match Dense::new(w, None).unwrap().weight {
            Weight::Plain(_) => "plain",
            Weight::Rows(_) => "rows",
            Weight::Packed(_) => "packed",
            Weight::Compact(..) => "compact",
        };
        let f32_kind = match cpu::packed::available() {
            true => "packed",
            false => "rows",
        };
        assert_eq!(kind(w.clone()), f32_kind);
        assert_eq!(kind(w.to_dtype(DType::F64).unwrap()), "plain");
    }

    #[test]
    fn gelu_modulate_and_gated_residual_match_generic_ops() {
        let x = (randn(5, &[2, 9, 3 * 40]) * 3.0).unwrap();
        // A slice of columns, as the single blocks' MLP input is.
        let cols = x.narrow(2, 40, 80).unwrap();
        let want = generic(|| gelu(&cols)).unwrap();
        assert_close("gelu", &gelu(&cols).unwrap(), &want, 1e-6);
        let (shift, scale) = (randn(6, &[2, 1, 80]), randn(7, &[2, 1, 80]));
        let want = generic(|| modulate(&cols, &shift, &scale)).unwrap();
        assert_close(
            "modulate",
            &modulate(&cols, &shift, &scale).unwrap(),
            &want,
            1e-6,
        );
        // x a slice of rows, as the last single block's residual is.
        let rows = x.narrow(1, 2, 7).unwrap().narrow(2, 0, 80).unwrap();
        let y = randn(8, &[2, 7, 80]);
        let want = generic(|| gated_residual(&rows, &y, &scale)).unwrap();
        let got = gated_residual(&rows, &y, &scale).unwrap();
        assert_close("gated residual", &got, &want, 1e-6);
        assert!(gated_residual(&rows, &cols, &scale).is_err());
    }

    #[test]
    fn fused_attention_matches_generic_attention() {
        let (heads, d) = (2, 16);
        let ids = randn(8, &[2, 19, 3]);
        let pe = rope_table(&ids, &[4, 6, 6], 10_000.0).unwrap();
        let norm = |seed| QkNorm {
            query: randn(seed, &[d]),
            key: randn(seed + 1, &[d]),
            originals: None,
        };
        let (txt_norm, img_norm) = (norm(9), norm(11));
        let txt = randn(13, &[2, 7, 3 * heads * d]);
        // The image qkv as the first columns of a wider projection, as in the single blocks.
        let img = randn(14, &[2, 12, 3 * heads * d + 5]);
        let img = img.narrow(2, 0, 3 * heads * d).unwrap();
        let segments = [(&txt, &txt_norm), (&img, &img_norm)];
        let (q, k, v) = qkv_heads(&segments, &pe, heads).unwrap();
        let (gq, gk, gv) = generic(|| qkv_heads(&segments, &pe, heads)).unwrap();
        assert_close("q", &q, &gq, 1e-6);
        assert_close("k", &k, &gk, 1e-6);
        assert_close("v", &v, &gv, 1e-6);
        let want = generic(|| attention(&gq, &gk, &gv)).unwrap();
        assert_close("attention", &attention(&q, &k, &v).unwrap(), &want, 1e-5);
    }
}
