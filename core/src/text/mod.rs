//! Text conditioning: the T5 encoder (per-token embeddings) and CLIP (pooled vector).

mod t5_encoder;
pub mod tokenizer;

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::models::clip::text_model::{
    Activation, ClipTextConfig, ClipTextTransformer,
};
use candle_transformers::models::t5;

use crate::error::{Error, Result};
use crate::model::weights::ModelWeights;
use t5_encoder::T5Stack;
pub use tokenizer::PromptTokenizer;

/// CLIP's fixed sequence length.
pub const CLIP_LEN: usize = 77;

/// The conditioning a prompt gives the transformer.
#[derive(Debug, Clone)]
pub struct PromptEmbedding {
    /// T5 last hidden state (1, L, d_t5).
    pub txt: Tensor,
    /// CLIP pooled output (1, d_clip).
    pub vec: Tensor,
}

/// Infers a T5 encoder config from tensor shapes (the FLUX T5 is a gated-GELU v1.1 encoder).
pub fn infer_t5_config(w: &ModelWeights) -> Result<t5::Config> {
    let emb = if w.contains("shared.weight") {
        "shared.weight"
    } else {
        "encoder.embed_tokens.weight"
    };
    let emb = w.shape(emb)?;
    let rel = w.shape("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")?;
    let inner = w.dim0("encoder.block.0.layer.0.SelfAttention.q.weight")?;
    let gated = w.contains("encoder.block.0.layer.1.DenseReluDense.wi_0.weight");
    let wi = if gated { "wi_0" } else { "wi" };
    let heads = rel[1];
    let json = serde_json::json!({
        "vocab_size": emb[0], "d_model": emb[1], "d_kv": inner / heads.max(1),
        "d_ff": w.dim0(&format!("encoder.block.0.layer.1.DenseReluDense.{wi}.weight"))?,
        "num_layers": w.count("encoder.block.{}.layer.0.SelfAttention.q.weight"),
        "num_heads": heads, "relative_attention_num_buckets": rel[0],
        "relative_attention_max_distance": 128, "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6,
        "initializer_factor": 1.0, "feed_forward_proj": if gated { "gated-gelu" } else { "relu" },
        "is_encoder_decoder": false, "pad_token_id": 0, "eos_token_id": 1,
    });
    serde_json::from_value(json).map_err(|e| Error::UnknownLayout(format!("T5 config: {e}")))
}

/// Parses an HF `config.json` for T5.
pub fn parse_t5_config(json: &serde_json::Value) -> Result<t5::Config> {
    serde_json::from_value(json.clone())
        .map_err(|e| Error::UnknownLayout(format!("T5 config.json: {e}")))
}

/// CLIP text config: shapes from the tensors, the head count from `heads` (config.json or file
/// metadata) or, failing that, CLIP's 64-wide heads.
pub fn infer_clip_config(
    w: &ModelWeights,
    prefix: &str,
    heads: Option<usize>,
) -> Result<ClipTextConfig> {
    let tok = w.shape(&format!("{prefix}embeddings.token_embedding.weight"))?;
    let embed_dim = tok[1];
    let heads = heads.unwrap_or((embed_dim / 64).max(1));
    if embed_dim % heads != 0 {
        return Err(Error::UnknownLayout(format!(
            "CLIP width {embed_dim} is not divisible by {heads} heads"
        )));
    }
    Ok(ClipTextConfig {
        vocab_size: tok[0],
        embed_dim,
        activation: Activation::QuickGelu,
        intermediate_size: w.dim0(&format!("{prefix}encoder.layers.0.mlp.fc1.weight"))?,
        max_position_embeddings: w
            .dim0(&format!("{prefix}embeddings.position_embedding.weight"))?,
        pad_with: None,
        num_hidden_layers: w.count(&format!("{prefix}encoder.layers.{{}}.mlp.fc1.weight")),
        num_attention_heads: heads,
        projection_dim: embed_dim,
    })
}

/// The T5 encoder with its tokenizer.
pub struct T5Encoder {
    model: T5Stack,
    tokenizer: PromptTokenizer,
}

impl T5Encoder {
    /// Builds the encoder from weights and config.
    pub fn load(
        w: &Arc<ModelWeights>,
        cfg: &t5::Config,
        tokenizer: PromptTokenizer,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let model = T5Stack::load(w, cfg, dtype, device)?;
        Ok(Self { model, tokenizer })
    }

    /// Last hidden state for token ids (1, L) -> (1, L, d). No attention mask, as in the reference.
    pub fn forward_ids(&mut self, ids: &[u32]) -> Result<Tensor> {
        self.model.forward(ids)
    }

    /// Embeds a prompt padded/truncated to `len` tokens.
    pub fn encode(&mut self, prompt: &str, len: usize) -> Result<Tensor> {
        let ids = self.tokenizer.encode(prompt, len)?;
        self.forward_ids(&ids)
    }
}

/// The CLIP text model with its tokenizer.
pub struct ClipEncoder {
    model: ClipTextTransformer,
    tokenizer: PromptTokenizer,
    device: Device,
}

impl ClipEncoder {
    /// Builds the CLIP text transformer; `prefix` is `text_model.` for Hub-named files.
    pub fn load(
        w: &Arc<ModelWeights>,
        prefix: &str,
        cfg: &ClipTextConfig,
        tokenizer: PromptTokenizer,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let (vb, errors) = w.var_builder(dtype, device);
        let vb = if prefix.is_empty() {
            vb
        } else {
            vb.pp(prefix.trim_end_matches('.'))
        };
        let model = ClipTextTransformer::new(vb, cfg).map_err(|e| errors.take(e))?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
        })
    }

    /// Pooled output (1, d) for token ids: the hidden state at the first end-of-text token.
    pub fn forward_ids(&self, ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        Ok(self.model.forward(&ids)?)
    }

    /// Last hidden state (1, L, d) for token ids.
    pub fn hidden_states(&self, ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        Ok(self.model.forward_with_mask(&ids, usize::MAX)?)
    }

    /// Pooled embedding of a prompt.
    pub fn encode(&self, prompt: &str) -> Result<Tensor> {
        let ids = self.tokenizer.encode(prompt, CLIP_LEN)?;
        self.forward_ids(&ids)
    }
}

/// Both text encoders.
pub struct TextEncoders {
    pub t5: T5Encoder,
    pub clip: ClipEncoder,
}

impl TextEncoders {
    /// Encodes a prompt; `t5_len` is the T5 sequence length (256 for schnell, 512 for dev).
    pub fn encode(&mut self, prompt: &str, t5_len: usize) -> Result<PromptEmbedding> {
        Ok(PromptEmbedding {
            txt: self.t5.encode(prompt, t5_len)?,
            vec: self.clip.encode(prompt)?,
        })
    }
}
