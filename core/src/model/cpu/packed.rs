//! Dense layers on AVX-512 with the weight packed once, at load, into the layout the kernel
//! reads: 48-column panels, each stored k-major (48 contiguous values per input), 64-byte
//! aligned on huge pages. A call then packs only the activations, one block of inputs at a time,
//! and runs an 8×48 register tile (24 accumulators) over them. What this buys over gemm on a
//! transposed weight: no misaligned (cache-line-splitting) weight loads, no weight repacking,
//! the activation block packed once for both threads, and small column units handed out
//! dynamically, so a core slowed by a neighbour does not hold the other back.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::mem::MaybeUninit;
use std::ops::Range;

use candle_core::{bail, Result, Tensor};
use rayon::prelude::*;

use super::expand::{self, RowSource};
use super::linear::dense_output;
use super::rows::{as_rows, gelu_in_place, uninit, Rows};
use super::Out;
use crate::model::layers::Input;

/// Rows of the register tile (tokens).
const MR: usize = 8;
/// 16-lane vectors per tile row.
const NV: usize = 3;
/// Columns of the register tile and of a weight panel (outputs).
const NR: usize = 16 * NV;
/// Inputs per packed activation block: its MR×KC slices (24 KiB) stay in L1 while the weight
/// panels stream through.
const KC: usize = 768;
/// Panels per parallel task.
const UNIT: usize = 4;
/// f32 values per 64-byte cache line.
const LINE: usize = 16;

/// Whether this CPU runs the packed kernels (x86-64 with AVX-512F).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A buffer of f32 whose used part starts on a cache line; not initialised (its users write
/// every value they read).
struct Aligned {
    data: Vec<MaybeUninit<f32>>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `len` values from a cache-line boundary.
    fn new(len: usize) -> Self {
        let data = uninit(len + LINE);
        let start = data.as_ptr().align_offset(64).min(LINE);
        Self { data, start, len }
    }

    /// Makes room for `len` values, reusing the buffer when it is large enough.
    fn resize(&mut self, len: usize) {
        if self.data.len() < self.start + len {
            *self = Self::new(len);
        }
        self.len = len;
    }

    fn as_ptr(&self) -> *const f32 {
        self.data[self.start..].as_ptr() as *const f32
    }

    fn as_mut_slice(&mut self) -> &mut [MaybeUninit<f32>] {
        &mut self.data[self.start..][..self.len]
    }
}

/// A weight (out, in) packed for [`linear`]: `in` inputs, `out` outputs in ⌈out/48⌉ panels of
/// 48 columns (the last one zero-padded), each `in`×48 values, input-major.
pub struct PackedWeight {
    panels: Aligned,
    inputs: usize,
    outputs: usize,
}

impl PackedWeight {
    /// Packs `w` (out, in), f32 on the CPU; an error on a CPU without the kernels
    /// ([`available`]), so a packed weight exists only where they run.
    pub fn new(w: &Tensor) -> Result<Self> {
        let (outputs, inputs) = w.dims2()?;
        let w = as_rows(w)?;
        let src = Rows::require(&w)?;
        let mut packed = Self::scratch()?;
        packed.fill((outputs, inputs), 0..outputs, &|row, ks, dst| {
            dst.copy_from_slice(&src.row(row)[ks])
        });
        Ok(packed)
    }

    /// An empty weight, whose buffer [`Self::fill`] sizes and then reuses; an error on a CPU
    /// without the kernels.
    pub fn scratch() -> Result<Self> {
        if !available() {
            bail!("packed dense layers need AVX-512F");
        }
        Ok(Self {
            panels: Aligned::new(0),
            inputs: 0,
            outputs: 0,
        })
    }

