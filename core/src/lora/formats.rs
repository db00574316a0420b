//! The LoRA file layouts people download, mapped to the engine's (BFL) layer names: kohya /
//! sd-scripts, diffusers / PEFT (ai-toolkit), XLabs, and BFL's own (the FLUX.1 Canny / Depth
//! LoRAs). Each key names one factor of one module; the module maps to a BFL dense layer and to
//! the rows of its weight the delta lands on (the diffusers layout splits BFL's fused qkv and
//! linear1 layers, and orders the final modulation's halves the other way). BFL's files also
//! hold whole tensors that replace the model's ([`replaced`]: the q/k norm scales).

/// Which rows of a BFL weight (out, in) a module's delta covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// The whole weight.
    All,
    /// Part `0..3` (q, k, v) of a fused qkv weight of 3·H rows.
    Qkv(usize),
    /// Part of a single block's linear1 (3·H + MLP rows, H = its input width): q, k, v (0..3,
    /// H rows each) or the MLP input (3).
    Linear1(usize),
    /// The whole final modulation, in diffusers' order `[scale; shift]`: its halves are swapped
    /// into BFL's `[shift; scale]`.
    SwappedHalves,
}

impl Rows {
    /// The row range of a weight of `out` rows and `input` columns; `None` when the weight
    /// cannot hold the part.
    pub fn range(self, out: usize, input: usize) -> Option<std::ops::Range<usize>> {
        match self {
            Rows::All | Rows::SwappedHalves => Some(0..out),
            Rows::Qkv(p) => out
                .is_multiple_of(3)
                .then(|| p * out / 3..(p + 1) * out / 3),
            Rows::Linear1(p) if p < 3 => Some(p * input..(p + 1) * input),
            Rows::Linear1(_) => (out > 3 * input).then_some(3 * input..out),
        }
    }
}

/// Which factor of a module's delta a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Factor {
    /// The down projection A (r, in).
    Down,
    /// The up projection B (out, r).
    Up,
    /// A bias added to the outputs with the delta (out): BFL's and PEFT's `lora_B.bias`.
    UpBias,
    /// kohya's / PEFT's / LyCORIS' alpha (a scalar): the delta is scaled by alpha / r.
    Alpha,
    /// LyCORIS LoHa: ΔW = (w1_a·w1_b) ⊙ (w2_a·w2_b).
    HadaW1A,
    HadaW1B,
    HadaW2A,
    HadaW2B,
    /// LyCORIS LoKr: ΔW = w1 ⊗ w2, each whole or as a product `_a·_b`.
    LokrW1,
    LokrW1A,
    LokrW1B,
    LokrW2,
    LokrW2A,
    LokrW2B,
}

/// A key understood: the module it belongs to (the key without its factor suffix), the BFL layer
/// and rows it changes, and the factor it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub module: String,
    /// The BFL layer's prefix (its weight is `<layer>.weight`).
    pub layer: String,
    pub rows: Rows,
    pub factor: Factor,
}

/// The dense layers of a double block's stream (`img` / `txt`), in BFL names after
/// `double_blocks.{i}.{stream}`.
const STREAM_LAYERS: [&str; 5] = ["_attn.qkv", "_attn.proj", "_mlp.0", "_mlp.2", "_mod.lin"];
/// The dense layers of a single block, after `single_blocks.{j}.`.
const SINGLE_LAYERS: [&str; 3] = ["linear1", "linear2", "modulation.lin"];
/// The dense layers outside the blocks.
const TOP_LAYERS: [&str; 10] = [
    "img_in",
    "txt_in",
    "time_in.in_layer",
    "time_in.out_layer",
    "vector_in.in_layer",
    "vector_in.out_layer",
    "guidance_in.in_layer",
    "guidance_in.out_layer",
    "final_layer.linear",
    "final_layer.adaLN_modulation.1",
];

/// Parses one tensor name of a LoRA file; `None` for a key of no known layout (reported to the
/// user, not an error by itself).
pub fn parse(key: &str) -> Option<Key> {
    kohya(key)
        .or_else(|| peft(key))
        .or_else(|| xlabs(key))
        .or_else(|| bfl(key))
}

