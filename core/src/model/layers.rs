//! Building blocks of the FLUX transformer: dense layers, timestep embedding, RoPE, attention,
//! norms.
//!
//! f32 on the CPU runs the fused kernels of [`super::cpu`]; other devices and dtypes run the
//! generic candle ops below. RoPE tables and their application are computed in f32 whatever the
//! model dtype, as the reference does, so bf16 models keep accurate positions.

use std::ops::Range;

use candle_core::{DType, Device, Tensor, D};

use super::cpu::{self, QkvSegment};
use super::weights::ModelWeights;
use crate::error::Result;

/// Loads tensors of one model with shape checks, converting to the compute dtype.
pub struct Loader<'a> {
    pub weights: &'a ModelWeights,
    pub dtype: DType,
    pub device: &'a Device,
}

impl Loader<'_> {
    /// A tensor of exactly `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.weights
            .load(name, Some(shape), self.dtype, self.device)
    }

    /// `prefix.weight` (out, in) and, when `bias`, `prefix.bias` (out).
    pub fn linear(&self, prefix: &str, input: usize, output: usize, bias: bool) -> Result<Dense> {
        let w = self.tensor(&format!("{prefix}.weight"), &[output, input])?;
        let b = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), &[output])?)
        } else {
            None
        };
        Dense::new(w, b)
    }
}

/// Whether `t` takes the fused CPU kernels (f32 on the CPU; tests can switch them off).
fn fused(t: &Tensor) -> bool {
    #[cfg(test)]
    if tests::GENERIC.with(|g| g.get()) {
        return false;
    }
    cpu::applies(t)
}

/// A dense layer `x·Wᵀ + b`. For f32 on the CPU the weight is kept transposed (in, out) for
/// [`cpu::linear_parts`]: gemm packs that layout faster, and the bias costs no extra pass.
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
    transposed: bool,
}

impl Dense {
    /// A layer from its weight (out, in) and optional bias (out).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let transposed = cpu::applies(&weight);
        let weight = match transposed {
            true => cpu::transpose(&weight)?,
            false => weight,
        };
        Ok(Self {
            weight,
            bias,
            transposed,
        })
    }

    /// The layer applied to `x` (…, in).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_parts(&[x])
    }

    /// The layer applied to `cat(parts, −1)`; on the CPU the concatenation is never built.
    pub fn forward_parts(&self, parts: &[&Tensor]) -> Result<Tensor> {
        self.apply(parts, 0..self.outputs()?)
    }

    /// Only the outputs `cols` of the layer applied to `x` (…, in), without computing the others.
    pub fn forward_columns(&self, x: &Tensor, cols: Range<usize>) -> Result<Tensor> {
        self.apply(&[x], cols)
    }

    /// Number of outputs.
    pub fn outputs(&self) -> Result<usize> {
        let axis = if self.transposed { 1 } else { 0 };
        Ok(self.weight.dim(axis)?)
    }

    /// Outputs `cols` of the layer applied to `cat(parts, −1)`.
    fn apply(&self, parts: &[&Tensor], cols: Range<usize>) -> Result<Tensor> {
        let (start, len) = (cols.start, cols.len());
        let bias = match &self.bias {
            Some(b) => Some(b.narrow(0, start, len)?),
            None => None,
        };
        if self.transposed {
            let weight = self.weight.narrow(1, start, len)?;
            return Ok(cpu::linear_parts(parts, &weight, bias.as_ref())?);
        }
        let weight = self.weight.narrow(0, start, len)?;
        let y = Tensor::cat(parts, D::Minus1)?.broadcast_matmul(&weight.t()?)?;
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
}

/// RMSNorm of q and k over the head dim (eps 1e-6) with learned scales.
pub struct QkNorm {
    query: Tensor,
    key: Tensor,
}

impl QkNorm {
    pub fn load(l: &Loader, prefix: &str, head_dim: usize) -> Result<Self> {
        Ok(Self {
            query: l.tensor(&format!("{prefix}.query_norm.scale"), &[head_dim])?,
            key: l.tensor(&format!("{prefix}.key_norm.scale"), &[head_dim])?,
        })
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

    #[test]
    fn dense_matches_matmul_plus_bias_also_over_parts() {
        let (w, b) = (randn(1, &[48, 40]), randn(2, &[48]));
        let x = randn(3, &[2, 7, 40]);
        let want = x
            .broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let dense = Dense::new(w.clone(), Some(b.clone())).unwrap();
        assert!(dense.transposed);
        let t = w.t().unwrap().contiguous().unwrap();
        let diff = (&dense.weight - &t)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        assert_close("dense", &dense.forward(&x).unwrap(), &want, 1e-6);
        let parts = [&x.narrow(2, 0, 16).unwrap(), &x.narrow(2, 16, 24).unwrap()];
        assert_close("parts", &dense.forward_parts(&parts).unwrap(), &want, 1e-6);
        let no_bias = Dense::new(w.clone(), None).unwrap().forward(&x).unwrap();
        let want = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        assert_close("no bias", &no_bias, &want, 1e-6);
        assert!(dense.forward(&randn(4, &[2, 7, 41])).is_err());
        // An output count that splits into column blocks of unequal width.
        let (w, b) = (randn(5, &[50, 40]), randn(6, &[50]));
        let want = x
            .broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let got = Dense::new(w, Some(b)).unwrap().forward(&x).unwrap();
        assert_close("50 outputs", &got, &want, 1e-6);
    }

    #[test]
    fn dense_columns_are_those_of_the_whole_layer() {
        // f32 takes the fused CPU path (a column slice of the transposed weight), f64 the generic one.
        for dtype in [DType::F32, DType::F64] {
            let t = |seed, shape: &[usize]| randn(seed, shape).to_dtype(dtype).unwrap();
            let dense = Dense::new(t(1, &[50, 40]), Some(t(2, &[50]))).unwrap();
            assert_eq!(dense.transposed, dtype == DType::F32);
            assert_eq!(dense.outputs().unwrap(), 50);
            let x = t(3, &[2, 7, 40]);
            let whole = dense.forward(&x).unwrap();
            for (start, len) in [(0, 20), (20, 30), (13, 17), (0, 50)] {
                let got = dense.forward_columns(&x, start..start + len).unwrap();
                let want = whole.narrow(2, start, len).unwrap();
                assert_close(&format!("{dtype:?} {start}+{len}"), &got, &want, 1e-6);
            }
            assert!(dense.forward_columns(&x, 40..60).is_err());
        }
    }

    #[test]
    fn gelu_and_modulate_match_generic_ops() {
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
    }

    #[test]
    fn fused_attention_matches_generic_attention() {
        let (heads, d) = (2, 16);
        let ids = randn(8, &[2, 19, 3]);
        let pe = rope_table(&ids, &[4, 6, 6], 10_000.0).unwrap();
        let norm = |seed| QkNorm {
            query: randn(seed, &[d]),
            key: randn(seed + 1, &[d]),
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
