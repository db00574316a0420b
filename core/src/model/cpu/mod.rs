//! Fused f32 kernels for the FLUX forward on the CPU.
//!
//! candle's generic CPU ops cost the forward most of its non-GEMM time: scalar `tanhf` GELU, one
//! pass per elementwise op, a full attention score matrix, a bias added in a second pass. These
//! kernels do each job in one pass over rows, vectorised for the widest ISA the CPU has, and are
//! used by the model code whenever a tensor is f32 on the CPU (other devices and dtypes keep the
//! generic candle ops, which the GPU path fuses its own way). Dense layers run on weights packed
//! at load for the AVX-512 kernel of [`packed`], or on gemm reading (out, in) rows elsewhere.

mod attention;
pub mod expand;
mod linear;
mod math;
pub mod packed;
mod rows;

pub use attention::{attention, prepare_qkv, QkvSegment};
pub use linear::linear_rows;
pub use rows::{gated_residual, gelu, modulate};

use candle_core::{DType, Tensor};

/// Whether `t` takes the fused CPU path: f32 on the CPU.
pub fn applies(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// Number of worker threads the kernels split work over (candle's setting, `RAYON_NUM_THREADS`).
fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// A matrix operand of [`matmul`]: its first element and its row and column strides.
#[derive(Clone, Copy)]
struct Operand {
    ptr: *const f32,
    row_stride: usize,
    col_stride: usize,
}

impl Operand {
    /// A row-major matrix: rows `row_stride` apart, columns adjacent.
    fn rows(data: &[f32], row_stride: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            row_stride,
            col_stride: 1,
        }
    }
}

/// `dst = lhs·rhs`, or `dst += lhs·rhs` when `accumulate`, for lhs m×k and rhs k×n; dst is m×n
/// row-major with rows `dst_row_stride` apart.
///
/// # Safety
/// Every element the pointers and strides address must be valid, and dst must not overlap the
/// operands or be written by anyone else meanwhile.
unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_row_stride: usize,
    accumulate: bool,
    lhs: Operand,
    rhs: Operand,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: the caller's promise, which is gemm's.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.ptr,
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The output buffer, written by tasks at disjoint places.
struct Out(*mut f32);
// SAFETY: every task writes only its own block of the buffer.
unsafe impl Sync for Out {}
impl Out {
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Defines `pub fn $name(args)` that runs `$body` compiled for AVX-512 or AVX2+FMA when the CPU
/// has them (runtime-detected), so the plain loops in the body auto-vectorise to that width.
macro_rules! simd_fn {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        pub(super) fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) { imp($($arg),*) }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features v4 is compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features v3 is compiled for.
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
use simd_fn;