/// The BFL tensor a key of a LoRA file replaces whole, if it is one: the q/k RMSNorm scales
/// (`double_blocks.{i}.{img,txt}_attn.norm.{query,key}_norm.scale`,
/// `single_blocks.{j}.norm.{query,key}_norm.scale`), which BFL's Canny / Depth LoRAs carry.
pub fn replaced(key: &str) -> Option<&str> {
    let name = key.strip_prefix("diffusion_model.").unwrap_or(key);
    let norm = name
        .strip_suffix(".query_norm.scale")
        .or_else(|| name.strip_suffix(".key_norm.scale"))?;
    let known = if let Some(rest) = norm.strip_prefix("double_blocks.") {
        let (_, rest) = indexed(rest, '.')?;
        matches!(rest, "img_attn.norm" | "txt_attn.norm")
    } else {
        let (_, rest) = indexed(norm.strip_prefix("single_blocks.")?, '.')?;
        rest == "norm"
    };
    known.then_some(name)
}

fn split_factor<'a>(key: &'a str, suffixes: &[(&str, Factor)]) -> Option<(&'a str, Factor)> {
    suffixes
        .iter()
        .find_map(|(s, f)| key.strip_suffix(s).map(|m| (m, *f)))
}

/// `<index>_<rest>` or `<index>.<rest>`: the block index and what follows.
fn indexed(s: &str, sep: char) -> Option<(usize, &str)> {
    let (i, rest) = s.split_once(sep)?;
    Some((i.parse().ok()?, rest))
}

/// kohya / sd-scripts: `lora_unet_` + the BFL module path with `.` as `_`, then
/// `.lora_down.weight`, `.lora_up.weight`, `.alpha` — or LyCORIS' LoHa (`.hada_w1_a` …) and
/// LoKr (`.lokr_w1` …) factors under the same module names.
fn kohya(key: &str) -> Option<Key> {
    let (module, factor) = split_factor(
        key,
        &[
            (".lora_down.weight", Factor::Down),
            (".lora_up.weight", Factor::Up),
            (".alpha", Factor::Alpha),
            (".hada_w1_a", Factor::HadaW1A),
            (".hada_w1_b", Factor::HadaW1B),
            (".hada_w2_a", Factor::HadaW2A),
            (".hada_w2_b", Factor::HadaW2B),
            (".lokr_w1", Factor::LokrW1),
            (".lokr_w1_a", Factor::LokrW1A),
            (".lokr_w1_b", Factor::LokrW1B),
            (".lokr_w2", Factor::LokrW2),
            (".lokr_w2_a", Factor::LokrW2A),
            (".lokr_w2_b", Factor::LokrW2B),
        ],
    )?;
    let path = module.strip_prefix("lora_unet_")?;
    let flat = |s: &str| s.replace('.', "_");
    let layer = if let Some(rest) = path.strip_prefix("double_blocks_") {
        let (i, rest) = indexed(rest, '_')?;
        let (stream, rest) = rest.split_at(rest.len().min(3));
        let l = STREAM_LAYERS.iter().find(|l| flat(l) == rest)?;
        matches!(stream, "img" | "txt").then(|| format!("double_blocks.{i}.{stream}{l}"))?
    } else if let Some(rest) = path.strip_prefix("single_blocks_") {
        let (j, rest) = indexed(rest, '_')?;
        let l = SINGLE_LAYERS.iter().find(|l| flat(l) == rest)?;
        format!("single_blocks.{j}.{l}")
    } else {
        TOP_LAYERS.iter().find(|l| flat(l) == path)?.to_string()
    };
    Some(Key {
        module: module.to_string(),
        layer,
        rows: Rows::All,
        factor,
    })
}

