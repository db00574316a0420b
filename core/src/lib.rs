//! # flux-core
//!
//! The FLUX.1 engine as a plain Rust library: load weights in the layouts users have (BFL /
//! ComfyUI single files or a diffusers folder), encode prompts with T5 and CLIP, sample with the
//! flow-matching Euler sampler, decode with the autoencoder, and export PNG/JPEG.
//!
//! ```no_run
//! use flux_core::{model::{FluxModel, LoadOptions}, pipeline::{self, TextToImage}};
//! let mut model = FluxModel::load_folder("models/flux1-schnell".as_ref(), &LoadOptions::default())?;
//! let out = pipeline::generate(&mut model, &TextToImage::new("a lighthouse at dusk", 42), &mut pipeline::no_hook())?;
//! flux_core::image::export::save("out.png".as_ref(), &out.image, Some(&out.meta))?;
//! # Ok::<(), flux_core::Error>(())
//! ```

pub mod error;
pub mod image;
pub mod interop;
pub mod lora;
pub mod memory;
pub mod model;
pub mod pipeline;
pub mod request;
pub mod runtime;
pub mod sparse;
pub mod text;
pub mod tiny;

pub use error::{Error, Result};
