//! The T5 encoder (FLUX's text encoder: T5 v1.1, gated GELU) on the engine's own dense layers,
//! so that a quantized or fp8 file stays in its stored form in memory as the transformer's does
//! (T5-XXL: 5 GB in Q8_0 instead of 19 GB upcast to f32). Same maths as HF `T5EncoderModel`:
//! RMS layer norms computed in f32, unscaled attention with a relative-position bias shared by
//! every block (block 0 holds it), no attention mask.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::Activation;
use candle_transformers::models::t5::Config;

use crate::error::Result;
use crate::model::compact::CompactWeight;
use crate::model::layers::{self, Dense, Loader};
use crate::model::weights::ModelWeights;

/// The token embedding, compact when its file stores it so (a row is read per token).
enum Embedding {
    Dense(Tensor),
    Compact(Box<CompactWeight>),
}

impl Embedding {
    fn forward(&self, ids: &[u32], dtype: DType, device: &Device) -> Result<Tensor> {
        match self {
            Embedding::Dense(t) => Ok(t.index_select(&Tensor::new(ids, t.device())?, 0)?),
            Embedding::Compact(w) if w.device().is_cpu() => {
                let (vocab, width) = w.shape();
                let rows = w.rows()?;
                let mut values = vec![0f32; ids.len() * width];
                for (&id, row) in ids.iter().zip(values.chunks_exact_mut(width)) {
                    if id as usize >= vocab {
                        return Err(crate::error::Error::invalid(format!(
                            "token id {id} past the vocabulary of {vocab}"
                        )));
                    }
                    rows.read(id as usize, 0..width, row);
                }
                let t = Tensor::from_vec(values, (ids.len(), width), &Device::Cpu)?;
                Ok(t.to_dtype(dtype)?.to_device(device)?)
            }
            Embedding::Compact(w) => {
                let ids = Tensor::new(ids, &w.device())?;
                Ok(w.dequantize(dtype)?.index_select(&ids, 0)?)
            }
        }
    }
}

/// T5's RMS norm: `x / sqrt(mean(x²) + eps) · weight`, in f32.
struct Norm {
    weight: Tensor,
    eps: f64,
}

impl Norm {
    fn load(l: &Loader, name: &str, width: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: l.tensor(name, &[width])?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x32 = x.to_dtype(DType::F32)?;
        let variance = x32.sqr()?.mean_keepdim(D::Minus1)?;
        let x32 = x32.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        Ok(x32.to_dtype(x.dtype())?.broadcast_mul(&self.weight)?)
    }
}

struct Block {
    attn_norm: Norm,
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
    ffn_norm: Norm,
    /// `wi_0` (through the activation) when gated, else `wi`.
    wi: Dense,
    /// `wi_1`, the linear branch of a gated feed-forward.
    wi_gate: Option<Dense>,
    wo: Dense,
}

/// The T5 encoder stack.
pub struct T5Stack {
    embedding: Embedding,
    /// Block 0's relative-attention bias table (buckets, heads).
    relative_bias: Tensor,
    blocks: Vec<Block>,
    final_norm: Norm,
    cfg: Config,
    dtype: DType,
    device: Device,
}

