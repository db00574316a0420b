//! Dense-layer weights kept in their stored, compact form — GGUF blocks (Q4_0 … Q6_K, F16, BF16)
//! or fp8 e4m3 with its scale — and expanded to compute values only when a layer runs: a block
//! of rows at a time into the CPU kernels' packed panels, or the whole layer into the compute
//! dtype on other devices. Memory then stays at the file's size instead of the upcast one.

use std::borrow::Cow;
use std::ops::Range;

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, GgmlType,
};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{bail, CpuStorage, DType, Device, Result, Storage, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

/// A dense layer's weight (out, in) in its stored form.
pub struct CompactWeight {
    data: Data,
    outputs: usize,
    inputs: usize,
}

enum Data {
    /// GGUF blocks, rows of `inputs` values.
    Ggml(QTensor),
    /// fp8 e4m3fn values times a per-tensor scale (1 for unscaled files).
    Fp8 { values: Tensor, scale: f32 },
}

impl CompactWeight {
    /// A weight from GGUF data: whole blocks of `dtype`, `shape` (out, in), placed on `device`.
    pub fn ggml(
        bytes: &[u8],
        dtype: GgmlDType,
        shape: (usize, usize),
        device: &Device,
    ) -> Result<Self> {
        let storage = QStorage::from_data(Cow::Borrowed(bytes), device, dtype)?;
        Ok(Self {
            data: Data::Ggml(QTensor::new(storage, shape)?),
            outputs: shape.0,
            inputs: shape.1,
        })
    }

    /// A weight from fp8 e4m3fn `values` (out, in) and its scale.
    pub fn fp8(values: Tensor, scale: f32) -> Result<Self> {
        if values.dtype() != DType::F8E4M3 {
            bail!("fp8 weight stored as {:?}", values.dtype());
        }
        let (outputs, inputs) = values.dims2()?;
        Ok(Self {
            data: Data::Fp8 { values, scale },
            outputs,
            inputs,
        })
    }

    /// (outputs, inputs).
    pub fn shape(&self) -> (usize, usize) {
        (self.outputs, self.inputs)
    }

    /// The device holding the weight.
    pub fn device(&self) -> Device {
        match &self.data {
            Data::Ggml(q) => q.device(),
            Data::Fp8 { values, .. } => values.device().clone(),
        }
    }

    /// The whole weight (out, in) as `dtype` on its device (on the CPU, rows in parallel).
    pub fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        if self.device().is_cpu() && self.inputs > 0 {
            let rows = self.rows()?;
            let mut values = vec![0f32; self.outputs * self.inputs];
            values
                .par_chunks_mut(self.inputs)
                .enumerate()
                .for_each(|(r, row)| rows.read(r, 0..self.inputs, row));
            return Tensor::from_vec(values, (self.outputs, self.inputs), &Device::Cpu)?
                .to_dtype(dtype);
        }
        match &self.data {
            Data::Ggml(q) => q.dequantize(&q.device())?.to_dtype(dtype),
            Data::Fp8 { values, scale } => {
                (values.to_dtype(DType::F32)? * *scale as f64)?.to_dtype(dtype)
            }
        }
    }

    /// A reader of the weight's rows as f32; the weight must be on the CPU.
    pub fn rows(&self) -> Result<RowReader<'_>> {
        let source = match &self.data {
            Data::Ggml(q) => {
                let bytes = match q.data()? {
                    Cow::Borrowed(b) => b,
                    Cow::Owned(_) => bail!("compact weight rows: the weight is not on the CPU"),
                };
                Source::Ggml(q.dtype(), bytes)
            }
            Data::Fp8 { values, scale } => {
                let (storage, layout) = values.storage_and_layout();
                let Storage::Cpu(CpuStorage::F8E4M3(v)) = &*storage else {
                    bail!("compact weight rows: the weight is not on the CPU");
                };
                if !layout.is_contiguous() || layout.start_offset() != 0 {
                    bail!("compact weight rows: fp8 values are not contiguous");
                }
                // SAFETY: `F8E4M3` is a one-byte `repr(transparent)` wrapper of its bits. The
                // storage guard is released at the end of this block, but the `Vec` stays where
                // it is while `values` (held by `self`, which the reader borrows) lives: candle
                // changes storage only in in-place ops, and nothing runs one on a weight.
                let bits = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len()) };
                let mut table = [0f32; 256];
                for (t, v) in table.iter_mut().zip(fp8_values()?) {
                    *t = v * scale;
                }
                Source::Fp8(bits, Box::new(table))
            }
        };
        let reader = RowReader {
            source,
            inputs: self.inputs,
        };
        reader.check_alignment()?;
        Ok(reader)
    }
}

