//! The FLUX transformer: config inferred from the tensors, variant detection, guarded forward.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use parking_lot::Mutex;

use super::layers::{self, Dense, Input, Loader, MlpEmbedder, Modulation, QkNorm};
use super::stream::{self, HostBlock};
use super::weights::ModelWeights;
use crate::error::{Error, Result};
use crate::interop::Fence;
use crate::lora::Adapters;

/// Hyper-parameters of a FLUX transformer (BFL `FluxParams`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Input features per token: the packed latent (64), and for the FLUX.1 tools their
    /// conditioning beside it (Fill 384, Canny/Depth 128).
    pub in_channels: usize,
    /// Packed latent features per token the model predicts (64).
    pub out_channels: usize,
    /// CLIP pooled width (768).
    pub vec_in_dim: usize,
    /// T5 width (4096).
    pub context_in_dim: usize,
    pub hidden_size: usize,
    pub mlp_ratio: f64,
    pub num_heads: usize,
    /// Double-stream blocks.
    pub depth: usize,
    /// Single-stream blocks.
    pub depth_single_blocks: usize,
    /// RoPE dims per id axis; they sum to the head width.
    pub axes_dim: Vec<usize>,
    pub theta: usize,
    pub qkv_bias: bool,
    pub guidance_embed: bool,
}

impl Config {
    /// FLUX.1-dev's transformer (BFL `FluxParams`; schnell is the same without guidance).
    pub fn flux1_dev() -> Self {
        Self {
            in_channels: 64,
            out_channels: 64,
            vec_in_dim: 768,
            context_in_dim: 4096,
            hidden_size: 3072,
            mlp_ratio: 4.0,
            num_heads: 24,
            depth: 19,
            depth_single_blocks: 38,
            axes_dim: FLUX1_AXES.to_vec(),
            theta: 10_000,
            qkv_bias: true,
            guidance_embed: true,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Width of the MLPs.
    pub fn mlp_hidden(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }
}

/// The FLUX.1 tools whose conditioning enters beside the noisy latent, feature-wise (BFL
/// `prepare_fill`, `prepare_control`): no extra tokens, no extra ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Inpainting / outpainting (`flux1-fill-dev`): the masked image's latent (64 features) and
    /// the mask, 8×8 pixels per latent cell (256 features).
    Fill,
    /// Structural conditioning (`flux1-canny-dev`, `flux1-depth-dev`, or dev with BFL's Canny /
    /// Depth LoRA): a control image's latent (64 features).
    Control,
}

impl Tool {
    /// The tool a transformer of `inputs` input and `outputs` output features is, if any.
    pub fn of_widths(inputs: usize, outputs: usize) -> Option<Tool> {
        match (inputs / outputs.max(1), inputs.is_multiple_of(outputs)) {
            (6, true) => Some(Tool::Fill),
            (2, true) => Some(Tool::Control),
            _ => None,
        }
    }
}

impl Tool {
    /// Lower-case name (`fill`, `control`).
    pub fn name(self) -> &'static str {
        match self {
            Tool::Fill => "fill",
            Tool::Control => "control",
        }
    }

    /// Conditioning features per token for a model predicting `out_channels`.
    pub fn features(self, out_channels: usize) -> usize {
        match self {
            Tool::Fill => 5 * out_channels,
            Tool::Control => out_channels,
        }
    }
}

/// Which FLUX.1 model a transformer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Timestep-distilled, no guidance input, unshifted schedule, 4 steps.
    Schnell,
    /// Guidance-distilled (`guidance_in`), shifted schedule, 28 steps.
    Dev,
}

impl Variant {
    /// Lower-case name (`schnell`, `dev`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Schnell => "schnell",
            Variant::Dev => "dev",
        }
    }
}

/// FLUX.1's RoPE axes for its 128-wide heads.
const FLUX1_AXES: [usize; 3] = [16, 56, 56];

/// RoPE axes for a head width: FLUX.1's for 128, otherwise the same proportions
/// (`max(4, head_dim/8)` rounded to even for axis 0, the rest split evenly between rows and columns).
pub fn default_axes(head_dim: usize) -> Vec<usize> {
    if head_dim == 128 {
        return FLUX1_AXES.to_vec();
    }
    let a0 = (head_dim / 8).max(4) / 2 * 2;
    let rest = (head_dim - a0) / 2;
    vec![a0, rest, head_dim - a0 - rest]
}