impl T5Stack {
    /// Builds the encoder from HF-named weights (any naming that maps to them).
    pub fn load(w: &ModelWeights, cfg: &Config, dtype: DType, device: &Device) -> Result<Self> {
        let l = Loader::new(w, dtype, device);
        let (d, inner, ff) = (cfg.d_model, cfg.num_heads * cfg.d_kv, cfg.d_ff);
        let eps = cfg.layer_norm_epsilon;
        let emb_name = match w.contains("shared.weight") {
            true => "shared.weight",
            false => "encoder.embed_tokens.weight",
        };
        let embedding = match w.load_compact(emb_name, &[cfg.vocab_size, d], dtype, device)? {
            Some(c) => Embedding::Compact(Box::new(c)),
            None => Embedding::Dense(l.tensor(emb_name, &[cfg.vocab_size, d])?),
        };
        let gated = cfg.feed_forward_proj.gated;
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let a = format!("encoder.block.{i}.layer.0");
                let f = format!("encoder.block.{i}.layer.1");
                let dense = |n: &str, i, o| l.linear(n, i, o, false);
                let wi = if gated { "wi_0" } else { "wi" };
                Ok(Block {
                    attn_norm: Norm::load(&l, &format!("{a}.layer_norm.weight"), d, eps)?,
                    q: dense(&format!("{a}.SelfAttention.q"), d, inner)?,
                    k: dense(&format!("{a}.SelfAttention.k"), d, inner)?,
                    v: dense(&format!("{a}.SelfAttention.v"), d, inner)?,
                    o: dense(&format!("{a}.SelfAttention.o"), inner, d)?,
                    ffn_norm: Norm::load(&l, &format!("{f}.layer_norm.weight"), d, eps)?,
                    wi: dense(&format!("{f}.DenseReluDense.{wi}"), d, ff)?,
                    wi_gate: match gated {
                        true => Some(dense(&format!("{f}.DenseReluDense.wi_1"), d, ff)?),
                        false => None,
                    },
                    wo: dense(&format!("{f}.DenseReluDense.wo"), ff, d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let relative_bias = l.tensor(
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            &[cfg.relative_attention_num_buckets, cfg.num_heads],
        )?;
        Ok(Self {
            embedding,
            relative_bias,
            blocks,
            final_norm: Norm::load(&l, "encoder.final_layer_norm.weight", d, eps)?,
            cfg: cfg.clone(),
            dtype,
            device: device.clone(),
        })
    }

    /// The bidirectional relative-position bucket of key `j` for query `i` (HF's
    /// `_relative_position_bucket`, in candle's f32 arithmetic).
    fn bucket(&self, i: usize, j: usize) -> u32 {
        let buckets = self.cfg.relative_attention_num_buckets as u32 / 2;
        let max_exact = buckets / 2;
        let (offset, n) = match i < j {
            true => (buckets, (j - i) as u32),
            false => (0, (i - j) as u32),
        };
        if n < max_exact {
            return offset + n;
        }
        let distance = self.cfg.relative_attention_max_distance as f32;
        let large = f32::log(n as f32 / max_exact as f32, distance / max_exact as f32)
            * (buckets - max_exact) as f32;
        offset + u32::min(max_exact + large as u32, buckets - 1)
    }

    /// The position bias (1, heads, L, L) of a sequence of `len` tokens.
    fn position_bias(&self, len: usize) -> Result<Tensor> {
        let buckets: Vec<u32> = (0..len)
            .flat_map(|i| (0..len).map(move |j| (i, j)))
            .map(|(i, j)| self.bucket(i, j))
            .collect();
        let buckets = Tensor::from_vec(buckets, len * len, self.relative_bias.device())?;
        let bias = self.relative_bias.index_select(&buckets, 0)?;
        Ok(bias
            .reshape((len, len, self.cfg.num_heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?)
    }

    fn activation(&self, x: &Tensor) -> Result<Tensor> {
        match self.cfg.feed_forward_proj.activation {
            Activation::NewGelu => layers::gelu(x),
            a => Ok(a.forward(x)?),
        }
    }

    /// Last hidden state (1, L, d) for token ids.
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        let (heads, d_kv) = (self.cfg.num_heads, self.cfg.d_kv);
        let len = ids.len();
        let mut x = self
            .embedding
            .forward(ids, self.dtype, &self.device)?
            .unsqueeze(0)?;
        let bias = self.position_bias(len)?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((1, len, heads, d_kv))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        for b in &self.blocks {
            let h = b.attn_norm.forward(&x)?;
            let (q, k, v) = (
                split(b.q.forward(&h)?)?,
                split(b.k.forward(&h)?)?,
                split(b.v.forward(&h)?)?,
            );
            let scores = q.matmul(&k.t()?)?.broadcast_add(&bias)?;
            let attn = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?;
            let attn = attn.transpose(1, 2)?.reshape((1, len, heads * d_kv))?;
            x = (x + b.o.forward(&attn)?)?;
            let h = b.ffn_norm.forward(&x)?;
            let mut hidden = self.activation(&b.wi.forward(&h)?)?;
            if let Some(gate) = &b.wi_gate {
                hidden = (hidden * gate.forward(&h)?)?;
            }
            x = (x + b.wo.forward(&hidden)?)?;
        }
        self.final_norm.forward(&x)
    }
}
