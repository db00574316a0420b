//! Row views of f32 CPU tensors, output buffers, and the row-wise kernels: GELU, modulated
//! LayerNorm, gated residual.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, Device, Result, Shape, Storage, StorageRef, Tensor};
use rayon::prelude::*;

use super::{math, simd_fn};

/// A read view of an f32 CPU tensor as `rows` rows of `len` contiguous values, `stride` apart
/// (any tensor whose last dim is contiguous and whose other dims collapse into one, such as a
/// slice of columns of a matrix).
pub(super) struct Rows<'a> {
    storage: StorageRef<'a>,
    offset: usize,
    pub rows: usize,
    pub len: usize,
    pub stride: usize,
}

impl<'a> Rows<'a> {
    /// The view of `t`, or `None` when its layout is not rows (see [`as_rows`]).
    pub fn of(t: &'a Tensor) -> Result<Option<Self>> {
        let (storage, layout) = t.storage_and_layout();
        if !matches!(&*storage, Storage::Cpu(CpuStorage::F32(_))) {
            bail!("fused CPU kernel on a non-f32 or non-CPU tensor");
        }
        let (dims, strides) = (layout.dims(), layout.stride());
        let Some((&len, lead)) = dims.split_last() else {
            bail!("fused CPU kernel on a scalar");
        };
        let uniform = (len <= 1 || strides[dims.len() - 1] == 1)
            && (0..lead.len().saturating_sub(1))
                .all(|i| dims[i] == 1 || strides[i] == strides[i + 1] * dims[i + 1]);
        if !uniform {
            return Ok(None);
        }
        let stride = match lead.len() {
            0 => len,
            n => strides[n - 1],
        };
        Ok(Some(Self {
            storage,
            offset: layout.start_offset(),
            rows: lead.iter().product(),
            len,
            stride,
        }))
    }

    /// The view of `t`, which must be rows (as [`as_rows`] returns).
    pub fn require(t: &'a Tensor) -> Result<Self> {
        match Self::of(t)? {
            Some(rows) => Ok(rows),
            None => bail!(
                "fused CPU kernel on a tensor that is not rows: {:?}",
                t.layout()
            ),
        }
    }

    /// The values from the first row's start.
    pub fn data(&self) -> &[f32] {
        match &*self.storage {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.offset..],
            _ => &[],
        }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data()[i * self.stride..][..self.len]
    }
}

/// `t` itself when it can be viewed as rows, else a contiguous copy.
pub(super) fn as_rows(t: &Tensor) -> Result<Tensor> {
    match Rows::of(t)? {
        Some(_) => Ok(t.clone()),
        None => t.contiguous(),
    }
}

/// A new f32 CPU tensor of `shape` from `data`.
pub(super) fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// A buffer of `len` values for a kernel to write, on huge pages (see [`huge_pages`]) and not
/// initialised: every kernel writes its whole output, and zeroing it first would cost a memset
/// of the whole buffer whenever the allocator reuses memory. [`assume_init`] hands it over.
pub(super) fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    huge_pages(v.as_mut_ptr() as *mut f32, len);
    // SAFETY: the capacity holds len values, and MaybeUninit needs no initialisation.
    unsafe { v.set_len(len) };
    v
}

/// The values of `v`, a buffer from [`uninit`].
///
/// # Safety
/// Every value of `v` was written.
pub(super) unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<f32> has f32's layout, and every value is initialised (the caller's
    // promise); the allocation passes whole to the new Vec.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut f32, v.len(), v.capacity()) }
}

/// A rows × len output, written by `row(i, values)` for each row i in parallel tasks of about
/// 64 KiB; `row` must write all its values.
fn map_rows(
    rows: usize,
    len: usize,
    row: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let mut out = uninit(rows * len);
    let per_task = (16_384 / len.max(1)).max(1);
    out.par_chunks_mut(per_task * len.max(1))
        .enumerate()
        .with_max_len(1)
        .for_each(|(task, chunk)| {
            for (r, values) in chunk.chunks_mut(len.max(1)).enumerate() {
                row(task * per_task + r, values);
            }
        });
    // SAFETY: the chunks cover the buffer, and `row` writes every value of each.
    unsafe { assume_init(out) }
}