    /// Packs the panels holding outputs `cols` of a weight of `shape` (out, in) read from
    /// `source`, reusing the buffer; the other panels are left unwritten and must not be read.
    pub fn fill(
        &mut self,
        (outputs, inputs): (usize, usize),
        cols: Range<usize>,
        source: &RowSource,
    ) {
        self.panels.resize(outputs.div_ceil(NR) * inputs * NR);
        (self.inputs, self.outputs) = (inputs, outputs);
        let dst = Out(self.panels.as_mut_slice().as_mut_ptr() as *mut f32);
        let emit = |p: usize, k0: usize, kc: usize, tile: &[f32]| {
            let valid = NR.min(outputs - p * NR);
            for k in 0..kc {
                let at = dst.at((p * inputs + k0 + k) * NR);
                for j in 0..NR {
                    let value = if j < valid { tile[j * kc + k] } else { 0.0 };
                    // SAFETY: panel p's input k0 + k lies inside the buffer sized above, and
                    // panel p belongs to this stripe alone.
                    unsafe { *at.add(j) = value };
                }
            }
        };
        let panels = cols.start / NR..cols.end.div_ceil(NR);
        expand::stripes((outputs, inputs), NR, panels, source, emit);
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.inputs
    }
}

/// Outputs `cols` of `cat(parts, −1) · Wᵀ + bias` (bias holding those outputs' values), without
/// building the concatenation: each part (…, in_i) may be a slice of columns; a GELU part's
/// activation is applied as the part is packed.
pub fn linear(
    parts: &[Input],
    w: &PackedWeight,
    cols: Range<usize>,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    if cols.start > cols.end || cols.end > w.outputs {
        bail!("linear layer: outputs {cols:?} of {}", w.outputs);
    }
    let tensors: Vec<&Tensor> = parts.iter().map(Input::tensor).collect();
    let gelu: Vec<bool> = parts.iter().map(|p| matches!(p, Input::Gelu(_))).collect();
    let n = cols.len();
    let product =
        |views: &[Rows], bias: Option<&[f32]>, out: Out| run(views, &gelu, w, cols, bias, out);
    // SAFETY: `run` writes every output value (its first block of inputs stores each tile).
    unsafe { dense_output(&tensors, (w.inputs, n), bias, product) }
}

/// The blocked product into `dst` (m × cols.len(), row-major): for each block of KC inputs, the
/// activations are packed (MR-row groups, input-major; GELU applied to the parts `gelu` marks),
/// then column units of UNIT panels run in parallel, each group of rows against each panel.
fn run(
    parts: &[Rows],
    gelu: &[bool],
    w: &PackedWeight,
    cols: Range<usize>,
    bias: Option<&[f32]>,
    dst: Out,
) {
    let (m, k, n) = (parts[0].rows, w.inputs, cols.len());
    let groups = m.div_ceil(MR);
    let first_panel = cols.start / NR;
    let panels = cols.end.div_ceil(NR) - first_panel;
    let mut packed = Aligned::new(groups * MR * KC.min(k));
    // All blocks in one call into the thread pool: the caller sleeps and wakes once, not twice
    // per block (1–2% of a 256-token forward, whose layers are short).
    rayon::scope(|_| {
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            pack_block(
                parts,
                gelu,
                m,
                k0..k0 + kc,
                &mut packed.as_mut_slice()[..groups * MR * kc],
            );
            let a = packed.as_ptr() as usize;
            (0..panels.div_ceil(UNIT))
                .into_par_iter()
                .with_max_len(1)
                .for_each(|unit| {
                    let unit_panels = unit * UNIT..(unit * UNIT + UNIT).min(panels);
                    for g in 0..groups {
                        for p in unit_panels.clone() {
                            let panel = first_panel + p;
                            let c0 = panel * NR;
                            // Output columns of this panel: its lanes that fall inside `cols`.
                            let lanes = cols.start.max(c0) - c0..cols.end.min(c0 + NR) - c0;
                            let tile = Tile {
                                a: (a as *const f32).wrapping_add(g * MR * kc),
                                w: w.panels.as_ptr().wrapping_add((panel * k + k0) * NR),
                                kc,
                                rows: MR.min(m - g * MR),
                                lanes,
                                // The output block of the panel's first column (which may lie left
                                // of the output when `cols` starts inside the panel).
                                c: dst.at(g * MR * n).wrapping_add(c0).wrapping_sub(cols.start),
                                ldc: n,
                                init: match (k0, bias) {
                                    (0, Some(b)) => Init::Bias(
                                        b.as_ptr().wrapping_add(c0).wrapping_sub(cols.start),
                                    ),
                                    (0, None) => Init::Zero,
                                    _ => Init::Accumulate,
                                },
                            };
                            // SAFETY: the CPU has AVX-512F (a PackedWeight exists only then);
                            // `tile` addresses a packed A slice of kc·MR values, a panel slice of
                            // kc·NR values, and (masked to `lanes`, `rows`) only output and bias
                            // values of this panel's columns inside `cols`, which this unit alone
                            // writes.
                            #[cfg(target_arch = "x86_64")]
                            unsafe {
                                tile.run()
                            }
                            #[cfg(not(target_arch = "x86_64"))]
                            let _ = tile;
                        }
                    }
                });
        }
    });
}

