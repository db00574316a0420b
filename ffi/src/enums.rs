//! `TryFrom<i32>` for the C enums that callers pass in: an `i32` field becomes the enum, or
//! INVALID_ARGUMENT naming the field, the value and the enum. The variant lists below are
//! checked complete by the compiler (an exhaustive match), so they cannot fall behind `types`.

use crate::abi::{FfiError, FfiResult};
use crate::types::*;

/// An `i32` that is no variant of the C enum `name`.
pub struct NotAVariant {
    pub value: i32,
    pub name: &'static str,
}

macro_rules! c_enum {
    ($name:ident: $($variant:ident),+ $(,)?) => {
        impl TryFrom<i32> for $name {
            type Error = NotAVariant;
            fn try_from(value: i32) -> Result<Self, NotAVariant> {
                // Exhaustive: a variant added to the enum and not listed here fails to compile.
                let _: fn($name) = |v| match v { $($name::$variant)|+ => {} };
                $(if value == $name::$variant as i32 {
                    return Ok($name::$variant);
                })+
                Err(NotAVariant { value, name: stringify!($name) })
            }
        }
    };
}

c_enum!(FluxDevice: Cpu, Cuda);
c_enum!(FluxDtype: Default, F32, Bf16, F16);
c_enum!(FluxKontext: Detect, No, Yes);
c_enum!(FluxPixelFormat: Rgb8, Rgba8, Rgba32f, Rgba16f, Bgra8, R8);
c_enum!(FluxLogLevel: Off, Error, Warn, Info, Debug, Trace);
c_enum!(FluxTextPlacement: Resident, Released, Host);
c_enum!(FluxExternalMemoryType: OpaqueFd, OpaqueWin32, D3D12Resource);
c_enum!(FluxSemaphoreType: OpaqueFd, OpaqueWin32, TimelineFd, TimelineWin32, D3D12Fence);

/// The value of the caller's field `field` as the C enum `T`.
pub fn c_enum<T: TryFrom<i32, Error = NotAVariant>>(value: i32, field: &str) -> FfiResult<T> {
    T::try_from(value).map_err(|e| {
        FfiError::new(
            FluxResult::InvalidArgument,
            format!("{field} {} is not a {}", e.value, e.name),
        )
    })
}
