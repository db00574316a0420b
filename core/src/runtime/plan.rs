//! Residency plans: where each part of a model lives for a memory budget, chosen from the bytes
//! the file headers promise before anything large is allocated.
//!
//! The planner tries, fastest first: everything resident; (off the CPU) the text encoders kept on
//! the CPU; the text encoders released after encoding; then the transformer's blocks streamed
//! from host memory with a window of [`MAX_WINDOW`] blocks, then 1; then read from the model
//! files for every step (the system's file cache keeps what memory allows) — each with the
//! autoencoder working on the whole image, then tile by tile. The budget bounds what stays
//! allocated through a job (weights and an estimate of the activations); text encoders that are
//! released after encoding are resident only while a new prompt is encoded.

use candle_core::DType;

use super::job::JobRequest;
use crate::model::autoencoder::{self, AutoEncoder};
use crate::model::transformer::{self, FluxTransformer};
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
        let (window, resident, host) = match self.blocks {
            BlockResidency::Resident => return (b.transformer(), 0),
            BlockResidency::Streamed { window, resident } => (window, resident, true),
            BlockResidency::FromFiles { window, resident } => (window, resident, false),
        };
        let (kept, streamed) = b.blocks.split_at(resident.min(b.blocks.len()));
        let largest = streamed.iter().map(|s| s.0).max().unwrap_or(0);
        let device = b.transformer_base
            + kept.iter().map(|s| s.0).sum::<u64>()
            + window.max(1) as u64 * largest;
        let stored = streamed.iter().map(|s| s.1).sum::<u64>();
        (device, if host { stored } else { 0 })
    }

    /// The same plan with `resident` blocks kept resident (when it streams).
    fn with_resident(self, resident: usize) -> Plan {
        let blocks = match self.blocks {
            BlockResidency::Streamed { window, .. } => {
                BlockResidency::Streamed { window, resident }
            }
            BlockResidency::FromFiles { window, .. } => {
                BlockResidency::FromFiles { window, resident }
            }
            b => b,
        };
        Plan { blocks, ..self }
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
            BlockResidency::Streamed { window, resident } => format!(
                "transformer blocks streamed from host memory ({window} at a time, {resident} kept resident), {text}{vae}"
            ),
            BlockResidency::FromFiles { window, resident } => format!(
                "transformer blocks read from the files ({window} at a time, {resident} kept resident), {text}{vae}"
            ),
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
    let streams: [fn(usize) -> BlockResidency; 2] =
        [BlockResidency::streamed, BlockResidency::from_files];
    for stream in streams {
        for window in (1..=MAX_WINDOW).rev() {
            placements.extend(texts.iter().map(|&t| (t, stream(window))));
        }
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

/// The fastest plan that fits `limits` with `work` bytes of activations, keeping as many
/// streamed blocks resident as fit, or `forced` when the host chose one (which must fit too). The
/// error states what the smallest plan needs and what is available.
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
    let fits = |p: &Plan| limits.fits(p.need(b, work, on_cpu));
    if let Some(p) = plans.iter().find(|p| fits(p)) {
        if forced.is_some() || p.blocks == BlockResidency::Resident {
            return Ok(*p);
        }
        let most = (0..b.blocks.len())
            .rev()
            .map(|k| p.with_resident(k))
            .find(fits)
            .unwrap_or(*p);
        return Ok(most);
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

/// An estimate of the activation bytes `request` needs, with `t5_len` text tokens (see
/// [`work_estimate`]).
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
            let area = |i: &crate::image::ImageInput| i.size().0 * i.size().1;
            let first = r.references.first().map_or(0, area);
            let out = r.size.map_or(first, |(w, h)| w * h);
            (out, r.references.iter().map(area).sum())
        }
        _ => (0, 0),
    };
    let configs = (transformer.config(), ae.config());
    let on_cpu = transformer.device().is_cpu();
    work_estimate(
        configs,
        transformer.dtype(),
        on_cpu,
        (pixels, references),
        t5_len,
    )
}

