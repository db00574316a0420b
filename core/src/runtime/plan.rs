//! Residency plans: where each part of a model lives for a memory budget, chosen from the bytes
//! the file headers promise before anything large is allocated.
//!
//! The planner tries, fastest first: everything resident; (off the CPU) the text encoders kept on
//! the CPU; the text encoders released after encoding; then the transformer's blocks streamed
//! from host memory with a window of [`MAX_WINDOW`] blocks, then 1; then read from the model
//! files for every step (the system's file cache keeps what memory allows) — each with the
//! autoencoder working on the whole image, then tile by tile. The budget bounds what stays allocated through
//! a job (weights and an estimate of the activations); text encoders that are released after
//! encoding are resident only while a new prompt is encoded.

use super::job::JobRequest;
use crate::model::autoencoder::AutoEncoder;
use crate::model::transformer::FluxTransformer;
use crate::model::{BlockResidency, ComponentBytes};

/// Where the text encoders live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPlacement {
    /// On the compute device, kept between jobs.
    Resident,
    /// Loaded to encode a new prompt, released right after (embeddings stay cached).
    Released,
    /// On the CPU (in f32, compact T5 weights kept compact) while the transformer computes on
    /// the GPU: T5 runs once per prompt.
    Host,
}

/// Where each part of a model lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub text: TextPlacement,
    pub blocks: BlockResidency,
    /// Whether the autoencoder encodes and decodes large images tile by tile.
    pub tiled_vae: bool,
}

/// Activation bytes a job needs at its peak, estimated per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// A transformer forward pass.
    pub transformer: u64,
    /// The autoencoder on the whole image.
    pub vae: u64,
    /// The autoencoder on one tile.
    pub vae_tiled: u64,
}

impl Work {
    /// No activations (what a model load plans for).
    pub const NONE: Work = Work {
        transformer: 0,
        vae: 0,
        vae_tiled: 0,
    };

    /// The peak with the autoencoder tiled or not.
    pub fn peak(&self, tiled_vae: bool) -> u64 {
        let vae = match tiled_vae {
            true => self.vae_tiled,
            false => self.vae,
        };
        self.transformer.max(vae)
    }
}

impl Plan {
    /// Everything on the compute device.
    pub const RESIDENT: Plan = Plan {
        text: TextPlacement::Resident,
        blocks: BlockResidency::Resident,
        tiled_vae: false,
    };

    /// Bytes of the transformer on the compute device, and of its blocks in host memory.
    pub fn transformer_bytes(&self, b: &ComponentBytes) -> (u64, u64) {
        let streamed = |window: usize| b.transformer_base + window.max(1) as u64 * b.largest_block;
        match self.blocks {
            BlockResidency::Resident => (b.transformer, 0),
            BlockResidency::Streamed { window } => (streamed(window), b.stored_blocks),
            BlockResidency::FromFiles { window } => (streamed(window), 0),
        }
    }

    /// Memory the plan keeps allocated through a job with `work`'s activations.
    pub fn need(&self, b: &ComponentBytes, work: &Work, on_cpu: bool) -> Need {
        let (transformer, mut host) = self.transformer_bytes(b);
        let mut device = transformer + b.autoencoder + work.peak(self.tiled_vae);
        match self.text {
            TextPlacement::Resident => device += b.text_encoders,
            TextPlacement::Host => host += b.text_encoders_host,
            TextPlacement::Released => {}
        }
        match on_cpu {
            true => Need {
                device: device + host,
                host: 0,
            },
            false => Need { device, host },
        }
    }

    /// A short description for logs and events.
    pub fn describe(&self) -> String {
        let text = match self.text {
            TextPlacement::Resident => "text encoders resident",
            TextPlacement::Released => "text encoders released after encoding",
            TextPlacement::Host => "text encoders on the CPU",
        };
        let vae = match self.tiled_vae {
            true => ", autoencoder tiled",
            false => "",
        };
        match self.blocks {
            BlockResidency::Resident => format!("transformer resident, {text}{vae}"),
            BlockResidency::Streamed { window } => {
                format!("transformer blocks streamed ({window} at a time), {text}{vae}")
            }
            BlockResidency::FromFiles { window } => {
                format!("transformer blocks read from the files ({window} at a time), {text}{vae}")
            }
        }
    }
}

/// Bytes a plan needs on the compute device (on the CPU: everything) and in host memory
/// besides (only off the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub device: u64,
    pub host: u64,
}

/// The memory a plan must fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The compute device's budget (on the CPU: the whole budget).
    pub budget: u64,
    /// Host memory available besides (ignored on the CPU).
    pub host: u64,
    pub on_cpu: bool,
}