/// Infers the transformer config from tensor shapes. `axes` overrides the RoPE axes.
pub fn infer_config(w: &ModelWeights, axes: Option<Vec<usize>>) -> Result<Config> {
    let img_in = w.shape("img_in.weight")?;
    let hidden = img_in[0];
    let in_channels = img_in[1];
    let head_dim = w.dim0("double_blocks.0.img_attn.norm.query_norm.scale")?;
    if head_dim == 0 || hidden % head_dim != 0 {
        return Err(Error::UnknownLayout(format!(
            "hidden size {hidden} is not a multiple of the head width {head_dim}"
        )));
    }
    let out_channels = w.dim0("final_layer.linear.weight")?;
    if ![1, 2, 6].contains(&(in_channels / out_channels.max(1)))
        || in_channels % out_channels.max(1) != 0
    {
        return Err(Error::UnknownLayout(format!(
            "the transformer takes {in_channels} input features for {out_channels} outputs: \
             neither a plain FLUX.1 model (as many inputs as outputs), Fill (6×) nor Canny/Depth (2×)"
        )));
    }
    let axes_dim = axes.unwrap_or_else(|| default_axes(head_dim));
    if axes_dim.iter().sum::<usize>() != head_dim || axes_dim.iter().any(|a| a % 2 != 0) {
        return Err(Error::invalid(format!(
            "RoPE axes {axes_dim:?} must be even and sum to the head width {head_dim}"
        )));
    }
    Ok(Config {
        in_channels,
        out_channels,
        vec_in_dim: w.shape("vector_in.in_layer.weight")?[1],
        context_in_dim: w.shape("txt_in.weight")?[1],
        hidden_size: hidden,
        mlp_ratio: w.dim0("double_blocks.0.img_mlp.0.weight")? as f64 / hidden as f64,
        num_heads: hidden / head_dim,
        depth: w.count("double_blocks.{}.img_mod.lin.weight"),
        depth_single_blocks: w.count("single_blocks.{}.modulation.lin.weight"),
        axes_dim,
        theta: 10_000,
        qkv_bias: w.contains("double_blocks.0.img_attn.qkv.bias"),
        guidance_embed: w.contains("guidance_in.in_layer.weight"),
    })
}

/// A visitor of dense layers with their BFL prefixes.
type VisitDense<'a> = dyn FnMut(&str, &mut Dense) -> Result<()> + 'a;
/// A visitor of q/k norms with their BFL prefixes.
type VisitNorm<'a> = dyn FnMut(&str, &mut QkNorm) -> Result<()> + 'a;

/// One stream's weights in a double block.
struct StreamWeights {
    modulation: Modulation,
    qkv: Dense,
    norm: QkNorm,
    proj: Dense,
    mlp_in: Dense,
    mlp_out: Dense,
}

impl StreamWeights {
    fn load(l: &Loader, p: &str, c: &Config) -> Result<Self> {
        let (h, m) = (c.hidden_size, c.mlp_hidden());
        Ok(Self {
            modulation: Modulation::load(l, &format!("{p}_mod.lin"), h, 6)?,
            qkv: l.linear(&format!("{p}_attn.qkv"), h, 3 * h, c.qkv_bias)?,
            norm: QkNorm::load(l, &format!("{p}_attn.norm"), c.head_dim())?,
            proj: l.linear(&format!("{p}_attn.proj"), h, h, true)?,
            mlp_in: l.linear(&format!("{p}_mlp.0"), h, m, true)?,
            mlp_out: l.linear(&format!("{p}_mlp.2"), m, h, true)?,
        })
    }

    /// The qkv projection (B, N, 3·H·D) of the modulated stream, and the modulation chunks.
    fn project(&self, x: &Tensor, vec: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let m = self.modulation.forward(vec)?;
        let qkv = self.qkv.forward(&layers::modulate(x, &m[0], &m[1])?)?;
        Ok((qkv, m))
    }

    /// Calls `f` on each dense layer with its BFL prefix (`p`: `double_blocks.{i}.{img,txt}`).
    fn each_dense(&mut self, p: &str, f: &mut VisitDense) -> Result<()> {
        f(&format!("{p}_mod.lin"), self.modulation.dense_mut())?;
        f(&format!("{p}_attn.qkv"), &mut self.qkv)?;
        f(&format!("{p}_attn.proj"), &mut self.proj)?;
        f(&format!("{p}_mlp.0"), &mut self.mlp_in)?;
        f(&format!("{p}_mlp.2"), &mut self.mlp_out)
    }

