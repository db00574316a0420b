//! Weights read row by row (a compact weight's blocks, see `model::compact`) expanded into the
//! layout a dense kernel reads, in parallel, into one buffer that every layer of a model reuses
//! in turn: packed panels on AVX-512 CPUs ([`super::packed`], a stripe of 48 outputs at a time
//! through [`stripes`]), the plain (out, in) matrix for gemm elsewhere ([`super::linear`]).

use std::ops::Range;

use candle_core::{Result, Tensor};
use rayon::prelude::*;

use super::linear;
use super::packed::{self, PackedWeight};
use crate::model::layers::Input;

/// Writes inputs `ks` of a weight's row into a buffer of `ks.len()` values; `ks` starts on a
/// multiple of 256 (every GGUF block size divides it).
pub type RowSource<'a> = dyn Fn(usize, Range<usize>, &mut [f32]) + Sync + 'a;

/// `dst[i] = value(bits[i]) · scale` for fp8 e4m3fn bytes, vectorised (the bytes decoded with
/// integer and float ops, no table): the same values candle's conversion gives, NaN for
/// 0x7f / 0xff (e4m3fn has no infinities).
pub fn fp8_to_f32(bits: &[u8], scale: f32, dst: &mut [f32]) {
    fp8_row(bits, scale, dst)
}

super::simd_fn! {
    fn fp8_row(bits: &[u8], scale: f32, dst: &mut [f32]) {
        for (d, &b) in dst.iter_mut().zip(bits) {
            let magnitude = (b & 0x7f) as u32;
            // Normal: exponent e − 7 + 127 in f32's field, the 3 mantissa bits on top of its
            // mantissa; subnormal (e = 0): m · 2^−9.
            let normal = f32::from_bits((magnitude << 20) + (120 << 23));
            let subnormal = magnitude as f32 * (1.0 / 512.0);
            let v = if magnitude < 8 { subnormal } else { normal };
            let v = if magnitude == 0x7f { f32::NAN } else { v };
            let v = if b & 0x80 != 0 { -v } else { v };
            *d = v * scale;
        }
    }
}

/// Inputs per step.
const STEP: usize = 256;

/// For each stripe `s` in `stripes` (outputs `s·width ..`) of a weight of `shape` (out, in), in
/// parallel, and each step of inputs `k0..k0 + kc`: reads the stripe's rows into a tile (`kc`
/// values a row; rows past the outputs are zeros) and hands it to `emit(s, k0, kc, tile)`.
pub fn stripes(
    (outputs, inputs): (usize, usize),
    width: usize,
    stripes: Range<usize>,
    source: &RowSource,
    emit: impl Fn(usize, usize, usize, &[f32]) + Sync,
) {
    stripes.into_par_iter().for_each(|s| {
        let valid = width.min(outputs - s * width);
        let mut tile = vec![0f32; width * STEP];
        for k0 in (0..inputs).step_by(STEP) {
            let kc = STEP.min(inputs - k0);
            let tile = &mut tile[..width * kc];
            for (j, row) in tile.chunks_exact_mut(kc).take(valid).enumerate() {
                source(s * width + j, k0..k0 + kc, row);
            }
            emit(s, k0, kc, tile);
        }
    });
}

/// A weight expanded for the kernel this CPU runs.
pub enum Expanded {
    Packed(PackedWeight),
    Plain(Plain),
}

impl Expanded {
    /// An empty buffer for this CPU's kernel; the first [`Self::fill`] sizes it.
    pub fn new() -> Result<Self> {
        Ok(match packed::available() {
            true => Self::Packed(PackedWeight::scratch()?),
            false => Self::Plain(Plain::default()),
        })
    }

    /// Expands outputs `cols` of a weight of `shape` (out, in) read from `source`.
    pub fn fill(&mut self, shape: (usize, usize), cols: Range<usize>, source: &RowSource) {
        match self {
            Self::Packed(w) => w.fill(shape, cols, source),
            Self::Plain(w) => w.fill(shape, cols, source),
        }
    }

    /// Outputs `cols` (those last filled) of `cat(parts, −1) · Wᵀ + bias`, the bias holding
    /// those outputs' values.
    pub fn linear(
        &self,
        parts: &[Input],
        cols: Range<usize>,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        match self {
            Self::Packed(w) => packed::linear(parts, w, cols, bias),
            Self::Plain(w) => w.linear(parts, cols, bias),
        }
    }
}

/// A weight (out, in) expanded row-major for gemm, which reads it transposed through strides:
/// rows are written whole and in order, where a transposed layout scatters every write across
/// the buffer (measured 1.48× the f32 forward's time, against 1.29× for whole-weight
/// dequantization).
#[derive(Default)]
pub struct Plain {
    data: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Plain {
    /// Expands rows `cols` into the buffer, reusing it.
    fn fill(&mut self, (outputs, inputs): (usize, usize), cols: Range<usize>, source: &RowSource) {
        if self.data.len() < outputs * inputs {
            // Zeroed once: the rows a call leaves unwritten are never read, but stay defined.
            self.data = vec![0f32; outputs * inputs];
        }
        (self.inputs, self.outputs) = (inputs, outputs);
        if inputs == 0 {
            return;
        }
        self.data[cols.start * inputs..cols.end * inputs]
            .par_chunks_mut(inputs)
            .enumerate()
            .for_each(|(i, row)| {
                for k0 in (0..inputs).step_by(STEP) {
                    let ks = k0..(k0 + STEP).min(inputs);
                    source(cols.start + i, ks.clone(), &mut row[ks]);
                }
            });
    }

    fn linear(&self, parts: &[Input], cols: Range<usize>, bias: Option<&Tensor>) -> Result<Tensor> {
        // gemm reads stored values: GELU parts are computed first.
        let values = parts
            .iter()
            .map(|p| p.value().map_err(candle_core::Error::wrap))
            .collect::<Result<Vec<_>>>()?;
        let values: Vec<&Tensor> = values.iter().collect();
        let w = &self.data[cols.start * self.inputs..self.outputs * self.inputs];
        linear::linear_slice(
            &values,
            w,
            (self.inputs, cols.len()),
            (1, self.inputs),
            bias,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn fp8_decode_equals_candles_conversion_for_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let want: Vec<f32> = Tensor::from_raw_buffer(&bytes, DType::F8E4M3, &[256], &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1())
            .unwrap();
        for scale in [1.0f32, 0.003] {
            let mut got = vec![0f32; 256];
            fp8_to_f32(&bytes, scale, &mut got);
            for (b, (g, w)) in got.iter().zip(&want).enumerate() {
                let w = w * scale;
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "byte {b:#04x}: {g} vs {w}"
                );
            }
        }
    }
}
