//! Dense layers on gemm directly: the weight stored transposed (in, out), which gemm's packing
//! prefers, and the bias written into the output before the product accumulates onto it (no
//! second pass).

use candle_core::{bail, Result, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::rows::{as_rows, tensor, Rows};
use super::{matmul, threads, Operand};

/// `cat(parts, −1) · w_t + bias` with `w_t` (in, out) contiguous, without building the
/// concatenation: each part (…, in_i), which may be a slice of columns, multiplies its own block
/// of rows of `w_t` and accumulates into the output.
pub fn linear_parts(parts: &[&Tensor], w_t: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (k_total, n) = w_t.dims2()?;
    let w_t = w_t.contiguous()?;
    let w = Rows::require(&w_t)?;
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
    if views.iter().any(|v| v.rows != m) || views.iter().map(|v| v.len).sum::<usize>() != k_total {
        bail!(
            "linear layer: inputs {:?} do not match the weight ({k_total}, {n})",
            parts.iter().map(|p| p.dims()).collect::<Vec<_>>()
        );
    }
    let mut out = match bias {
        Some(b) => {
            let b = b.contiguous()?;
            let b = Rows::require(&b)?;
            if b.rows * b.len != n {
                bail!("linear layer: bias of {} for {n} outputs", b.rows * b.len);
            }
            b.data()[..n].repeat(m)
        }
        None => vec![0f32; m * n],
    };
    let parallelism = match threads() {
        1 => Parallelism::None,
        t => Parallelism::Rayon(t),
    };
    let mut k0 = 0;
    for (i, x) in views.iter().enumerate() {
        let k = x.len;
        // SAFETY: out is m×n with row stride n; x is m×k with row stride x.stride and its
        // data holds (m − 1)·stride + k values; w_t rows k0..k0 + k are k×n with row stride n.
        unsafe {
            matmul(
                (m, n, k),
                out.as_mut_ptr(),
                n,
                bias.is_some() || i > 0,
                Operand::rows(x.data(), x.stride),
                Operand::rows(&w.data()[k0 * n..], n),
                parallelism,
            );
        }
        k0 += k;
    }
    let mut shape = parts[0].dims().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    drop(views);
    tensor(out, shape)
}

/// `w` (rows, cols) transposed into a new contiguous (cols, rows), tile by tile in parallel
/// (a strided copy of a large weight is several times slower).
pub fn transpose(w: &Tensor) -> Result<Tensor> {
    const TILE: usize = 32;
    let (rows, cols) = w.dims2()?;
    let w = as_rows(w)?;
    let src = Rows::require(&w)?;
    let mut out = vec![0f32; rows * cols];
    if rows > 0 {
        out.par_chunks_mut(TILE * rows)
            .enumerate()
            .for_each(|(tile, block)| {
                let c0 = tile * TILE;
                for r0 in (0..rows).step_by(TILE) {
                    for r in r0..(r0 + TILE).min(rows) {
                        let row = &src.row(r)[c0..];
                        for (c, &x) in row.iter().take(block.len() / rows).enumerate() {
                            block[c * rows + r] = x;
                        }
                    }
                }
            });
    }
    drop(src);
    tensor(out, (cols, rows))
}