/// diffusers / PEFT / ai-toolkit: `transformer.` + the diffusers module, then `.lora_A.weight`,
/// `.lora_B.weight` (and `.alpha`, `.lora_B.bias` when a file has them).
fn peft(key: &str) -> Option<Key> {
    let (module, factor) = split_factor(
        key,
        &[
            (".lora_A.weight", Factor::Down),
            (".lora_B.weight", Factor::Up),
            (".lora_B.bias", Factor::UpBias),
            (".alpha", Factor::Alpha),
        ],
    )?;
    let path = module.strip_prefix("transformer.")?;
    let (layer, rows) = if let Some(rest) = path.strip_prefix("transformer_blocks.") {
        let (i, rest) = indexed(rest, '.')?;
        let p = format!("double_blocks.{i}");
        let (l, rows) = match rest {
            "attn.to_q" => ("img_attn.qkv", Rows::Qkv(0)),
            "attn.to_k" => ("img_attn.qkv", Rows::Qkv(1)),
            "attn.to_v" => ("img_attn.qkv", Rows::Qkv(2)),
            "attn.add_q_proj" => ("txt_attn.qkv", Rows::Qkv(0)),
            "attn.add_k_proj" => ("txt_attn.qkv", Rows::Qkv(1)),
            "attn.add_v_proj" => ("txt_attn.qkv", Rows::Qkv(2)),
            "attn.to_out.0" => ("img_attn.proj", Rows::All),
            "attn.to_add_out" => ("txt_attn.proj", Rows::All),
            "ff.net.0.proj" => ("img_mlp.0", Rows::All),
            "ff.net.2" => ("img_mlp.2", Rows::All),
            "ff_context.net.0.proj" => ("txt_mlp.0", Rows::All),
            "ff_context.net.2" => ("txt_mlp.2", Rows::All),
            "norm1.linear" => ("img_mod.lin", Rows::All),
            "norm1_context.linear" => ("txt_mod.lin", Rows::All),
            _ => return None,
        };
        (format!("{p}.{l}"), rows)
    } else if let Some(rest) = path.strip_prefix("single_transformer_blocks.") {
        let (j, rest) = indexed(rest, '.')?;
        let (l, rows) = match rest {
            "attn.to_q" => ("linear1", Rows::Linear1(0)),
            "attn.to_k" => ("linear1", Rows::Linear1(1)),
            "attn.to_v" => ("linear1", Rows::Linear1(2)),
            "proj_mlp" => ("linear1", Rows::Linear1(3)),
            "proj_out" => ("linear2", Rows::All),
            "norm.linear" => ("modulation.lin", Rows::All),
            _ => return None,
        };
        (format!("single_blocks.{j}.{l}"), rows)
    } else {
        let (l, rows) = match path {
            "x_embedder" => ("img_in", Rows::All),
            "context_embedder" => ("txt_in", Rows::All),
            "proj_out" => ("final_layer.linear", Rows::All),
            "norm_out.linear" => ("final_layer.adaLN_modulation.1", Rows::SwappedHalves),
            "time_text_embed.timestep_embedder.linear_1" => ("time_in.in_layer", Rows::All),
            "time_text_embed.timestep_embedder.linear_2" => ("time_in.out_layer", Rows::All),
            "time_text_embed.text_embedder.linear_1" => ("vector_in.in_layer", Rows::All),
            "time_text_embed.text_embedder.linear_2" => ("vector_in.out_layer", Rows::All),
            "time_text_embed.guidance_embedder.linear_1" => ("guidance_in.in_layer", Rows::All),
            "time_text_embed.guidance_embedder.linear_2" => ("guidance_in.out_layer", Rows::All),
            _ => return None,
        };
        (l.to_string(), rows)
    };
    Some(Key {
        module: module.to_string(),
        layer,
        rows,
        factor,
    })
}

/// XLabs: `double_blocks.{i}.processor.{qkv,proj}_lora{1,2}.{down,up}.weight` (1: the image
/// stream, 2: the text stream), optionally under `diffusion_model.`.
fn xlabs(key: &str) -> Option<Key> {
    let (module, factor) = split_factor(
        key,
        &[(".down.weight", Factor::Down), (".up.weight", Factor::Up)],
    )?;
    let path = module.strip_prefix("diffusion_model.").unwrap_or(module);
    let rest = path.strip_prefix("double_blocks.")?;
    let (i, rest) = indexed(rest, '.')?;
    let l = match rest.strip_prefix("processor.")? {
        "qkv_lora1" => "img_attn.qkv",
        "proj_lora1" => "img_attn.proj",
        "qkv_lora2" => "txt_attn.qkv",
        "proj_lora2" => "txt_attn.proj",
        _ => return None,
    };
    Some(Key {
        module: module.to_string(),
        layer: format!("double_blocks.{i}.{l}"),
        rows: Rows::All,
        factor,
    })
}

