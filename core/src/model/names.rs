//! Tensor-name mapping from the diffusers layout to the BFL names the model code uses.
//!
//! The model code asks for BFL names (`double_blocks.0.img_attn.qkv.weight`). For a diffusers
//! checkpoint each BFL tensor is assembled from one or more diffusers tensors by a [`Recipe`]:
//! q/k/v projections are concatenated, the final layer's (scale, shift) halves are swapped back
//! to (shift, scale), and the AE's 1×1 attention convolutions are stored as linear weights.

/// How to build one BFL tensor from stored tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipe {
    /// The stored tensor as it is.
    Same(String),
    /// Stored tensors concatenated along dimension 0 (rows), in order.
    Concat(Vec<String>),
    /// The stored tensor with its two halves along dimension 0 exchanged.
    SwapHalves(String),
    /// The stored tensor reshaped to the requested shape (same element count, e.g. [C,C] -> [C,C,1,1]).
    Reshape(String),
}

/// The key naming of a weight set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Names are what the model code asks for: BFL checkpoints, HF T5/CLIP files.
    Native,
    /// A diffusers `FluxTransformer2DModel`.
    DiffusersTransformer,
    /// A diffusers `AutoencoderKL` with `levels` resolution levels.
    DiffusersVae { levels: usize },
    /// A T5 encoder in llama.cpp's GGUF names (`token_embd`, `enc.blk.N.attn_q`, …), asked for
    /// by HF names.
    LlamaT5,
}

impl Naming {
    /// The recipe for `name`, or `None` when the name has no counterpart in this naming.
    pub fn recipe(self, name: &str) -> Option<Recipe> {
        match self {
            Naming::Native => Some(Recipe::Same(name.to_string())),
            Naming::DiffusersTransformer => diffusers_transformer(name),
            Naming::DiffusersVae { levels } => diffusers_vae(name, levels),
            Naming::LlamaT5 => llama_t5(name).map(Recipe::Same),
        }
    }
}