/// The f32 value of every fp8 e4m3fn byte, decoded by candle.
fn fp8_values() -> Result<Vec<f32>> {
    let bytes: Vec<u8> = (0..=255).collect();
    Tensor::from_raw_buffer(&bytes, DType::F8E4M3, &[256], &Device::Cpu)?
        .to_dtype(DType::F32)?
        .to_vec1()
}

/// Reads rows of a CPU compact weight as f32.
pub struct RowReader<'a> {
    source: Source<'a>,
    inputs: usize,
}

enum Source<'a> {
    Ggml(GgmlDType, &'a [u8]),
    /// The bytes and the value of each byte, scale applied.
    Fp8(&'a [u8], Box<[f32; 256]>),
}

impl RowReader<'_> {
    /// Inputs the reader can cut a row at: multiples of this (the block size).
    pub fn granularity(&self) -> usize {
        match &self.source {
            Source::Ggml(d, _) => d.block_size(),
            Source::Fp8(..) => 1,
        }
    }

    /// Writes inputs `ks` of `row` into `dst` (`ks.len()` values); `ks` starts and ends on
    /// multiples of [`Self::granularity`] (or the row's end).
    pub fn read(&self, row: usize, ks: Range<usize>, dst: &mut [f32]) {
        let at = row * self.inputs;
        match &self.source {
            Source::Fp8(bits, table) => {
                for (d, &b) in dst.iter_mut().zip(&bits[at + ks.start..at + ks.end]) {
                    *d = table[b as usize];
                }
            }
            Source::Ggml(dtype, bytes) => {
                let range = at + ks.start..at + ks.end;
                match dtype {
                    GgmlDType::F32 => blocks::<f32>(bytes, range, dst),
                    GgmlDType::F16 => blocks::<f16>(bytes, range, dst),
                    GgmlDType::BF16 => blocks::<bf16>(bytes, range, dst),
                    GgmlDType::Q4_0 => blocks::<BlockQ4_0>(bytes, range, dst),
                    GgmlDType::Q4_1 => blocks::<BlockQ4_1>(bytes, range, dst),
                    GgmlDType::Q5_0 => blocks::<BlockQ5_0>(bytes, range, dst),
                    GgmlDType::Q5_1 => blocks::<BlockQ5_1>(bytes, range, dst),
                    GgmlDType::Q8_0 => blocks::<BlockQ8_0>(bytes, range, dst),
                    GgmlDType::Q8_1 => blocks::<BlockQ8_1>(bytes, range, dst),
                    GgmlDType::Q2K => blocks::<BlockQ2K>(bytes, range, dst),
                    GgmlDType::Q3K => blocks::<BlockQ3K>(bytes, range, dst),
                    GgmlDType::Q4K => blocks::<BlockQ4K>(bytes, range, dst),
                    GgmlDType::Q5K => blocks::<BlockQ5K>(bytes, range, dst),
                    GgmlDType::Q6K => blocks::<BlockQ6K>(bytes, range, dst),
                    GgmlDType::Q8K => blocks::<BlockQ8K>(bytes, range, dst),
                }
            }
        }
    }

    /// candle keeps blocks in a `Vec` of the block type, so the bytes are aligned for it; checked
    /// once here so that [`blocks`] may cast.
    fn check_alignment(&self) -> Result<()> {
        let Source::Ggml(_, bytes) = &self.source else {
            return Ok(());
        };
        if bytes.as_ptr().align_offset(4) != 0 {
            bail!("compact weight rows: block data is not aligned");
        }
        Ok(())
    }
}

/// Dequantizes the values `range` (whole blocks of `T`) of `bytes` into `dst`.
fn blocks<T: GgmlType>(bytes: &[u8], range: Range<usize>, dst: &mut [f32]) {
    let size = std::mem::size_of::<T>();
    debug_assert!(std::mem::align_of::<T>() <= 4);
    // SAFETY: `bytes` holds whole blocks of `T` (candle's storage of this type) and is 4-byte
    // aligned (checked by `RowReader::check_alignment`), which covers every block type's
    // alignment; blocks are plain data valid for any bits.
    let all = unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / size) };
    let b = T::BLCK_SIZE;
    T::to_float(&all[range.start / b..range.end / b], dst);
}