/// BFL (`LinearLora` of black-forest-labs/flux, the FLUX.1 Canny / Depth LoRAs): the BFL module
/// itself, optionally under `diffusion_model.`, then `.lora_A.weight`, `.lora_B.weight` and
/// `.lora_B.bias`; no alpha.
fn bfl(key: &str) -> Option<Key> {
    let (module, factor) = split_factor(
        key,
        &[
            (".lora_A.weight", Factor::Down),
            (".lora_B.weight", Factor::Up),
            (".lora_B.bias", Factor::UpBias),
        ],
    )?;
    let layer = module.strip_prefix("diffusion_model.").unwrap_or(module);
    let known = if let Some(rest) = layer.strip_prefix("double_blocks.") {
        let (_, rest) = indexed(rest, '.')?;
        let (stream, rest) = rest.split_at(rest.len().min(3));
        matches!(stream, "img" | "txt") && STREAM_LAYERS.contains(&rest)
    } else if let Some(rest) = layer.strip_prefix("single_blocks.") {
        SINGLE_LAYERS.contains(&indexed(rest, '.')?.1)
    } else {
        TOP_LAYERS.contains(&layer)
    };
    known.then(|| Key {
        module: module.to_string(),
        layer: layer.to_string(),
        rows: Rows::All,
        factor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(key: &str) -> Option<(String, Rows, Factor)> {
        parse(key).map(|k| (k.layer, k.rows, k.factor))
    }

    #[test]
    fn keys_of_each_layout_map_to_bfl_layers() {
        let cases = [
            (
                "lora_unet_double_blocks_3_img_attn_qkv.lora_down.weight",
                ("double_blocks.3.img_attn.qkv", Rows::All, Factor::Down),
            ),
            (
                "lora_unet_double_blocks_0_txt_mod_lin.alpha",
                ("double_blocks.0.txt_mod.lin", Rows::All, Factor::Alpha),
            ),
            (
                "lora_unet_single_blocks_37_modulation_lin.lora_up.weight",
                ("single_blocks.37.modulation.lin", Rows::All, Factor::Up),
            ),
            (
                "lora_unet_final_layer_adaLN_modulation_1.lora_up.weight",
                ("final_layer.adaLN_modulation.1", Rows::All, Factor::Up),
            ),
            (
                "transformer.single_transformer_blocks.1.proj_out.lora_A.weight",
                ("single_blocks.1.linear2", Rows::All, Factor::Down),
            ),
            (
                "transformer.proj_out.lora_B.weight",
                ("final_layer.linear", Rows::All, Factor::Up),
            ),
            (
                "transformer.transformer_blocks.2.attn.add_v_proj.lora_B.weight",
                ("double_blocks.2.txt_attn.qkv", Rows::Qkv(2), Factor::Up),
            ),
            (
                "transformer.norm_out.linear.lora_B.weight",
                (
                    "final_layer.adaLN_modulation.1",
                    Rows::SwappedHalves,
                    Factor::Up,
                ),
            ),
            (
                "double_blocks.1.processor.qkv_lora2.up.weight",
                ("double_blocks.1.txt_attn.qkv", Rows::All, Factor::Up),
            ),
            ("img_in.lora_A.weight", ("img_in", Rows::All, Factor::Down)),
            (
                "double_blocks.0.txt_mlp.2.lora_B.bias",
                ("double_blocks.0.txt_mlp.2", Rows::All, Factor::UpBias),
            ),
            (
                "single_blocks.3.modulation.lin.lora_B.weight",
                ("single_blocks.3.modulation.lin", Rows::All, Factor::Up),
            ),
        ];
        for (key, (l, rows, factor)) in cases {
            assert_eq!(layer(key), Some((l.to_string(), rows, factor)), "{key}");
        }
        for unknown in [
            "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
            "lora_unet_double_blocks_0_img_attn_norm.lora_down.weight",
            "lora_unet_double_blocks_x_img_attn_qkv.lora_down.weight",
            "transformer.transformer_blocks.0.attn.norm_q.lora_A.weight",
            "double_blocks.0.processor.qkv_lora3.up.weight",
            "double_blocks.0.img_attn.norm.lora_A.weight",
            "single_blocks.0.linear3.lora_B.weight",
            "something.else",
        ] {
            assert_eq!(layer(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn norm_scales_are_replaced_whole() {
        for key in [
            "double_blocks.4.img_attn.norm.key_norm.scale",
            "double_blocks.0.txt_attn.norm.query_norm.scale",
            "single_blocks.37.norm.key_norm.scale",
        ] {
            assert_eq!(replaced(key), Some(key));
        }
        assert_eq!(
            replaced("diffusion_model.single_blocks.1.norm.query_norm.scale"),
            Some("single_blocks.1.norm.query_norm.scale")
        );
        for key in [
            "double_blocks.0.img_attn.qkv.weight",
            "double_blocks.x.img_attn.norm.key_norm.scale",
            "single_blocks.0.norm.other_norm.scale",
            "final_layer.norm.key_norm.scale",
        ] {
            assert_eq!(replaced(key), None, "{key}");
        }
    }

    #[test]
    fn rows_of_fused_layers() {
        assert_eq!(Rows::Qkv(1).range(192, 64), Some(64..128));
        assert_eq!(Rows::Linear1(2).range(448, 64), Some(128..192));
        assert_eq!(Rows::Linear1(3).range(448, 64), Some(192..448));
        assert_eq!(Rows::Qkv(0).range(100, 64), None);
        assert_eq!(Rows::Linear1(3).range(192, 64), None);
    }
}