    /// Calls `f` on the q/k norm with its BFL prefix (`p` as for [`Self::each_dense`]).
    fn each_norm(&mut self, p: &str, f: &mut VisitNorm) -> Result<()> {
        f(&format!("{p}_attn.norm"), &mut self.norm)
    }

    /// Residual attention output, then the residual MLP on the updated stream.
    fn finish(&self, x: &Tensor, attn: &Tensor, m: &[Tensor]) -> Result<Tensor> {
        let x = layers::gated_residual(x, &self.proj.forward(attn)?, &m[2])?;
        let h = self.mlp_in.forward(&layers::modulate(&x, &m[3], &m[4])?)?;
        let h = self.mlp_out.forward_parts(&[Input::Gelu(&h)])?;
        layers::gated_residual(&x, &h, &m[5])
    }
}

struct DoubleBlock {
    img: StreamWeights,
    txt: StreamWeights,
}

impl DoubleBlock {
    fn forward(
        &self,
        img: &Tensor,
        txt: &Tensor,
        vec: &Tensor,
        pe: &Tensor,
        heads: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (img_qkv, im) = self.img.project(img, vec)?;
        let (txt_qkv, tm) = self.txt.project(txt, vec)?;
        let (q, k, v) = layers::qkv_heads(
            &[(&txt_qkv, &self.txt.norm), (&img_qkv, &self.img.norm)],
            pe,
            heads,
        )?;
        let attn = layers::attention(&q, &k, &v)?;
        let n_txt = txt.dim(1)?;
        let txt_attn = attn.narrow(1, 0, n_txt)?;
        let img_attn = attn.narrow(1, n_txt, img.dim(1)?)?;
        Ok((
            self.img.finish(img, &img_attn, &im)?,
            self.txt.finish(txt, &txt_attn, &tm)?,
        ))
    }
}

struct SingleBlock {
    linear1: Dense,
    linear2: Dense,
    norm: QkNorm,
    modulation: Modulation,
    hidden: usize,
}

impl SingleBlock {
    fn load(l: &Loader, p: &str, c: &Config) -> Result<Self> {
        let (h, m) = (c.hidden_size, c.mlp_hidden());
        Ok(Self {
            linear1: l.linear(&format!("{p}.linear1"), h, 3 * h + m, true)?,
            linear2: l.linear(&format!("{p}.linear2"), h + m, h, true)?,
            norm: QkNorm::load(l, &format!("{p}.norm"), c.head_dim())?,
            modulation: Modulation::load(l, &format!("{p}.modulation.lin"), h, 3)?,
            hidden: h,
        })
    }

    /// Calls `f` on each dense layer with its BFL prefix (`p`: `single_blocks.{j}`).
    fn each_dense(&mut self, p: &str, f: &mut VisitDense) -> Result<()> {
        f(&format!("{p}.linear1"), &mut self.linear1)?;
        f(&format!("{p}.linear2"), &mut self.linear2)?;
        f(&format!("{p}.modulation.lin"), self.modulation.dense_mut())
    }

    /// Calls `f` on the q/k norm with its BFL prefix (`p`: `single_blocks.{j}`).
    fn each_norm(&mut self, p: &str, f: &mut VisitNorm) -> Result<()> {
        f(&format!("{p}.norm"), &mut self.norm)
    }