/// llama.cpp's GGUF name (`convert_hf_to_gguf.py`, T5 encoder) of an HF `T5EncoderModel` tensor.
fn llama_t5(name: &str) -> Option<String> {
    match name {
        "shared.weight" | "encoder.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "encoder.final_layer_norm.weight" => return Some("enc.output_norm.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("encoder.block.")?;
    let (i, sub) = rest.split_once('.')?;
    let part = match sub {
        "layer.0.SelfAttention.q.weight" => "attn_q",
        "layer.0.SelfAttention.k.weight" => "attn_k",
        "layer.0.SelfAttention.v.weight" => "attn_v",
        "layer.0.SelfAttention.o.weight" => "attn_o",
        "layer.0.SelfAttention.relative_attention_bias.weight" => "attn_rel_b",
        "layer.0.layer_norm.weight" => "attn_norm",
        // wi_0 is the GELU branch of the gated feed-forward, wi_1 the linear one.
        "layer.1.DenseReluDense.wi_0.weight" => "ffn_gate",
        "layer.1.DenseReluDense.wi_1.weight" => "ffn_up",
        "layer.1.DenseReluDense.wo.weight" => "ffn_down",
        "layer.1.layer_norm.weight" => "ffn_norm",
        _ => return None,
    };
    Some(format!("enc.blk.{i}.{part}.weight"))
}

/// Splits `a.b.c.weight` into (`a.b.c`, `weight`).
fn split_param(name: &str) -> Option<(&str, &str)> {
    name.rsplit_once('.')
}

fn diffusers_transformer(name: &str) -> Option<Recipe> {
    let (module, param) = split_param(name)?;
    let same = |m: &str| Some(Recipe::Same(format!("{m}.{param}")));
    let top = match module {
        "img_in" => return same("x_embedder"),
        "txt_in" => return same("context_embedder"),
        "time_in.in_layer" => return same("time_text_embed.timestep_embedder.linear_1"),
        "time_in.out_layer" => return same("time_text_embed.timestep_embedder.linear_2"),
        "vector_in.in_layer" => return same("time_text_embed.text_embedder.linear_1"),
        "vector_in.out_layer" => return same("time_text_embed.text_embedder.linear_2"),
        "guidance_in.in_layer" => return same("time_text_embed.guidance_embedder.linear_1"),
        "guidance_in.out_layer" => return same("time_text_embed.guidance_embedder.linear_2"),
        "final_layer.linear" => return same("proj_out"),
        "final_layer.adaLN_modulation.1" => {
            return Some(Recipe::SwapHalves(format!("norm_out.linear.{param}")))
        }
        other => other,
    };
    if let Some(rest) = top.strip_prefix("double_blocks.") {
        let (i, sub) = rest.split_once('.')?;
        let b = format!("transformer_blocks.{i}");
        let norm = |m: &str| Some(Recipe::Same(format!("{b}.attn.{m}.weight")));
        let cat = |parts: [&str; 3]| {
            Some(Recipe::Concat(
                parts
                    .iter()
                    .map(|p| format!("{b}.attn.{p}.{param}"))
                    .collect(),
            ))
        };
        return match sub {
            "img_mod.lin" => Some(Recipe::Same(format!("{b}.norm1.linear.{param}"))),
            "txt_mod.lin" => Some(Recipe::Same(format!("{b}.norm1_context.linear.{param}"))),
            "img_attn.qkv" => cat(["to_q", "to_k", "to_v"]),
            "txt_attn.qkv" => cat(["add_q_proj", "add_k_proj", "add_v_proj"]),
            "img_attn.norm.query_norm" => norm("norm_q"),
            "img_attn.norm.key_norm" => norm("norm_k"),
            "txt_attn.norm.query_norm" => norm("norm_added_q"),
            "txt_attn.norm.key_norm" => norm("norm_added_k"),
            "img_attn.proj" => Some(Recipe::Same(format!("{b}.attn.to_out.0.{param}"))),
            "txt_attn.proj" => Some(Recipe::Same(format!("{b}.attn.to_add_out.{param}"))),
            "img_mlp.0" => Some(Recipe::Same(format!("{b}.ff.net.0.proj.{param}"))),
            "img_mlp.2" => Some(Recipe::Same(format!("{b}.ff.net.2.{param}"))),
            "txt_mlp.0" => Some(Recipe::Same(format!("{b}.ff_context.net.0.proj.{param}"))),
            "txt_mlp.2" => Some(Recipe::Same(format!("{b}.ff_context.net.2.{param}"))),
            _ => None,
        };
    }
    if let Some(rest) = top.strip_prefix("single_blocks.") {
        let (i, sub) = rest.split_once('.')?;
        let b = format!("single_transformer_blocks.{i}");
        return match sub {
            "linear1" => Some(Recipe::Concat(vec![
                format!("{b}.attn.to_q.{param}"),
                format!("{b}.attn.to_k.{param}"),
                format!("{b}.attn.to_v.{param}"),
                format!("{b}.proj_mlp.{param}"),
            ])),
            "linear2" => Some(Recipe::Same(format!("{b}.proj_out.{param}"))),
            "modulation.lin" => Some(Recipe::Same(format!("{b}.norm.linear.{param}"))),
            "norm.query_norm" => Some(Recipe::Same(format!("{b}.attn.norm_q.weight"))),
            "norm.key_norm" => Some(Recipe::Same(format!("{b}.attn.norm_k.weight"))),
            _ => None,
        };
    }
    None
}

/// Maps a BFL AE resblock sub-module name (`nin_shortcut` -> `conv_shortcut`).
fn resnet_part(part: &str) -> &str {
    if part == "nin_shortcut" {
        "conv_shortcut"
    } else {
        part
    }
}

fn diffusers_vae(name: &str, levels: usize) -> Option<Recipe> {
    let (side, rest) = name.split_once('.')?;
    if side != "encoder" && side != "decoder" {
        return None;
    }
    let (module, param) = split_param(rest)?;
    let parts: Vec<&str> = module.split('.').collect();
    let same = |m: String| Some(Recipe::Same(format!("{side}.{m}.{param}")));
    match parts.as_slice() {
        ["conv_in"] | ["conv_out"] => same(module.to_string()),
        ["norm_out"] => same("conv_norm_out".into()),
        ["mid", block @ ("block_1" | "block_2"), part] => {
            let j = if *block == "block_1" { 0 } else { 1 };
            same(format!("mid_block.resnets.{j}.{}", resnet_part(part)))
        }
        ["mid", "attn_1", "norm"] => same("mid_block.attentions.0.group_norm".into()),
        ["mid", "attn_1", proj @ ("q" | "k" | "v" | "proj_out")] => {
            let target = match *proj {
                "q" => "to_q",
                "k" => "to_k",
                "v" => "to_v",
                _ => "to_out.0",
            };
            Some(Recipe::Reshape(format!(
                "{side}.mid_block.attentions.0.{target}.{param}"
            )))
        }
        ["down", l, "block", j, part] if side == "encoder" => {
            same(format!("down_blocks.{l}.resnets.{j}.{}", resnet_part(part)))
        }
        ["down", l, "downsample", "conv"] if side == "encoder" => {
            same(format!("down_blocks.{l}.downsamplers.0.conv"))
        }
        ["up", l, rest @ ..] if side == "decoder" => {
            let level: usize = l.parse().ok()?;
            let idx = levels.checked_sub(level + 1)?;
            match rest {
                ["block", j, part] => {
                    same(format!("up_blocks.{idx}.resnets.{j}.{}", resnet_part(part)))
                }
                ["upsample", "conv"] => same(format!("up_blocks.{idx}.upsamplers.0.conv")),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformer_table() {
        let n = Naming::DiffusersTransformer;
        let cases = [
            ("img_in.weight", Recipe::Same("x_embedder.weight".into())),
            (
                "double_blocks.3.txt_attn.qkv.bias",
                Recipe::Concat(vec![
                    "transformer_blocks.3.attn.add_q_proj.bias".into(),
                    "transformer_blocks.3.attn.add_k_proj.bias".into(),
                    "transformer_blocks.3.attn.add_v_proj.bias".into(),
                ]),
            ),
            (
                "double_blocks.0.img_attn.norm.query_norm.scale",
                Recipe::Same("transformer_blocks.0.attn.norm_q.weight".into()),
            ),
            (
                "single_blocks.1.linear1.weight",
                Recipe::Concat(vec![
                    "single_transformer_blocks.1.attn.to_q.weight".into(),
                    "single_transformer_blocks.1.attn.to_k.weight".into(),
                    "single_transformer_blocks.1.attn.to_v.weight".into(),
                    "single_transformer_blocks.1.proj_mlp.weight".into(),
                ]),
            ),
            (
                "single_blocks.1.linear2.bias",
                Recipe::Same("single_transformer_blocks.1.proj_out.bias".into()),
            ),
            (
                "final_layer.linear.weight",
                Recipe::Same("proj_out.weight".into()),
            ),
            (
                "final_layer.adaLN_modulation.1.bias",
                Recipe::SwapHalves("norm_out.linear.bias".into()),
            ),
        ];
        for (bfl, want) in cases {
            assert_eq!(n.recipe(bfl), Some(want), "{bfl}");
        }
        assert_eq!(n.recipe("double_blocks.0.unknown.weight"), None);
    }

    #[test]
    fn vae_table() {
        let n = Naming::DiffusersVae { levels: 4 };
        let cases = [
            (
                "decoder.up.3.block.0.conv1.weight",
                Recipe::Same("decoder.up_blocks.0.resnets.0.conv1.weight".into()),
            ),
            (
                "decoder.up.0.block.0.nin_shortcut.bias",
                Recipe::Same("decoder.up_blocks.3.resnets.0.conv_shortcut.bias".into()),
            ),
            (
                "decoder.up.1.upsample.conv.weight",
                Recipe::Same("decoder.up_blocks.2.upsamplers.0.conv.weight".into()),
            ),
            (
                "encoder.down.2.downsample.conv.bias",
                Recipe::Same("encoder.down_blocks.2.downsamplers.0.conv.bias".into()),
            ),
            (
                "encoder.mid.attn_1.proj_out.weight",
                Recipe::Reshape("encoder.mid_block.attentions.0.to_out.0.weight".into()),
            ),
            (
                "encoder.mid.block_2.norm1.weight",
                Recipe::Same("encoder.mid_block.resnets.1.norm1.weight".into()),
            ),
            (
                "decoder.norm_out.bias",
                Recipe::Same("decoder.conv_norm_out.bias".into()),
            ),
        ];
        for (bfl, want) in cases {
            assert_eq!(n.recipe(bfl), Some(want), "{bfl}");
        }
    }
}