impl Limits {
    fn fits(&self, need: Need) -> bool {
        need.device <= self.budget && (self.on_cpu || need.host <= self.host)
    }
}

/// The widest streaming window the planner picks: one block computing, the next being built.
pub const MAX_WINDOW: usize = 2;

/// The plans the planner considers, fastest first.
pub fn candidates(on_cpu: bool) -> Vec<Plan> {
    let mut texts = vec![TextPlacement::Released];
    if !on_cpu {
        texts.insert(0, TextPlacement::Host);
    }
    let mut placements = vec![(TextPlacement::Resident, BlockResidency::Resident)];
    placements.extend(texts.iter().map(|&t| (t, BlockResidency::Resident)));
    for window in (1..=MAX_WINDOW).rev() {
        let blocks = BlockResidency::Streamed { window };
        placements.extend(texts.iter().map(|&t| (t, blocks)));
    }
    for window in (1..=MAX_WINDOW).rev() {
        let blocks = BlockResidency::FromFiles { window };
        placements.extend(texts.iter().map(|&t| (t, blocks)));
    }
    placements
        .into_iter()
        .flat_map(|(text, blocks)| {
            [false, true].map(|tiled_vae| Plan {
                text,
                blocks,
                tiled_vae,
            })
        })
        .collect()
}

/// The plan of `plans` that needs the least memory (device and host together).
pub fn smallest(plans: &[Plan], b: &ComponentBytes, work: &Work, on_cpu: bool) -> Plan {
    *plans
        .iter()
        .min_by_key(|p| {
            let n = p.need(b, work, on_cpu);
            n.device + n.host
        })
        .expect("at least one plan")
}

/// The fastest plan that fits `limits` with `work` bytes of activations, or `forced` when the
/// host chose one (which must fit too). The error states what the smallest plan needs and what
/// is available.
pub fn choose(
    b: &ComponentBytes,
    work: &Work,
    limits: Limits,
    forced: Option<Plan>,
) -> Result<Plan, String> {
    let on_cpu = limits.on_cpu;
    let plans = match forced {
        Some(p) => vec![p],
        None => candidates(on_cpu),
    };
    if let Some(p) = plans.iter().find(|p| limits.fits(p.need(b, work, on_cpu))) {
        return Ok(*p);
    }
    let smallest = smallest(&plans, b, work, on_cpu);
    let need = smallest.need(b, work, on_cpu);
    let what = match forced {
        Some(_) => "the plan the host chose",
        None => "even with the smallest plan",
    };
    Err(match on_cpu {
        true => format!(
            "the model needs {} bytes ({what}: {}), more than the {} bytes available",
            need.device,
            smallest.describe(),
            limits.budget
        ),
        false => format!(
            "the model needs {} bytes of device memory and {} bytes of host memory ({what}: {}), but {} and {} bytes are available",
            need.device,
            need.host,
            smallest.describe(),
            limits.budget,
            limits.host
        ),
    })
}

