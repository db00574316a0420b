//! Dense layers on gemm directly (CPUs without AVX-512, see [`super::packed`]): the weight
//! kept as its (out, in) rows, which gemm reads transposed through strides, and the bias written
//! into the output before the product accumulates onto it (no second pass).

use candle_core::{bail, Result, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::rows::{as_rows, assume_init, tensor, uninit, Rows};
use super::{matmul, threads, Operand, Out};

/// A dense layer's output `cat(parts, −1)·W + bias`, for a weight of `k` inputs and `n`
/// outputs: checks the parts (…, in_i), which may be slices of columns, and the bias (`n`
/// values), then has `product` write the m×n output (row-major, not initialised) from the
/// parts' row views and the bias values; the result has the first part's shape with `n` last.
/// `product` runs only when m, n and k are non-zero (with no inputs, the output is the bias).
///
/// # Safety
/// `product` must write all m×n output values.
pub(super) unsafe fn dense_output(
    parts: &[&Tensor],
    (k, n): (usize, usize),
    bias: Option<&Tensor>,
    product: impl FnOnce(&[Rows], Option<&[f32]>, Out),
) -> Result<Tensor> {
    let parts = parts
        .iter()
        .map(|p| as_rows(p))
        .collect::<Result<Vec<_>>>()?;
    let views = parts
        .iter()
        .map(Rows::require)
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = views.first() else {
        bail!("linear layer without input")
    };
    let m = first.rows;
    if views.iter().any(|v| v.rows != m) || views.iter().map(|v| v.len).sum::<usize>() != k {
        bail!(
            "linear layer: inputs {:?} do not match the weight ({k} in, {n} out)",
            parts.iter().map(|p| p.dims()).collect::<Vec<_>>()
        );
    }
    let bias = bias.map(|b| b.contiguous()).transpose()?;
    let bias_view = bias.as_ref().map(Rows::require).transpose()?;
    if let Some(b) = &bias_view {
        if b.rows * b.len != n {
            bail!("linear layer: bias of {} for {n} outputs", b.rows * b.len);
        }
    }
    let bias = bias_view.as_ref().map(|b| &b.data()[..n]);
    let write = |out: Out| match (k, bias) {
        _ if m == 0 || n == 0 => {}
        (0, Some(b)) => (0..m).for_each(|r| {
            // SAFETY: out holds m·n values; the bias n.
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), out.at(r * n), n) }
        }),
        // SAFETY: out holds m·n values.
        (0, None) => unsafe { std::ptr::write_bytes(out.at(0), 0, m * n) },
        _ => product(&views, bias, out),
    };
    let mut out = uninit(m * n);
    write(Out(out.as_mut_ptr() as *mut f32));
    // SAFETY: every arm of `write` writes all m·n values (`product` by the caller's promise).
    let out = unsafe { assume_init(out) };
    let mut shape = parts[0].dims().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    drop((views, bias_view));
    tensor(out, shape)
}

/// `cat(parts, −1) · wᵀ + bias` with `w` (out, in) in rows (contiguous, or a slice of the rows
/// of a larger weight), which gemm reads transposed through strides.
pub fn linear_rows(parts: &[&Tensor], w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    let w = as_rows(w)?;
    let view = Rows::require(&w)?;
    linear_slice(parts, view.data(), (k, n), (1, view.stride), bias)
}

/// `cat(parts, −1) · W + bias` with the weight's k×n values in `w`, element (i, j) at
/// `i·strides.0 + j·strides.1` (so an (out, in) weight serves without a transpose), without
/// building the concatenation: each part (…, in_i), which may be a slice of columns, multiplies
/// its own block of rows of W and accumulates into the output.
pub(super) fn linear_slice(
    parts: &[&Tensor],
    w: &[f32],
    (k, n): (usize, usize),
    (rs, cs): (usize, usize),
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    if k > 0 && n > 0 && w.len() <= (k - 1) * rs + (n - 1) * cs {
        bail!(
            "linear layer: {} weight values for {k}×{n} (strides {rs}, {cs})",
            w.len()
        );
    }
    let product = |views: &[Rows], bias: Option<&[f32]>, dst: Out| {
        let m = views[0].rows;
        // Independent column blocks, one single-threaded gemm each: gemm's own split waits at
        // every packed block (2–5% slower at the FLUX shapes, much more when a core is preempted).
        let cols = n.div_ceil(2 * threads()).next_multiple_of(16).max(16);
        (0..n.div_ceil(cols))
            .into_par_iter()
            .with_max_len(1)
            .for_each(|block| {
                let c0 = block * cols;
                let width = cols.min(n - c0);
                if let Some(b) = bias {
                    for r in 0..m {
                        // SAFETY: row r's columns c0..c0 + width lie inside out and belong to
                        // this task alone.
                        unsafe {
                            let row = dst.at(r * n + c0);
                            std::ptr::copy_nonoverlapping(b[c0..].as_ptr(), row, width);
                        }
                    }
                }
                // The first non-empty part writes the block (without a bias), the others add.
                let mut k0 = 0;
                for x in views.iter().filter(|x| x.len > 0) {
                    // SAFETY: the destination is out's m×width block at column c0 (row stride
                    // n), which only this task writes; x is m×k with row stride x.stride and its
                    // data holds (m − 1)·stride + k values; w rows k0..k0 + k, columns
                    // c0..c0 + width, lie inside w at its strides (length checked above).
                    unsafe {
                        matmul(
                            (m, width, x.len),
                            dst.at(c0),
                            n,
                            bias.is_some() || k0 > 0,
                            Operand::rows(x.data(), x.stride),
                            Operand {
                                ptr: w[k0 * rs + c0 * cs..].as_ptr(),
                                row_stride: rs,
                                col_stride: cs,
                            },
                            Parallelism::None,
                        );
                    }
                    k0 += x.len;
                }
            });
    };
    // SAFETY: the column blocks cover all n columns of all m rows, each written by the bias
    // copy or the first part's product (k > 0, so some part is non-empty).
    unsafe { dense_output(parts, (k, n), bias, product) }
}