    /// The block applied to the joint sequence `x`; only rows `keep..` of the result are
    /// computed and returned (all of them still serve as attention keys and values). The last
    /// block keeps only the image rows: its text rows' MLP and output projection would be dropped.
    fn forward(
        &self,
        x: &Tensor,
        vec: &Tensor,
        pe: &Tensor,
        heads: usize,
        keep: usize,
    ) -> Result<Tensor> {
        let m = self.modulation.forward(vec)?;
        let xm = layers::modulate(x, &m[0], &m[1])?;
        let (n, qkv_width) = (x.dim(1)?, 3 * self.hidden);
        let width = self.linear1.outputs()?;
        // Two outputs rather than one of both widths: at ~1k tokens each stays under glibc's
        // 32 MiB mmap limit, so its memory is reused rather than mapped and page-faulted anew
        // in every block (2% of the forward).
        let qkv = self.linear1.forward_columns(&xm, 0..qkv_width)?;
        let mlp = self
            .linear1
            .forward_columns(&xm.narrow(1, keep, n - keep)?, qkv_width..width)?;
        let (q, k, v) = layers::qkv_heads(&[(&qkv, &self.norm)], pe, heads)?;
        let attn = layers::attention(&q, &k, &v)?.narrow(1, keep, n - keep)?;
        let out = self
            .linear2
            .forward_parts(&[Input::Value(&attn), Input::Gelu(&mlp)])?;
        layers::gated_residual(&x.narrow(1, keep, n - keep)?, &out, &m[2])
    }
}

/// Where a transformer's blocks live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockResidency {
    /// Every block in working form on the compute device.
    Resident,
    /// The first `resident` blocks in working form; the others kept in host memory in their
    /// stored form (bf16, fp8 or GGUF blocks), `window` (at least 1) of them in working form at
    /// a time, the next built on another thread while the current one computes.
    Streamed { window: usize, resident: usize },
    /// As streamed, but the streamed blocks are read from the model files for every forward
    /// pass (the system's file cache keeps what memory allows).
    FromFiles { window: usize, resident: usize },
}

impl BlockResidency {
    /// Blocks streamed from host memory with `window`, none kept resident.
    pub fn streamed(window: usize) -> Self {
        Self::Streamed {
            window,
            resident: 0,
        }
    }

    /// Blocks read from the files with `window`, none kept resident.
    pub fn from_files(window: usize) -> Self {
        Self::FromFiles {
            window,
            resident: 0,
        }
    }

    /// How many of `n` blocks stay resident, and the window of the others.
    fn split(self, n: usize) -> (usize, usize) {
        match self {
            Self::Resident => (n, 1),
            Self::Streamed { window, resident } | Self::FromFiles { window, resident } => {
                (resident.min(n), window.max(1))
            }
        }
    }
}

/// A block in working form (boxed: the two kinds differ much in size, and slots move them).
enum Block {
    Double(Box<DoubleBlock>),
    Single(Box<SingleBlock>),
}

/// Where one block is.
enum Slot {
    /// In working form.
    Working(Block),
    /// In host memory in its stored form.
    Host(HostBlock),
    /// In the model files.
    Files,
}

/// The blocks: resident ones first, then streamed ones (from host memory or the files).
struct Blocks {
    slots: Vec<Slot>,
    residency: BlockResidency,
}

/// A loaded FLUX transformer.
pub struct FluxTransformer {
    img_in: Dense,
    txt_in: Dense,
    time_in: MlpEmbedder,
    vector_in: MlpEmbedder,
    guidance_in: Option<MlpEmbedder>,
    /// Behind a lock so that residency can change between forward passes.
    blocks: Mutex<Blocks>,
    final_linear: Dense,
    final_modulation: Dense,
    /// The files, which blocks are read from again when their residency changes.
    weights: Arc<ModelWeights>,
    device: Device,
    config: Config,
    variant: Variant,
    kontext: bool,
    dtype: DType,
    /// The LoRAs in force: resident layers hold theirs; streamed blocks take theirs when built.
    adapters: Option<Arc<Adapters>>,
}

/// Width of the timestep / guidance embedding.
const TIME_DIM: usize = 256;

