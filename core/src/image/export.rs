//! PNG export carrying the generation parameters, and JPEG export with a quality setting.

use std::io::Write;
use std::path::Path;

use super::RgbImage;
use crate::error::{Error, Result};

/// The parameters an image was generated with, stored as PNG text chunks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationMeta {
    pub prompt: String,
    pub seed: u64,
    pub steps: usize,
    pub guidance: f32,
    pub width: usize,
    pub height: usize,
    pub variant: String,
    /// The LoRAs applied, with their strengths.
    pub loras: Vec<crate::lora::LoraChoice>,
    /// The negative prompt and true CFG scale, when true CFG ran.
    pub negative: Option<crate::pipeline::NegativePrompt>,
}

impl GenerationMeta {
    /// (keyword, text) pairs written into the PNG.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let mut entries = vec![
            ("prompt", self.prompt.clone()),
            ("seed", self.seed.to_string()),
            ("steps", self.steps.to_string()),
            ("guidance", self.guidance.to_string()),
            ("size", format!("{}x{}", self.width, self.height)),
            ("variant", self.variant.clone()),
            (
                "Software",
                format!("flux-engine {}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        if !self.loras.is_empty() {
            let loras = self.loras.iter().map(|l| l.describe());
            entries.push(("loras", loras.collect::<Vec<_>>().join(", ")));
        }
        if let Some(n) = &self.negative {
            entries.push(("negative_prompt", n.prompt.clone()));
            entries.push(("true_cfg_scale", n.scale.to_string()));
        }
        entries
    }
}

fn img_err(e: impl std::fmt::Display) -> Error {
    Error::Image(e.to_string())
}

/// Encodes `img` as PNG with `meta` in UTF-8 text chunks (`iTXt`, so any prompt survives).
pub fn encode_png(img: &RgbImage, meta: Option<&GenerationMeta>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width as u32, img.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        for (k, v) in meta.map(GenerationMeta::entries).unwrap_or_default() {
            enc.add_itxt_chunk(k.to_string(), v).map_err(img_err)?;
        }
        let mut w = enc.write_header().map_err(img_err)?;
        w.write_image_data(&img.data).map_err(img_err)?;
    }
    Ok(out)
}

/// Reads the text chunks of a PNG (for tools and tests).
pub fn read_png_text(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .map_err(img_err)?;
    let info = reader.info();
    let mut out: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    for t in &info.utf8_text {
        out.push((t.keyword.clone(), t.get_text().map_err(img_err)?));
    }
    Ok(out)
}

/// Encodes `img` as baseline JPEG at `quality` (1–100).
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    if !(1..=100).contains(&quality) {
        return Err(Error::invalid(format!(
            "JPEG quality {quality} is outside 1..=100"
        )));
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(
            &img.data,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(img_err)?;
    Ok(out)
}

/// Decodes a PNG or JPEG file's bytes to RGB8.
pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let img = image::load_from_memory(bytes).map_err(img_err)?.to_rgb8();
    Ok(RgbImage {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.into_raw(),
    })
}

/// Writes `img` to `path`: JPEG for `.jpg`/`.jpeg` (quality 95), PNG (with `meta`) otherwise.
pub fn save(path: &Path, img: &RgbImage, meta: Option<&GenerationMeta>) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = match ext.as_str() {
        "jpg" | "jpeg" => encode_jpeg(img, 95)?,
        _ => encode_png(img, meta)?,
    };
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(&bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> RgbImage {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    ((x + y) * 127 / (w + h)) as u8,
                ]);
            }
        }
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn png_roundtrip_keeps_pixels_and_parameters() {
        let img = gradient(48, 32);
        let meta = GenerationMeta {
            prompt: "a café at night, «neon»".into(),
            seed: 42,
            steps: 4,
            guidance: 3.5,
            width: 48,
            height: 32,
            variant: "dev".into(),
            loras: vec![
                crate::lora::LoraChoice {
                    path: "/loras/ink style.safetensors".into(),
                    strength: 0.8,
                },
                crate::lora::LoraChoice {
                    path: "turbo.safetensors".into(),
                    strength: 1.0,
                },
            ],
            negative: Some(crate::pipeline::NegativePrompt {
                prompt: "blurry".into(),
                scale: 4.0,
            }),
        };
        let bytes = encode_png(&img, Some(&meta)).unwrap();
        assert_eq!(decode(&bytes).unwrap(), img);
        let text = read_png_text(&bytes).unwrap();
        let get = |k: &str| text.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
        assert_eq!(get("prompt").as_deref(), Some("a café at night, «neon»"));
        assert_eq!(get("seed").as_deref(), Some("42"));
        assert_eq!(get("steps").as_deref(), Some("4"));
        assert_eq!(get("guidance").as_deref(), Some("3.5"));
        assert_eq!(get("size").as_deref(), Some("48x32"));
        assert_eq!(get("variant").as_deref(), Some("dev"));
        assert_eq!(
            get("loras").as_deref(),
            Some("ink style.safetensors:0.8, turbo.safetensors:1")
        );
    }

    #[test]
    fn jpeg_roundtrip_within_tolerance() {
        // Smooth content at quality 95: the mean error of a correct encoder is ~1 level and no
        // pixel moves far; a channel swap, wrong stride or chroma bug gives errors of tens.
        let img = gradient(64, 48);
        let back = decode(&encode_jpeg(&img, 95).unwrap()).unwrap();
        assert_eq!((back.width, back.height), (64, 48));
        let diffs: Vec<i32> = img
            .data
            .iter()
            .zip(&back.data)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let max = *diffs.iter().max().unwrap();
        assert!(mean < 2.0, "mean abs error {mean}");
        assert!(max <= 12, "max abs error {max}");
        assert!(encode_jpeg(&img, 0).is_err());
        assert!(encode_jpeg(&img, 101).is_err());
    }
}