/// An estimate of the activation bytes `request` needs, with `t5_len` text tokens: the
/// transformer over its text and image tokens, the autoencoder over its pixels, whole or tiled.
pub fn job_work(
    transformer: &FluxTransformer,
    ae: &AutoEncoder,
    request: &JobRequest,
    t5_len: usize,
) -> Work {
    let (pixels, references) = match request {
        JobRequest::TextToImage(r) => (r.width * r.height, 0),
        JobRequest::ImageToImage(r) => (r.base.width * r.base.height, 0),
        JobRequest::Edit(r) => {
            let first = r.references.first().map_or(0, |i| i.width * i.height);
            let out = r.size.map_or(first, |(w, h)| w * h);
            (out, r.references.iter().map(|i| i.width * i.height).sum())
        }
        _ => (0, 0),
    };
    // One token per 16×16 pixels (8× the autoencoder, 2×2 packing).
    let tokens = t5_len + (pixels + references) / 256;
    let largest = pixels.max(references);
    let dtype = transformer.dtype();
    Work {
        transformer: transformer.activation_bytes(tokens),
        vae: ae.activation_bytes(largest, dtype, false),
        vae_tiled: ae.activation_bytes(largest, dtype, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1 << 30;

    /// FLUX.1-dev-like figures: 24 GB of bf16 transformer in 57 blocks, 9.5 GB of encoders.
    fn bytes() -> ComponentBytes {
        ComponentBytes {
            transformer: 24 * GB,
            transformer_base: GB / 4,
            largest_block: GB * 7 / 10,
            stored_blocks: 24 * GB - GB / 4,
            autoencoder: GB / 6,
            text_encoders: 19 * GB / 2,
            text_encoders_host: 5 * GB,
        }
    }

    fn pick(budget: u64, host: u64, on_cpu: bool) -> Result<Plan, String> {
        let limits = Limits {
            budget,
            host,
            on_cpu,
        };
        choose(&bytes(), &Work::NONE, limits, None)
    }

    #[test]
    fn the_fastest_plan_that_fits_is_chosen() {
        let gpu = |budget| pick(budget, 64 * GB, false).unwrap();
        assert_eq!(gpu(40 * GB), Plan::RESIDENT);
        let host_text = Plan {
            text: TextPlacement::Host,
            blocks: BlockResidency::Resident,
            tiled_vae: false,
        };
        assert_eq!(gpu(25 * GB), host_text);
        let streamed = |window| Plan {
            text: TextPlacement::Host,
            blocks: BlockResidency::Streamed { window },
            tiled_vae: false,
        };
        assert_eq!(gpu(8 * GB), streamed(2));
        assert_eq!(gpu(GB * 6 / 5), streamed(1));
        // Too little host memory for the encoders there: released after encoding instead.
        let plan = pick(8 * GB, 25 * GB, false).unwrap();
        assert_eq!(plan.text, TextPlacement::Released);
        let err = pick(GB / 2, 64 * GB, false).unwrap_err();
        assert!(err.contains("bytes of device memory"), "{err}");
        // On the CPU everything counts against one budget, and blocks work in f32 (twice
        // their bf16 stored size).
        let cpu = ComponentBytes {
            transformer: 48 * GB,
            transformer_base: GB / 2,
            largest_block: GB * 14 / 10,
            stored_blocks: 24 * GB,
            ..bytes()
        };
        let limits = |budget| Limits {
            budget,
            host: 0,
            on_cpu: true,
        };
        let pick = |budget| choose(&cpu, &Work::NONE, limits(budget), None);
        assert_eq!(pick(60 * GB), Ok(Plan::RESIDENT));
        let plan = pick(50 * GB).unwrap();
        assert_eq!(plan.blocks, BlockResidency::Resident);
        assert_eq!(plan.text, TextPlacement::Released);
        let plan = pick(30 * GB).unwrap();
        assert_eq!(plan.blocks, BlockResidency::Streamed { window: 2 });
        let plan = pick(53 * GB / 2).unwrap();
        assert_eq!(plan.blocks, BlockResidency::Streamed { window: 1 });
        // Less than the stored blocks: read from the files for every step.
        let plan = pick(20 * GB).unwrap();
        assert_eq!(plan.blocks, BlockResidency::FromFiles { window: 2 });
        let err = pick(GB).unwrap_err();
        assert!(err.contains("more than the 1073741824 bytes"), "{err}");
    }

    #[test]
    fn a_forced_plan_is_kept_or_refused_with_numbers() {
        let limits = Limits {
            budget: 40 * GB,
            host: 64 * GB,
            on_cpu: false,
        };
        let streamed = Plan {
            text: TextPlacement::Released,
            blocks: BlockResidency::Streamed { window: 1 },
            tiled_vae: false,
        };
        let none = &Work::NONE;
        assert_eq!(choose(&bytes(), none, limits, Some(streamed)), Ok(streamed));
        let small = Limits {
            budget: 8 * GB,
            ..limits
        };
        let err = choose(&bytes(), none, small, Some(Plan::RESIDENT)).unwrap_err();
        assert!(err.contains("the plan the host chose"), "{err}");
        // Activations count: a plan that fits the weights alone may not fit with them.
        let work = Work {
            transformer: 3 * GB,
            vae: 5 * GB,
            vae_tiled: GB,
        };
        let need = streamed.need(&bytes(), &work, false);
        assert_eq!(need.device, GB / 4 + GB * 7 / 10 + GB / 6 + 5 * GB);
        let tiled = Plan {
            tiled_vae: true,
            ..streamed
        };
        let need = tiled.need(&bytes(), &work, false);
        assert_eq!(need.device, GB / 4 + GB * 7 / 10 + GB / 6 + 3 * GB);
    }

    #[test]
    fn a_large_image_tiles_the_autoencoder_before_streaming_blocks() {
        let work = Work {
            transformer: GB,
            vae: 12 * GB,
            vae_tiled: GB,
        };
        let limits = Limits {
            budget: 40 * GB,
            host: 64 * GB,
            on_cpu: false,
        };
        let plan = choose(&bytes(), &work, limits, None).unwrap();
        assert_eq!(plan.blocks, BlockResidency::Resident);
        assert!(plan.tiled_vae);
    }
}