impl FluxTransformer {
    /// Builds the model from `weights` with its blocks as `residency` says. `kontext` records
    /// whether it was trained for Kontext editing. On the CPU, compact weights (GGUF, fp8,
    /// bf16/f16 under f32) are expanded to the compute dtype: resident, all of them; streamed,
    /// only the blocks of the window.
    pub fn load(
        weights: &Arc<ModelWeights>,
        config: Config,
        kontext: bool,
        dtype: DType,
        device: &Device,
        residency: BlockResidency,
    ) -> Result<Self> {
        let l = Loader::expanded(&**weights, dtype, device);
        let c = &config;
        let h = c.hidden_size;
        let guidance_in = match c.guidance_embed {
            true => Some(MlpEmbedder::load(&l, "guidance_in", TIME_DIM, h)?),
            false => None,
        };
        let model = Self {
            img_in: l.linear("img_in", c.in_channels, h, true)?,
            txt_in: l.linear("txt_in", c.context_in_dim, h, true)?,
            time_in: MlpEmbedder::load(&l, "time_in", TIME_DIM, h)?,
            vector_in: MlpEmbedder::load(&l, "vector_in", c.vec_in_dim, h)?,
            guidance_in,
            blocks: Mutex::new(Blocks {
                slots: Vec::new(),
                residency: BlockResidency::Resident,
            }),
            final_linear: l.linear("final_layer.linear", h, c.out_channels, true)?,
            final_modulation: l.linear("final_layer.adaLN_modulation.1", h, 2 * h, true)?,
            variant: if c.guidance_embed {
                Variant::Dev
            } else {
                Variant::Schnell
            },
            weights: weights.clone(),
            device: device.clone(),
            config,
            kontext,
            dtype,
            adapters: None,
        };
        model.set_residency(residency)?;
        log::info!(
            "FLUX transformer: {}{} (hidden {}, {} double + {} single blocks, kontext {kontext}, {dtype:?}, blocks {residency:?})",
            model.variant.name(),
            model.tool().map_or(String::new(), |t| format!(" {}", t.name())),
            h,
            model.config.depth,
            model.config.depth_single_blocks
        );
        Ok(model)
    }

    /// Number of blocks (double, then single).
    fn block_count(&self) -> usize {
        self.config.depth + self.config.depth_single_blocks
    }

    /// Block `i` in working form, read from `source`.
    fn build_block(&self, source: &dyn layers::WeightSource, i: usize) -> Result<Block> {
        let l = Loader::expanded(source, self.dtype, &self.device)
            .with_adapters(self.adapters.as_deref());
        let c = &self.config;
        Ok(match i.checked_sub(c.depth) {
            None => {
                let p = format!("double_blocks.{i}");
                Block::Double(Box::new(DoubleBlock {
                    img: StreamWeights::load(&l, &format!("{p}.img"), c)?,
                    txt: StreamWeights::load(&l, &format!("{p}.txt"), c)?,
                }))
            }
            Some(j) => Block::Single(Box::new(SingleBlock::load(
                &l,
                &format!("single_blocks.{j}"),
                c,
            )?)),
        })
    }

    /// Block `i`'s tensors in host memory in their stored form, page-locked when the blocks
    /// are uploaded to a CUDA device.
    fn host_block(&self, i: usize) -> Result<HostBlock> {
        let names = block_tensors(&self.config, i)
            .into_iter()
            .filter(|(name, _)| self.weights.contains(name))
            .collect::<Vec<_>>();
        let mut block = HostBlock::read(&self.weights, &names, self.dtype)?;
        block.pin_for(self.device());
        Ok(block)
    }

    /// The shape of the tensor `name` (a BFL name), if the model has it.
    pub fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        tensor_shapes(&self.config)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    /// The shape (out, in) of the dense layer `layer` (a BFL prefix), if the model has it.
    pub fn layer_shape(&self, layer: &str) -> Option<(usize, usize)> {
        let shape = self.tensor_shape(&format!("{layer}.weight"))?;
        Some((shape[0], shape[1]))
    }

    /// Applies `adapters` (`None`: none), replacing the previous LoRAs exactly. With
    /// `allow_merge`, they are merged into the weights when every layer they change is resident
    /// and held whole (f32, bf16 on the GPU); otherwise every layer runs its LoRA as a low-rank
    /// branch (quantized weights, packed CPU weights, streamed blocks, which take theirs as they
    /// are built). Tensors they replace whole (norm scales) are swapped in, the originals kept.
    /// LoRAs that widen `img_in` (BFL's Canny / Depth LoRAs) make the model the tool of its new
    /// input width. Returns whether they were merged.
    pub fn set_adapters(
        &mut self,
        adapters: Option<Arc<Adapters>>,
        allow_merge: bool,
    ) -> Result<bool> {
        let mut merge = allow_merge && self.residency() == BlockResidency::Resident;
        if let Some(a) = &adapters {
            self.each_resident(
                &mut |name, dense| {
                    merge &= a.get(name).is_none() || dense.can_merge();
                    Ok(())
                },
                &mut |_, _| Ok(()),
            )?;
        }
        let (dtype, device) = (self.dtype, self.device.clone());
        let wanted = adapters.as_deref();
        self.each_resident(
            &mut |name, dense| {
                dense.set_adapter(wanted.and_then(|a| a.get(name)), merge, (dtype, &device))
            },
            &mut |prefix, norm| norm.set_replaced(prefix, wanted),
        )?;
        self.adapters = adapters;
        Ok(merge)
    }