/// Packs inputs `ks` of the m rows of `parts` (concatenated along inputs) into `dst`: for each
/// group of MR rows, ks.len() × MR values, input-major; rows past m are zero. Writes run in
/// order (each input's MR values side by side), reads are MR sequential streams. The parts
/// `gelu` marks are replaced by their GELU in place, once packed (the GELU of 0 is 0).
fn pack_block(
    parts: &[Rows],
    gelu: &[bool],
    m: usize,
    ks: Range<usize>,
    dst: &mut [MaybeUninit<f32>],
) {
    let kc = ks.len();
    dst.par_chunks_mut(kc * MR)
        .enumerate()
        .for_each(|(g, block)| {
            let mut part_start = 0;
            for (part, &gelu) in parts.iter().zip(gelu) {
                let part_ks = part_start.max(ks.start)..(part_start + part.len).min(ks.end);
                if !part_ks.is_empty() {
                    let rows: [Option<&[f32]>; MR] = std::array::from_fn(|r| {
                        let row = g * MR + r;
                        (row < m).then(|| &part.row(row)[part_ks.start - part_start..])
                    });
                    let values =
                        &mut block[(part_ks.start - ks.start) * MR..][..part_ks.len() * MR];
                    for (i, dst) in values.chunks_exact_mut(MR).enumerate() {
                        for (d, row) in dst.iter_mut().zip(&rows) {
                            d.write(row.map_or(0.0, |row| row[i]));
                        }
                    }
                    if gelu {
                        // SAFETY: every value of `values` was written just above.
                        gelu_in_place(unsafe { &mut *(values as *mut _ as *mut [f32]) });
                    }
                }
                part_start += part.len;
            }
        });
}

/// What a tile adds its product to.
#[derive(Clone, Copy)]
enum Init {
    Zero,
    /// The bias values of the tile's columns.
    Bias(*const f32),
    /// The output's current values (a later block of inputs).
    Accumulate,
}

/// One MR×NR product `c (+)= a · w` over kc inputs.
struct Tile {
    a: *const f32,
    w: *const f32,
    kc: usize,
    rows: usize,
    lanes: Range<usize>,
    c: *mut f32,
    ldc: usize,
    init: Init,
}

