//! Building blocks of the FLUX transformer: timestep embedding, RoPE, attention, norms.
//!
//! RoPE tables and their application are computed in f32 whatever the model dtype, as the
//! reference does, so bf16 models keep accurate positions.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::Linear;

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
    pub fn linear(&self, prefix: &str, input: usize, output: usize, bias: bool) -> Result<Linear> {
        let w = self.tensor(&format!("{prefix}.weight"), &[output, input])?;
        let b = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), &[output])?)
        } else {
            None
        };
        Ok(Linear::new(w, b))
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
    let dtype = x.dtype();
    let (b, h, n, d) = x.dims4()?;
    let x = x.to_dtype(DType::F32)?.reshape((b, h, n, d / 2, 1, 2))?;
    // out[r] = pe[r, 0]·x0 + pe[r, 1]·x1, for the two rows r of each rotation matrix.
    let out = pe.broadcast_mul(&x)?.sum(D::Minus1)?;
    Ok(out.reshape((b, h, n, d))?.to_dtype(dtype)?)
}

/// Softmax attention over (B, H, N, D) with RoPE applied to q and k; returns (B, N, H·D).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, pe: &Tensor) -> Result<Tensor> {
    let q = apply_rope(q, pe)?;
    let k = apply_rope(k, pe)?;
    let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
    let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    let out = probs.matmul(&v.contiguous()?)?;
    Ok(out.transpose(1, 2)?.flatten_from(2)?)
}

/// LayerNorm over the last dim without affine parameters (eps 1e-6).
pub fn layer_norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(centered.broadcast_div(&(var + 1e-6)?.sqrt()?)?)
}

/// `(1 + scale) · LN(x) + shift`.
pub fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    Ok(layer_norm(x)?
        .broadcast_mul(&(scale + 1.0)?)?
        .broadcast_add(shift)?)
}

/// `out_layer(silu(in_layer(x)))`.
pub struct MlpEmbedder {
    pub in_layer: Linear,
    pub out_layer: Linear,
}

impl MlpEmbedder {
    pub fn load(l: &Loader, prefix: &str, input: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            in_layer: l.linear(&format!("{prefix}.in_layer"), input, hidden, true)?,
            out_layer: l.linear(&format!("{prefix}.out_layer"), hidden, hidden, true)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self
            .out_layer
            .forward(&candle_nn::ops::silu(&self.in_layer.forward(x)?)?)?)
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
    lin: Linear,
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
