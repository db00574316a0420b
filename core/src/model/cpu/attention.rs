//! Attention on the CPU. Splitting the fused qkv projection into heads applies the q/k RMSNorm,
//! RoPE and the softmax scale (folded into q) in the same pass; softmax attention then runs over
//! chunks of query rows, so the score matrix never exists whole: memory stays at
//! threads × chunk × keys, and each chunk's scores stay in cache between the two products.

use std::mem::MaybeUninit;

use candle_core::{bail, Result, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::rows::{as_rows, assume_init, tensor, uninit, Rows};
use super::{math, matmul, simd_fn, Operand, Out};

/// Scores computed at once per task (256 Ki f32 = 1 MiB, half a core's L2 on current x86).
const CHUNK_SCORES: usize = 256 * 1024;

/// A run of consecutive tokens of the joint sequence with its qkv projection (B, n, 3·H·D) (may
/// be the first columns of a wider projection) and its q/k RMSNorm scales (D).
pub struct QkvSegment<'a> {
    pub qkv: &'a Tensor,
    pub q_scale: &'a Tensor,
    pub k_scale: &'a Tensor,
}

simd_fn! {
    /// `dst = rope(src / rms(src) · scale) · mul` for one head of one token; `table` holds the
    /// token's D/2 rotation matrices `[cos, −sin, sin, cos]`.
    fn norm_rope_row(
        src: &[f32],
        scale: &[f32],
        table: &[f32],
        mul: f32,
        dst: &mut [MaybeUninit<f32>],
    ) {
        let inv = 1.0 / (math::sum_squares(src, 0.0) / src.len() as f32 + 1e-6).sqrt();
        for (((d, x), s), t) in dst
            .chunks_exact_mut(2)
            .zip(src.chunks_exact(2))
            .zip(scale.chunks_exact(2))
            .zip(table.chunks_exact(4))
        {
            let (x0, x1) = (x[0] * inv * s[0], x[1] * inv * s[1]);
            d[0].write((t[0] * x0 + t[1] * x1) * mul);
            d[1].write((t[2] * x0 + t[3] * x1) * mul);
        }
    }
}

/// q, k, v (B, H, N, D) from the segments' qkv projections, N the segments' total length: q and
/// k RMS-normalised with their scales and rotated by `pe` (B or 1, 1, N, D/2, 2, 2), q multiplied
/// by the softmax scale 1/√D.
pub fn prepare_qkv(
    segments: &[QkvSegment],
    pe: &Tensor,
    heads: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let Some(first) = segments.first() else {
        bail!("attention without tokens")
    };
    let b = first.qkv.dim(0)?;
    let d = first.qkv.dim(2)? / (3 * heads);
    let pe = pe.contiguous()?;
    let (pe_b, n, half) = match pe.dims() {
        &[pe_b, 1, n, half, 2, 2] => (pe_b, n, half),
        dims => bail!("RoPE table of shape {dims:?}"),
    };
    let qkvs = segments
        .iter()
        .map(|s| as_rows(s.qkv))
        .collect::<Result<Vec<_>>>()?;
    let scales = segments
        .iter()
        .map(|s| Ok((s.q_scale.contiguous()?, s.k_scale.contiguous()?)))
        .collect::<Result<Vec<_>>>()?;
    let views = qkvs.iter().map(Rows::require).collect::<Result<Vec<_>>>()?;
    let scale_views = scales
        .iter()
        .map(|(q, k)| Ok((Rows::require(q)?, Rows::require(k)?)))
        .collect::<Result<Vec<_>>>()?;
    let table = Rows::require(&pe)?;
    let mut lens = Vec::with_capacity(segments.len());
    for s in segments {
        let (sb, len, _) = s.qkv.dims3()?;
        if sb != b {
            bail!("attention segments of batch {sb} and {b}");
        }
        lens.push(len);
    }
    if lens.iter().sum::<usize>() != n
        || half * 2 != d
        || (pe_b != b && pe_b != 1)
        || views.iter().any(|v| v.len != 3 * heads * d)
        || scale_views.iter().any(|(q, k)| q.len != d || k.len != d)
    {
        bail!(
            "attention inputs do not match: {heads} heads, RoPE table {:?}",
            pe.dims()
        );
    }
    let block = n * d;
    let mut q = uninit(b * heads * block);
    let mut k = uninit(b * heads * block);
    let mut v = uninit(b * heads * block);
    let q_mul = 1.0 / (d as f32).sqrt();
    let table = table.data();
    q.par_chunks_mut(block.max(1))
        .zip(k.par_chunks_mut(block.max(1)))
        .zip(v.par_chunks_mut(block.max(1)))
        .enumerate()
        .for_each(|(bh, ((q, k), v))| {
            let (bi, h) = (bh / heads, bh % heads);
            let pe_rows = &table[(bi % pe_b) * n * 2 * d..];
            let mut pos = 0;
            for ((seg, &len), (scale_q, scale_k)) in views.iter().zip(&lens).zip(&scale_views) {
                for t in 0..len {
                    let row = seg.row(bi * len + t);
                    let at = pos * d..(pos + 1) * d;
                    let rot = &pe_rows[pos * 2 * d..][..2 * d];
                    let col = |i: usize| &row[(i * heads + h) * d..][..d];
                    norm_rope_row(col(0), scale_q.row(0), rot, q_mul, &mut q[at.clone()]);
                    norm_rope_row(col(1), scale_k.row(0), rot, 1.0, &mut k[at.clone()]);
                    for (d, &x) in v[at].iter_mut().zip(col(2)) {
                        d.write(x);
                    }
                    pos += 1;
                }
            }
        });
    drop((views, scale_views));
    let shape = (b, heads, n, d);
    // SAFETY: each (batch, head) block has its n tokens' d values written above (the segments'
    // lengths add up to n).
    let [q, k, v] = [q, k, v].map(|x| unsafe { assume_init(x) });
    Ok((tensor(q, shape)?, tensor(k, shape)?, tensor(v, shape)?))
}