#[cfg(target_arch = "x86_64")]
impl Tile {
    /// # Safety
    /// The CPU has AVX-512F; `a` holds kc·MR values and `w` kc·NR; for r < rows and lanes in
    /// `lanes`, `c + r·ldc + lane` (and `bias + lane`) are valid and not written by anyone else.
    #[target_feature(enable = "avx512f")]
    unsafe fn run(&self) {
        let masks: [__mmask16; NV] = std::array::from_fn(|v| {
            let lo = self.lanes.start.saturating_sub(16 * v).min(16);
            let hi = self.lanes.end.saturating_sub(16 * v).min(16);
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
        });
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let (mut a, mut w) = (self.a, self.w);
        for _ in 0..self.kc {
            // SAFETY: `w` holds the NR values of this input (the caller's promise: kc·NR in all).
            let wv: [__m512; NV] =
                std::array::from_fn(|v| unsafe { _mm512_loadu_ps(w.add(16 * v)) });
            // The panel streams from L2: ask for it six inputs ahead.
            for v in 0..NV {
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(6 * NR + 16 * v) as *const i8);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: `a` holds the MR values of this input (kc·MR in all).
                let x = _mm512_set1_ps(unsafe { *a.add(r) });
                for (v, acc) in row.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(x, wv[v], *acc);
                }
            }
            // SAFETY: one input further, at most one past the end of the panels.
            (a, w) = unsafe { (a.add(MR), w.add(NR)) };
        }
        for (r, row) in acc.iter().enumerate().take(self.rows) {
            let c = self.c.wrapping_add(r * self.ldc);
            for (v, &acc) in row.iter().enumerate() {
                let (at, mask) = (c.wrapping_add(16 * v), masks[v]);
                // SAFETY: the masked lanes are in `lanes`, whose outputs (and bias values) are
                // valid and this tile's alone.
                unsafe {
                    let base = match self.init {
                        Init::Zero => _mm512_setzero_ps(),
                        Init::Bias(b) => _mm512_maskz_loadu_ps(mask, b.wrapping_add(16 * v)),
                        Init::Accumulate => _mm512_maskz_loadu_ps(mask, at),
                    };
                    _mm512_mask_storeu_ps(at, mask, _mm512_add_ps(acc, base));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panel `p` of a filled weight.
    fn panel(w: &mut PackedWeight, p: usize) -> Vec<f32> {
        let size = w.inputs * NR;
        let values = &w.panels.as_mut_slice()[p * size..(p + 1) * size];
        // SAFETY: the test reads only panels `fill` wrote.
        unsafe { &*(values as *const _ as *const [f32]) }.to_vec()
    }

    /// The panel layout `fill` writes, checked value by value on any CPU (the kernel itself
    /// needs AVX-512; the layers' tests run it where the CPU has it).
    #[test]
    fn fill_writes_input_major_panels_of_the_requested_columns() {
        // 130 outputs: two whole panels and a partial one; 600 inputs: three fill steps.
        let (outputs, inputs) = (130, 600);
        let value = |r: usize, k: usize| (r * 1000 + k) as f32;
        let source = |row: usize, ks: Range<usize>, dst: &mut [f32]| {
            for (d, k) in dst.iter_mut().zip(ks) {
                *d = value(row, k);
            }
        };
        let mut w = PackedWeight {
            panels: Aligned::new(0),
            inputs: 0,
            outputs: 0,
        };
        // Columns 50..60 lie in panel 1 only: the others stay unwritten.
        w.fill((outputs, inputs), 50..60, &source);
        assert_eq!((w.inputs, w.outputs), (inputs, outputs));
        let one = panel(&mut w, 1);
        for k in [0, 255, 256, 599] {
            for j in 0..NR {
                assert_eq!(
                    one[k * NR + j],
                    value(NR + j, k),
                    "panel 1, input {k}, lane {j}"
                );
            }
        }
        // The whole weight: the last panel's lanes past the outputs are zeros.
        w.fill((outputs, inputs), 0..outputs, &source);
        let last = panel(&mut w, 2);
        for k in [0, 300, 599] {
            for j in 0..NR {
                let want = match 2 * NR + j < outputs {
                    true => value(2 * NR + j, k),
                    false => 0.0,
                };
                assert_eq!(last[k * NR + j], want, "panel 2, input {k}, lane {j}");
            }
        }
    }
}
