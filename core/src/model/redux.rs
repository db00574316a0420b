//! FLUX.1 Redux: an image as extra text tokens (BFL `ReduxImageEncoder`). The image is squashed
//! to the SigLIP tower's square input with Pillow's bicubic filter (no crop, aspect ignored),
//! scaled to `(x/255 − 0.5)/0.5`, run through SigLIP's vision tower (HF layout, `vision_model.*`
//! names, `last_hidden_state`: after the post-layernorm, never the pooling head), and projected
//! to the T5 width by `redux_down(silu(redux_up(·)))`: one token per patch (729 for
//! `siglip-so400m-patch14-384`), appended after the T5 tokens with text ids (0, 0, 0).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::models::siglip::{VisionConfig, VisionModel};

use super::layers::{Dense, Loader};
use super::names::Naming;
use super::store::WeightSet;
use super::weights::ModelWeights;
use crate::error::{Error, Result};
use crate::image::RgbImage;

/// Where the Redux weights are: the SigLIP folder (`config.json`, `model.safetensors`) and the
/// projection file (`flux1-redux-dev.safetensors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduxFiles {
    pub siglip: PathBuf,
    pub projection: PathBuf,
}

/// The SigLIP tower and the Redux projection, ready to turn images into tokens.
pub struct ReduxEncoder {
    tower: VisionModel,
    up: Dense,
    down: Dense,
    image_size: usize,
    dtype: DType,
    device: Device,
}

impl ReduxEncoder {
    /// Loads both parts; `dtype` is the compute dtype of the transformer the tokens feed.
    pub fn load(files: &ReduxFiles, dtype: DType, device: &Device) -> Result<Self> {
        let config_path = files.siglip.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: VisionConfig = serde_json::from_str(&text).map_err(|e| Error::CorruptFile {
            path: config_path.clone(),
            reason: format!("not a SigLIP vision config: {e}"),
        })?;
        let tower_file = files.siglip.join("model.safetensors");
        let tower = Arc::new(ModelWeights::new(
            WeightSet::open("SigLIP", &[tower_file])?,
            Naming::Native,
        ));
        let (vb, errors) = tower.var_builder(dtype, device);
        let tower =
            VisionModel::new(&config, false, vb.pp("vision_model")).map_err(|e| errors.take(e))?;
        let projection = Arc::new(ModelWeights::new(
            WeightSet::open("Redux", std::slice::from_ref(&files.projection))?,
            Naming::Native,
        ));
        let wide = projection.dim0("redux_up.weight")?;
        let text_width = projection.dim0("redux_down.weight")?;
        let l = Loader::expanded(&*projection, dtype, device);
        Ok(Self {
            tower,
            up: l.linear("redux_up", config.hidden_size, wide, true)?,
            down: l.linear("redux_down", wide, text_width, true)?,
            image_size: config.image_size,
            dtype,
            device: device.clone(),
        })
    }

    /// The SigLIP input (1, 3, S, S) for `image`: squashed to S × S (Pillow bicubic), in [−1, 1].
    pub fn pixel_values(&self, image: &RgbImage) -> Result<Tensor> {
        let s = self.image_size;
        let resized = image.resized_bicubic(s, s);
        let v: Vec<f32> = resized
            .data
            .iter()
            .map(|&p| (f32::from(p) / 255.0 - 0.5) / 0.5)
            .collect();
        let t = Tensor::from_vec(v, (s, s, 3), &Device::Cpu)?;
        Ok(t.permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()?
            .to_device(&self.device)?
            .to_dtype(self.dtype)?)
    }

    /// The tower's `last_hidden_state` (1, patches, width) for SigLIP input `pixels`.
    pub fn hidden_state(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(self.tower.forward(pixels)?)
    }

    /// The image's Redux tokens (1, patches, T5 width).
    pub fn tokens(&self, image: &RgbImage) -> Result<Tensor> {
        let hidden = self.hidden_state(&self.pixel_values(image)?)?;
        let up = candle_nn::ops::silu(&self.up.forward(&hidden)?)?;
        self.down.forward(&up)
    }
}

/// The SigLIP folder and Redux file in a model folder, when both are there:
/// `siglip*/` (with `config.json`) beside `flux1-redux*.safetensors`.
pub fn find_in(dir: &Path) -> Option<ReduxFiles> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    };
    let siglip = entries
        .iter()
        .find(|p| name(p).starts_with("siglip") && p.join("config.json").is_file())?;
    let projection = entries
        .iter()
        .find(|p| name(p).starts_with("flux1-redux") && name(p).ends_with(".safetensors"))?;
    Some(ReduxFiles {
        siglip: siglip.clone(),
        projection: projection.clone(),
    })
}