    /// The input features `img_in` reads with `adapters` on.
    fn inputs_with(&self, adapters: Option<&Adapters>) -> usize {
        let widened = adapters.and_then(Adapters::widened_inputs);
        widened.map_or(self.config.in_channels, |w| w.max(self.config.in_channels))
    }

    /// Bytes merging `adapters` holds besides the weights: the originals of the layers they
    /// change, kept to be put back exactly.
    pub fn merge_cost(&self, adapters: &Adapters) -> u64 {
        let weight_bytes = self.dtype.size_in_bytes() as u64;
        adapters
            .layers()
            .filter_map(|layer| self.layer_shape(layer))
            .map(|(out, input)| (out * input) as u64 * weight_bytes)
            .sum()
    }

    /// The LoRAs in force, with their strengths.
    pub fn loras(&self) -> &[crate::lora::LoraChoice] {
        self.adapters.as_ref().map_or(&[], |a| a.sources())
    }

    /// Calls `dense` on every dense layer and `norm` on every q/k norm held in working form, with
    /// their BFL prefixes.
    fn each_resident(&mut self, dense: &mut VisitDense, norm: &mut VisitNorm) -> Result<()> {
        dense("img_in", &mut self.img_in)?;
        dense("txt_in", &mut self.txt_in)?;
        let embedders = [
            Some(("time_in", &mut self.time_in)),
            Some(("vector_in", &mut self.vector_in)),
            self.guidance_in.as_mut().map(|g| ("guidance_in", g)),
        ];
        for (prefix, embedder) in embedders.into_iter().flatten() {
            for (name, layer) in embedder.dense_mut() {
                dense(&format!("{prefix}.{name}"), layer)?;
            }
        }
        dense("final_layer.linear", &mut self.final_linear)?;
        dense("final_layer.adaLN_modulation.1", &mut self.final_modulation)?;
        let depth = self.config.depth;
        for (i, slot) in self.blocks.get_mut().slots.iter_mut().enumerate() {
            match slot {
                Slot::Working(Block::Double(b)) => {
                    for (stream, weights) in [("img", &mut b.img), ("txt", &mut b.txt)] {
                        let p = format!("double_blocks.{i}.{stream}");
                        weights.each_dense(&p, dense)?;
                        weights.each_norm(&p, norm)?;
                    }
                }
                Slot::Working(Block::Single(b)) => {
                    let p = format!("single_blocks.{}", i - depth);
                    b.each_dense(&p, dense)?;
                    b.each_norm(&p, norm)?;
                }
                Slot::Host(_) | Slot::Files => {}
            }
        }
        Ok(())
    }

    /// Where the blocks live now.
    pub fn residency(&self) -> BlockResidency {
        self.blocks.lock().residency
    }

    /// Moves the blocks to `residency` (between forward passes) one block at a time, so that at
    /// most one block more than either residency holds is alive meanwhile. A block is built from
    /// its host copy when it has one, else from the files.
    pub fn set_residency(&self, residency: BlockResidency) -> Result<()> {
        let mut blocks = self.blocks.lock();
        let n = self.block_count();
        let (resident, _) = residency.split(n);
        blocks.slots.resize_with(n, || Slot::Files);
        for i in 0..n {
            let old = std::mem::replace(&mut blocks.slots[i], Slot::Files);
            blocks.slots[i] = match (old, i < resident, residency) {
                (Slot::Working(b), true, _) => Slot::Working(b),
                (Slot::Host(h), true, _) => Slot::Working(self.build_block(&h, i)?),
                (Slot::Files, true, _) => Slot::Working(self.build_block(&*self.weights, i)?),
                (_, false, BlockResidency::FromFiles { .. }) => Slot::Files,
                (Slot::Host(h), false, _) => Slot::Host(h),
                (_, false, _) => Slot::Host(self.host_block(i)?),
            };
        }
        blocks.residency = residency;
        Ok(())
    }