/// Has Linux back the allocation of `len` values at `ptr` with transparent huge pages where it
/// offers them: a large kernel output's first writes then fault 2 MiB at a time instead of
/// 4 KiB (the 4 KiB faults cost the 1024-token FLUX forward 5–10% of its time).
fn huge_pages(ptr: *mut f32, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + len * std::mem::size_of::<f32>()) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the allocation; MADV_HUGEPAGE changes only how
            // its pages are backed, never their contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

simd_fn! {
    /// `out[i] = gelu_tanh(x[i])`.
    fn gelu_row(x: &[f32], out: &mut [MaybeUninit<f32>]) {
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(math::gelu_tanh(v));
        }
    }
}

simd_fn! {
    /// `x[i] = gelu_tanh(x[i])`.
    fn gelu_in_place(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = math::gelu_tanh(*v);
        }
    }
}

/// GELU (tanh approximation) of `x`, vectorised and parallel; `x` may be a slice of columns.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let x = as_rows(x)?;
    let view = Rows::require(&x)?;
    let out = map_rows(view.rows, view.len, |r, out| gelu_row(view.row(r), out));
    drop(view);
    tensor(out, x.shape())
}

simd_fn! {
    /// `out = (1 + scale)·(x − mean)/√(var + 1e-6) + shift` for one row.
    fn modulate_row(x: &[f32], scale: &[f32], shift: &[f32], out: &mut [MaybeUninit<f32>]) {
        let n = x.len() as f32;
        let mean = math::sum(x) / n;
        let rstd = 1.0 / (math::sum_squares(x, mean) / n + 1e-6).sqrt();
        for (((o, &v), &sc), &sh) in out.iter_mut().zip(x).zip(scale).zip(shift) {
            o.write((v - mean) * rstd * (1.0 + sc) + sh);
        }
    }
}

/// `(1 + scale)·LayerNorm(x) + shift` in one pass per row: `x` (B, N, C), `shift` and `scale`
/// (B, 1, C) as the modulation gives them.
pub fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let (b, n, c) = x.dims3()?;
    let x = as_rows(x)?;
    let (shift, scale) = (shift.contiguous()?, scale.contiguous()?);
    let xs = Rows::require(&x)?;
    let (sh, sc) = (Rows::require(&shift)?, Rows::require(&scale)?);
    if sh.rows != b || sc.rows != b || sh.len != c || sc.len != c {
        bail!("modulation shapes do not match ({b}, {n}, {c})");
    }
    let out = map_rows(b * n, c, |r, out| {
        modulate_row(xs.row(r), sc.row(r / n), sh.row(r / n), out)
    });
    drop(xs);
    tensor(out, (b, n, c))
}

simd_fn! {
    /// `out = x + y·gate` for one row.
    fn gated_residual_row(x: &[f32], y: &[f32], gate: &[f32], out: &mut [MaybeUninit<f32>]) {
        for (((o, &x), &y), &g) in out.iter_mut().zip(x).zip(y).zip(gate) {
            o.write(x + y * g);
        }
    }
}

/// `x + y·gate` in one pass: `x` and `y` (B, N, C), either may be a slice of rows or columns,
/// `gate` (B, 1, C) as the modulation gives it.
pub fn gated_residual(x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Tensor> {
    let (b, n, c) = x.dims3()?;
    let (x, y, gate) = (as_rows(x)?, as_rows(y)?, gate.contiguous()?);
    let (xs, ys, gs) = (
        Rows::require(&x)?,
        Rows::require(&y)?,
        Rows::require(&gate)?,
    );
    if y.dims() != [b, n, c] || gs.rows != b || gs.len != c {
        bail!(
            "gated residual: x {:?}, y {:?}, gate {:?}",
            x.dims(),
            y.dims(),
            gate.dims()
        );
    }
    let out = map_rows(b * n, c, |r, out| {
        gated_residual_row(xs.row(r), ys.row(r), gs.row(r / n), out)
    });
    drop((xs, ys, gs));
    tensor(out, (b, n, c))
}