simd_fn! {
    /// The unnormalised softmax of each `n`-long row of `scores`, in place: `e^(x − max)`, and
    /// the reciprocal of each row's sum into `inv_sums` (the normalisation is applied to the
    /// D-wide output rows instead of the n-wide score rows).
    fn softmax_rows(scores: &mut [f32], n: usize, inv_sums: &mut [f32]) {
        for (row, inv) in scores.chunks_exact_mut(n).zip(inv_sums) {
            let max = math::max(row);
            *inv = 1.0 / math::exp_sum(row, max);
        }
    }
}

/// `softmax(q·kᵀ)·v` for q, k, v (B, H, N, D) with the softmax scale already in q; returns
/// (B, N, H·D). Each (batch, head, chunk of query rows) is one parallel task.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, h, n, d) = q.dims4()?;
    let n_kv = k.dim(2)?;
    if k.dims() != [b, h, n_kv, d] || v.dims() != [b, h, n_kv, d] {
        bail!(
            "attention: q {:?}, k {:?}, v {:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let (qv, kv, vv) = (Rows::require(&q)?, Rows::require(&k)?, Rows::require(&v)?);
    let (qd, kd, vd) = (qv.data(), kv.data(), vv.data());
    // Chunks of equal size (1152 rows: 6 of 192, not 5 of 227 and one of 17).
    let most = (CHUNK_SCORES / n_kv.max(1)).clamp(16, 256);
    let chunk = n.div_ceil(n.div_ceil(most).max(1)).max(1);
    let chunks = n.div_ceil(chunk);
    let mut out = uninit(b * n * h * d);
    let dst = Out(out.as_mut_ptr() as *mut f32);
    (0..b * h * chunks)
        .into_par_iter()
        .with_max_len(1)
        .for_each(|task| {
            let (bh, c) = (task / chunks, task % chunks);
            let (bi, hi) = (bh / h, bh % h);
            let r0 = c * chunk;
            let rows = chunk.min(n - r0);
            let qs = &qd[(bh * n + r0) * d..][..rows * d];
            let ks = &kd[bh * n_kv * d..][..n_kv * d];
            let vs = &vd[bh * n_kv * d..][..n_kv * d];
            let mut scores = Vec::with_capacity(rows * n_kv);
            let mut inv_sums = vec![0f32; rows];
            let block = dst.at(((bi * n + r0) * h + hi) * d);
            // SAFETY: scores has room for rows×n_kv (row stride n_kv), which the first product
            // writes whole (gemm writes zeros when d = 0); qs is rows×d (row stride d); ks read
            // as d×n_kv has column stride d; vs is n_kv×d; the destination block rows×d at
            // (bi, r0, hi) with row stride h·d lies inside out and no other task writes it;
            // the product writes it whole before its rows are scaled.
            unsafe {
                matmul(
                    (rows, n_kv, d),
                    scores.as_mut_ptr(),
                    n_kv,
                    false,
                    Operand::rows(qs, d),
                    Operand {
                        ptr: ks.as_ptr(),
                        row_stride: 1,
                        col_stride: d,
                    },
                    Parallelism::None,
                );
                scores.set_len(rows * n_kv);
                softmax_rows(&mut scores, n_kv, &mut inv_sums);
                matmul(
                    (rows, d, n_kv),
                    block,
                    h * d,
                    false,
                    Operand::rows(&scores, n_kv),
                    Operand::rows(vs, d),
                    Parallelism::None,
                );
                for (r, &inv) in inv_sums.iter().enumerate() {
                    for x in std::slice::from_raw_parts_mut(block.add(r * h * d), d) {
                        *x *= inv;
                    }
                }
            }
        });
    // SAFETY: the tasks' blocks cover every (batch, token, head), each written whole by the
    // second product (zeros when there are no keys).
    let out = unsafe { assume_init(out) };
    drop((qv, kv, vv));
    tensor(out, (b, n, h * d))
}