    /// Calls `run` on every block in order: resident, or built within the streaming window from
    /// host memory or the files.
    fn each_block(&self, mut run: impl FnMut(usize, &Block) -> Result<()>) -> Result<()> {
        let blocks = self.blocks.lock();
        let (resident, window) = blocks.residency.split(blocks.slots.len());
        let (kept, streamed) = blocks.slots.split_at(resident);
        for (i, slot) in kept.iter().enumerate() {
            match slot {
                Slot::Working(block) => run(i, block)?,
                _ => return Err(Error::invalid(format!("block {i} is not resident"))),
            }
        }
        // A block built on the prefetch thread comes with the fence of its uploads, which the
        // compute waits for (on CUDA the two threads queue on different streams).
        stream::pipelined(
            streamed.len(),
            window,
            |j| {
                let block = match &streamed[j] {
                    Slot::Host(h) => self.build_block(h, resident + j),
                    _ => self.build_block(&*self.weights, resident + j),
                }?;
                Ok((block, Fence::record(&self.device)?))
            },
            |j, (block, uploaded)| {
                uploaded.wait(&self.device)?;
                run(resident + j, &block)
            },
        )
    }

    /// The model's config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Schnell or dev.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The FLUX.1 tool this model is (Fill, Canny/Depth), read from its input width, which a
    /// control LoRA in force widens.
    pub fn tool(&self) -> Option<Tool> {
        Tool::of_widths(
            self.inputs_with(self.adapters.as_deref()),
            self.config.out_channels,
        )
    }

    /// Whether the model is Kontext-trained.
    pub fn is_kontext(&self) -> bool {
        self.kontext
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The compute device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// An estimate of the activation bytes a forward pass over `tokens` keeps alive at once
    /// (see [`activation_bytes`]).
    pub fn activation_bytes(&self, tokens: usize) -> u64 {
        activation_bytes(&self.config, self.dtype, self.device.is_cpu(), tokens)
    }

    /// The conditioning vector: time + guidance (dev) + pooled-text embeddings, (B, hidden).
    pub fn conditioning_vector(
        &self,
        timesteps: &Tensor,
        y: &Tensor,
        guidance: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut vec = self.time_in.forward(&layers::timestep_embedding(
            timesteps, TIME_DIM, self.dtype,
        )?)?;
        match (&self.guidance_in, guidance) {
            (Some(g_in), Some(g)) => {
                vec =
                    (vec + g_in.forward(&layers::timestep_embedding(g, TIME_DIM, self.dtype)?)?)?
            }
            (Some(_), None) => return Err(Error::invalid("a dev model needs a guidance value")),
            (None, _) => {}
        }
        Ok((vec + self.vector_in.forward(y)?)?)
    }

    /// RoPE table for text ids followed by image ids.
    pub fn rope(&self, txt_ids: &Tensor, img_ids: &Tensor) -> Result<Tensor> {
        layers::rope_table(
            &Tensor::cat(&[txt_ids, img_ids], 1)?,
            &self.config.axes_dim,
            self.config.theta as f64,
        )
    }

    /// One forward pass: predicted velocity for the `img` tokens.
    ///
    /// `timesteps` (B,) in [0, 1]; `guidance` (B,) is required by dev models and ignored by schnell.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        img: &Tensor,
        img_ids: &Tensor,
        txt: &Tensor,
        txt_ids: &Tensor,
        timesteps: &Tensor,
        y: &Tensor,
        guidance: Option<&Tensor>,
    ) -> Result<Tensor> {
        let heads = self.config.num_heads;
        let vec = self.conditioning_vector(timesteps, y, guidance)?;
        let pe = self.rope(txt_ids, img_ids)?;
        let mut img = self.img_in.forward(img)?;
        let mut txt = self.txt_in.forward(txt)?;
        // The joint sequence of the single blocks, and how many of its rows still hold text
        // tokens: the last single block drops them.
        let mut joint: Option<(Tensor, usize)> = None;
        let last = self.block_count() - 1;
        self.each_block(|i, block| {
            match block {
                Block::Double(b) => (img, txt) = b.forward(&img, &txt, &vec, &pe, heads)?,
                Block::Single(b) => {
                    let (x, n_txt) = match joint.take() {
                        Some(j) => j,
                        None => (Tensor::cat(&[&txt, &img], 1)?, txt.dim(1)?),
                    };
                    let keep = if i == last { n_txt } else { 0 };
                    joint = Some((b.forward(&x, &vec, &pe, heads, keep)?, n_txt - keep));
                }
            }
            Ok(())
        })?;
        let (x, n_txt) = match joint {
            Some(j) => j,
            None => (Tensor::cat(&[&txt, &img], 1)?, txt.dim(1)?),
        };
        let x = x.narrow(1, n_txt, x.dim(1)? - n_txt)?;
        let m = self
            .final_modulation
            .forward(&candle_nn::ops::silu(&vec)?)?
            .unsqueeze(1)?
            .chunk(2, 2)?;
        self.final_linear
            .forward(&layers::modulate(&x, &m[0], &m[1])?)
    }
}

