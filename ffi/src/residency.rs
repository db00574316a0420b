//! Residency plans and figures between their C and Rust forms.

use std::mem::size_of;

use flux_core::model::BlockResidency;
use flux_core::runtime::{Plan, Residency, TextPlacement};

use crate::abi::{FfiError, FfiResult};
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
            BlockResidency::Streamed { window } => window as u32,
        },
        tiled_vae: u32::from(p.tiled_vae),
    }
}

/// The plan a C struct describes.
pub fn plan_from_c(p: &FluxResidencyPlan) -> FfiResult<Plan> {
    let text = match p.text_placement {
        0 => TextPlacement::Resident,
        1 => TextPlacement::Released,
        2 => TextPlacement::Host,
        v => {
            return Err(FfiError::new(
                FluxResult::InvalidArgument,
                format!("text_placement {v} is not a FluxTextPlacement"),
            ))
        }
    };
    let blocks = match p.stream_window {
        0 => BlockResidency::Resident,
        w => BlockResidency::Streamed { window: w as usize },
    };
    let tiled_vae = match p.tiled_vae {
        0 => false,
        1 => true,
        v => {
            return Err(FfiError::new(
                FluxResult::InvalidArgument,
                format!("tiled_vae must be 0 or 1, not {v}"),
            ))
        }
    };
    Ok(Plan {
        text,
        blocks,
        tiled_vae,
    })
}

/// The C form of the engine's residency.
pub fn to_c(r: &Residency) -> FluxResidency {
    FluxResidency {
        struct_size: 0,
        budget: r.budget,
        transformer: r.transformer,
        autoencoder: r.autoencoder,
        text_encoders: r.text_encoders,
        release_text_encoders: u32::from(r.release_text_encoders),
        plan: plan_to_c(&r.plan),
        host: r.host,
    }
}