/// An estimate of the activation bytes of a job making a `pixels`-pixel image (beside
/// `references` pixels of reference images) with `t5_len` text tokens: the transformer over its
/// text and image tokens, the autoencoder over its pixels, whole or tiled.
pub fn work_estimate(
    (transformer, ae): (&transformer::Config, &autoencoder::Config),
    dtype: DType,
    on_cpu: bool,
    (pixels, references): (usize, usize),
    t5_len: usize,
) -> Work {
    // One token per 16×16 pixels (8× the autoencoder, 2×2 packing).
    let tokens = t5_len + (pixels + references) / 256;
    let largest = pixels.max(references);
    Work {
        transformer: transformer::activation_bytes(transformer, dtype, on_cpu, tokens),
        vae: autoencoder::activation_bytes(ae, dtype, largest, false),
        vae_tiled: autoencoder::activation_bytes(ae, dtype, largest, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1 << 30;

    /// FLUX.1-dev-like figures: 19 double blocks of `double` bytes and 38 single blocks of
    /// `single` in working form, `stored` of that in their stored form; 9.5 GB of encoders.
    fn flux_like(double: u64, single: u64, stored: f64, base: u64) -> ComponentBytes {
        let sizes = std::iter::repeat_n(double, 19).chain(std::iter::repeat_n(single, 38));
        ComponentBytes {
            transformer_base: base,
            blocks: sizes.map(|w| (w, (w as f64 * stored) as u64)).collect(),
            autoencoder: GB / 6,
            text_encoders: 19 * GB / 2,
            text_encoders_host: 5 * GB,
        }
    }

    /// A GPU's bf16 transformer: 24.95 GB.
    fn gpu_bytes() -> ComponentBytes {
        flux_like(GB * 7 / 10, GB * 3 / 10, 1.0, GB / 4)
    }

    /// The same on the CPU: f32 blocks, stored bf16.
    fn cpu_bytes() -> ComponentBytes {
        flux_like(GB * 14 / 10, GB * 6 / 10, 0.5, GB / 2)
    }

    fn limits(budget: u64, host: u64, on_cpu: bool) -> Limits {
        Limits {
            budget,
            host,
            on_cpu,
        }
    }

    /// The plan for `b` within `l`, checked to fit and, when it streams, to keep as many blocks
    /// resident as fit.
    fn pick(b: &ComponentBytes, l: Limits) -> Result<Plan, String> {
        let p = choose(b, &Work::NONE, l, None)?;
        assert!(l.fits(p.need(b, &Work::NONE, l.on_cpu)), "{p:?}");
        if let BlockResidency::Streamed { resident, .. }
        | BlockResidency::FromFiles { resident, .. } = p.blocks
        {
            let more = p.with_resident(resident + 1);
            assert!(
                !l.fits(more.need(b, &Work::NONE, l.on_cpu)),
                "{p:?} keeps too few"
            );
        }
        Ok(p)
    }

    #[test]
    fn the_fastest_plan_that_fits_is_chosen() {
        let b = gpu_bytes();
        let gpu = |budget| pick(&b, limits(budget, 64 * GB, false)).unwrap();
        assert_eq!(gpu(40 * GB), Plan::RESIDENT);
        let host_resident = Plan {
            text: TextPlacement::Host,
            blocks: BlockResidency::Resident,
            tiled_vae: false,
        };
        assert_eq!(gpu(26 * GB), host_resident);
        // Streamed two at a time, the encoders on the CPU, as many blocks resident as fit.
        let p = gpu(8 * GB);
        assert_eq!(p.text, TextPlacement::Host);
        assert!(
            matches!(p.blocks, BlockResidency::Streamed { window: 2, resident } if resident > 5),
            "{p:?}"
        );
        // Room for one block: one at a time.
        let p = gpu(GB * 6 / 5);
        assert_eq!(p.blocks, BlockResidency::streamed(1));
        // Too little host memory for the encoders there: released after encoding instead.
        let p = pick(&b, limits(8 * GB, 25 * GB, false)).unwrap();
        assert_eq!(p.text, TextPlacement::Released);
        let err = pick(&b, limits(GB / 2, 64 * GB, false)).unwrap_err();
        assert!(err.contains("bytes of device memory"), "{err}");

        // On the CPU everything counts against one budget, and blocks work in f32 (twice their
        // bf16 stored size).
        let b = cpu_bytes();
        let cpu = |budget| pick(&b, limits(budget, 0, true));
        assert_eq!(cpu(61 * GB), Ok(Plan::RESIDENT));
        let p = cpu(51 * GB).unwrap();
        assert_eq!(p.blocks, BlockResidency::Resident);
        assert_eq!(p.text, TextPlacement::Released);
        let p = cpu(30 * GB).unwrap();
        assert!(
            matches!(p.blocks, BlockResidency::Streamed { window: 2, .. }),
            "{p:?}"
        );
        // Less than the stored blocks: the others read from the files for every step.
        let p = cpu(20 * GB).unwrap();
        assert!(
            matches!(p.blocks, BlockResidency::FromFiles { window: 2, resident } if resident > 0),
            "{p:?}"
        );
        let err = cpu(GB).unwrap_err();
        assert!(err.contains("more than the 1073741824 bytes"), "{err}");
    }

    #[test]
    fn a_forced_plan_is_kept_or_refused_with_numbers() {
        let b = gpu_bytes();
        let l = limits(40 * GB, 64 * GB, false);
        let streamed = Plan {
            text: TextPlacement::Released,
            blocks: BlockResidency::streamed(1),
            tiled_vae: false,
        };
        let none = &Work::NONE;
        assert_eq!(choose(&b, none, l, Some(streamed)), Ok(streamed));
        let err = choose(
            &b,
            none,
            limits(8 * GB, 64 * GB, false),
            Some(Plan::RESIDENT),
        );
        assert!(err.unwrap_err().contains("the plan the host chose"));
        // Activations count: the whole-image autoencoder's, or a tile's.
        let work = Work {
            transformer: 3 * GB,
            vae: 5 * GB,
            vae_tiled: GB,
        };
        let weights = GB / 4 + GB * 7 / 10 + GB / 6;
        assert_eq!(streamed.need(&b, &work, false).device, weights + 5 * GB);
        let tiled = Plan {
            tiled_vae: true,
            ..streamed
        };
        assert_eq!(tiled.need(&b, &work, false).device, weights + 3 * GB);
        // Kept-resident blocks count at their working size, the window at the largest other.
        let kept = streamed.with_resident(19);
        let need = kept.need(&b, none, false);
        assert_eq!(
            need.device,
            GB / 4 + 19 * (GB * 7 / 10) + GB * 3 / 10 + GB / 6
        );
        assert_eq!(need.host, 38 * (GB * 3 / 10));
    }

    #[test]
    fn a_large_image_tiles_the_autoencoder_before_streaming_blocks() {
        let work = Work {
            transformer: GB,
            vae: 12 * GB,
            vae_tiled: GB,
        };
        let plan = choose(&gpu_bytes(), &work, limits(40 * GB, 64 * GB, false), None).unwrap();
        assert_eq!(plan.blocks, BlockResidency::Resident);
        assert!(plan.tiled_vae);
    }
}