/// An estimate of the activation bytes a forward pass of a `c` transformer over `tokens` (text
/// and image) keeps alive at once in `dtype`: about 16 hidden-wide values per token through a
/// block, and off the CPU, where attention may build the whole score matrix, that matrix.
pub fn activation_bytes(c: &Config, dtype: DType, on_cpu: bool, tokens: usize) -> u64 {
    let (n, h) = (tokens as u64, c.hidden_size as u64);
    let scores = match on_cpu {
        true => 0,
        false => c.num_heads as u64 * n * n,
    };
    (16 * n * h + scores) * dtype.size_in_bytes() as u64
}

/// The block (double blocks first, then single blocks) a BFL tensor name belongs to.
pub fn block_of(c: &Config, name: &str) -> Option<usize> {
    let index = |rest: &str| rest.split('.').next()?.parse::<usize>().ok();
    if let Some(rest) = name.strip_prefix("double_blocks.") {
        return index(rest);
    }
    Some(c.depth + index(name.strip_prefix("single_blocks.")?)?)
}

/// The tensors of block `i` (double blocks first, then single blocks) with `c`'s shapes.
pub fn block_tensors(c: &Config, i: usize) -> Vec<(String, Vec<usize>)> {
    tensor_shapes(c)
        .into_iter()
        .filter(|(name, _)| block_of(c, name) == Some(i))
        .collect()
}

/// Every tensor of a BFL-named transformer with `c`'s shapes, in a fixed order.
pub fn tensor_shapes(c: &Config) -> Vec<(String, Vec<usize>)> {
    let (h, m, d) = (c.hidden_size, c.mlp_hidden(), c.head_dim());
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut linear = |name: String, i: usize, o: usize| {
        out.push((format!("{name}.weight"), vec![o, i]));
        out.push((format!("{name}.bias"), vec![o]));
    };
    linear("img_in".into(), c.in_channels, h);
    linear("txt_in".into(), c.context_in_dim, h);
    let mut embedders = vec![("time_in", TIME_DIM), ("vector_in", c.vec_in_dim)];
    if c.guidance_embed {
        embedders.push(("guidance_in", TIME_DIM));
    }
    for (e, input) in embedders {
        linear(format!("{e}.in_layer"), input, h);
        linear(format!("{e}.out_layer"), h, h);
    }
    for i in 0..c.depth {
        for s in ["img", "txt"] {
            let p = format!("double_blocks.{i}.{s}");
            linear(format!("{p}_mod.lin"), h, 6 * h);
            linear(format!("{p}_attn.qkv"), h, 3 * h);
            linear(format!("{p}_attn.proj"), h, h);
            linear(format!("{p}_mlp.0"), h, m);
            linear(format!("{p}_mlp.2"), m, h);
        }
    }
    for i in 0..c.depth_single_blocks {
        let p = format!("single_blocks.{i}");
        linear(format!("{p}.linear1"), h, 3 * h + m);
        linear(format!("{p}.linear2"), h + m, h);
        linear(format!("{p}.modulation.lin"), h, 3 * h);
    }
    linear("final_layer.linear".into(), h, c.out_channels);
    linear("final_layer.adaLN_modulation.1".into(), h, 2 * h);
    for i in 0..c.depth {
        for s in ["img", "txt"] {
            for n in ["query_norm", "key_norm"] {
                out.push((
                    format!("double_blocks.{i}.{s}_attn.norm.{n}.scale"),
                    vec![d],
                ));
            }
        }
    }
    for i in 0..c.depth_single_blocks {
        for n in ["query_norm", "key_norm"] {
            out.push((format!("single_blocks.{i}.norm.{n}.scale"), vec![d]));
        }
    }
    out
}
