//! Residency plans and figures between their C and Rust forms.

use std::mem::size_of;

use flux_core::model::BlockResidency;
use flux_core::runtime::{Plan, Residency, TextPlacement};

use crate::abi::{FfiError, FfiResult};
use crate::enums::c_enum;
use crate::types::{FluxResidency, FluxResidencyPlan, FluxResult, FluxTextPlacement};

/// The default plan: everything resident.
pub fn plan_defaults() -> FluxResidencyPlan {
    plan_to_c(&Plan::RESIDENT)
}

fn plan_to_c(p: &Plan) -> FluxResidencyPlan {
    FluxResidencyPlan {
        struct_size: size_of::<FluxResidencyPlan>() as u32,
        text_placement: match p.text {
            TextPlacement::Resident => FluxTextPlacement::Resident,
            TextPlacement::Released => FluxTextPlacement::Released,
            TextPlacement::Host => FluxTextPlacement::Host,
        } as i32,
        stream_window: match p.blocks {
            BlockResidency::Resident => 0,
            BlockResidency::Streamed { window, .. } | BlockResidency::FromFiles { window, .. } => {
                window as u32
            }
        },
        stream_from_files: u32::from(matches!(p.blocks, BlockResidency::FromFiles { .. })),
        resident_blocks: match p.blocks {
            BlockResidency::Resident => 0,
            BlockResidency::Streamed { resident, .. }
            | BlockResidency::FromFiles { resident, .. } => resident as u32,
        },
        tiled_vae: u32::from(p.tiled_vae),
    }
}

/// The plan a C struct describes.
pub fn plan_from_c(p: &FluxResidencyPlan) -> FfiResult<Plan> {
    let text = match c_enum(p.text_placement, "text_placement")? {
        FluxTextPlacement::Resident => TextPlacement::Resident,
        FluxTextPlacement::Released => TextPlacement::Released,
        FluxTextPlacement::Host => TextPlacement::Host,
    };
    let (window, resident) = (p.stream_window as usize, p.resident_blocks as usize);
    let blocks = match (window, flag(p.stream_from_files, "stream_from_files")?) {
        (0, _) => BlockResidency::Resident,
        (_, false) => BlockResidency::Streamed { window, resident },
        (_, true) => BlockResidency::FromFiles { window, resident },
    };
    let tiled_vae = flag(p.tiled_vae, "tiled_vae")?;
    Ok(Plan {
        text,
        blocks,
        tiled_vae,
    })
}

/// A 0/1 field as a bool.
fn flag(v: u32, what: &str) -> FfiResult<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(FfiError::new(
            FluxResult::InvalidArgument,
            format!("{what} must be 0 or 1, not {v}"),
        )),
    }
}

/// The C form of the engine's residency.
pub fn to_c(r: &Residency) -> FluxResidency {
    let plan = plan_to_c(&r.plan);
    FluxResidency {
        struct_size: 0,
        budget: r.budget,
        transformer: r.transformer,
        autoencoder: r.autoencoder,
        text_encoders: r.text_encoders,
        release_text_encoders: u32::from(r.release_text_encoders),
        host: r.host,
        text_placement: plan.text_placement,
        stream_window: plan.stream_window,
        stream_from_files: plan.stream_from_files,
        resident_blocks: plan.resident_blocks,
        tiled_vae: plan.tiled_vae,
        reserved: 0,
    }
}
