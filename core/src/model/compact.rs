//! Dense-layer weights kept in their stored, compact form — GGUF blocks (Q4_0 … Q6_K, F16, BF16;
//! bf16/f16 checkpoints take the same form) or fp8 e4m3 with its scale — and expanded to compute
//! values only when a layer runs: row by row into the CPU kernels' buffer ([`RowReader`], used by
//! `cpu::expand`), or the whole layer into the compute dtype on other devices. Memory then stays
//! at the file's size instead of the upcast one.

use std::borrow::Cow;
use std::ops::Range;

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, GgmlType,
};
use candle_core::quantized::{GgmlDType, QStorage, QTensor, QuantizedType};
use candle_core::{bail, DType, Device, Result, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

/// Runs `$body` with `$T` the block type of GGUF type `$dtype`.
macro_rules! with_block_type {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            GgmlDType::F32 => {
                type $T = f32;
                $body
            }
            GgmlDType::F16 => {
                type $T = f16;
                $body
            }
            GgmlDType::BF16 => {
                type $T = bf16;
                $body
            }
            GgmlDType::Q4_0 => {
                type $T = BlockQ4_0;
                $body
            }
            GgmlDType::Q4_1 => {
                type $T = BlockQ4_1;
                $body
            }
            GgmlDType::Q5_0 => {
                type $T = BlockQ5_0;
                $body
            }
            GgmlDType::Q5_1 => {
                type $T = BlockQ5_1;
                $body
            }
            GgmlDType::Q8_0 => {
                type $T = BlockQ8_0;
                $body
            }
            GgmlDType::Q8_1 => {
                type $T = BlockQ8_1;
                $body
            }
            GgmlDType::Q2K => {
                type $T = BlockQ2K;
                $body
            }
            GgmlDType::Q3K => {
                type $T = BlockQ3K;
                $body
            }
            GgmlDType::Q4K => {
                type $T = BlockQ4K;
                $body
            }
            GgmlDType::Q5K => {
                type $T = BlockQ5K;
                $body
            }
            GgmlDType::Q6K => {
                type $T = BlockQ6K;
                $body
            }
            GgmlDType::Q8K => {
                type $T = BlockQ8K;
                $body
            }
        }
    };
}

/// A dense layer's weight (out, in) in its stored form.
pub struct CompactWeight {
    data: Data,
    outputs: usize,
    inputs: usize,
}

enum Data {
    /// GGUF blocks, rows of `inputs` values.
    Ggml(Box<QTensor>),
    /// fp8 e4m3fn values times a per-tensor scale (1 for unscaled files).
    Fp8 { values: Fp8Values, scale: f32 },
}

/// fp8 values: their bytes on the CPU (read by [`RowReader`]), a tensor on other devices.
enum Fp8Values {
    Host(Vec<u8>),
    Device(Tensor),
}

impl CompactWeight {
    /// A weight of GGUF blocks of `dtype`, `shape` (out, in), on `device`: `read` fills its
    /// bytes. On the CPU they are read straight into the blocks candle keeps (no second copy of
    /// the tensor, whose freed buffers would fragment the heap over a 6–12 GB load).
    pub fn ggml(
        dtype: GgmlDType,
        shape: (usize, usize),
        device: &Device,
        read: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<Self> {
        let elements = shape.0 * shape.1;
        let storage = match device {
            Device::Cpu => {
                QStorage::Cpu(with_block_type!(dtype, T => read_blocks::<T>(elements, read)?))
            }
            _ => {
                let mut bytes = vec![0u8; elements / dtype.block_size() * dtype.type_size()];
                read(&mut bytes)?;
                QStorage::from_data(Cow::Owned(bytes), device, dtype)?
            }
        };
        Ok(Self {
            data: Data::Ggml(Box::new(QTensor::new(storage, shape)?)),
            outputs: shape.0,
            inputs: shape.1,
        })
    }

    /// A weight of fp8 e4m3fn values, `shape` (out, in), times `scale`, on `device`: `read`
    /// fills its bytes.
    pub fn fp8(
        shape: (usize, usize),
        scale: f32,
        device: &Device,
        read: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<Self> {
        let mut bytes = vec![0u8; shape.0 * shape.1];
        read(&mut bytes)?;
        let values = match device {
            Device::Cpu => Fp8Values::Host(bytes),
            _ => Fp8Values::Device(Tensor::from_raw_buffer(
                &bytes,
                DType::F8E4M3,
                &[shape.0, shape.1],
                device,
            )?),
        };
        Ok(Self {
            data: Data::Fp8 { values, scale },
            outputs: shape.0,
            inputs: shape.1,
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
            Data::Fp8 {
                values: Fp8Values::Host(_),
                ..
            } => Device::Cpu,
            Data::Fp8 {
                values: Fp8Values::Device(t),
                ..
            } => t.device().clone(),
        }
    }

    /// A copy on `device` (the stored bytes uploaded as they are).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let data = match &self.data {
            Data::Ggml(q) => {
                let bytes = q.data()?;
                let storage = QStorage::from_data(bytes, device, q.dtype())?;
                Data::Ggml(Box::new(QTensor::new(
                    storage,
                    (self.outputs, self.inputs),
                )?))
            }
            Data::Fp8 { values, scale } => {
                let values = match (values, device) {
                    (Fp8Values::Host(b), Device::Cpu) => Fp8Values::Host(b.clone()),
                    (Fp8Values::Host(b), _) => Fp8Values::Device(Tensor::from_raw_buffer(
                        b,
                        DType::F8E4M3,
                        &[self.outputs, self.inputs],
                        device,
                    )?),
                    (Fp8Values::Device(t), _) => Fp8Values::Device(t.to_device(device)?),
                };
                Data::Fp8 {
                    values,
                    scale: *scale,
                }
            }
        };
        Ok(Self {
            data,
            outputs: self.outputs,
            inputs: self.inputs,
        })
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
                let values = match values {
                    Fp8Values::Device(t) => t.clone(),
                    Fp8Values::Host(b) => {
                        let shape = [self.outputs, self.inputs];
                        Tensor::from_raw_buffer(b, DType::F8E4M3, &shape, &Device::Cpu)?
                    }
                };
                (values.to_dtype(DType::F32)? * *scale as f64)?.to_dtype(dtype)
            }
        }
    }

    /// The stored bytes, when the weight is in host memory.
    pub fn host_bytes(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Ggml(q) => match q.data().ok()? {
                Cow::Borrowed(b) => Some(b),
                Cow::Owned(_) => None,
            },
            Data::Fp8 {
                values: Fp8Values::Host(b),
                ..
            } => Some(b),
            Data::Fp8 { .. } => None,
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
                let Fp8Values::Host(bits) = values else {
                    bail!("compact weight rows: the weight is not on the CPU");
                };
                Source::Fp8(bits, *scale)
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

/// Reads rows of a CPU compact weight as f32.
pub struct RowReader<'a> {
    source: Source<'a>,
    inputs: usize,
}

enum Source<'a> {
    Ggml(GgmlDType, &'a [u8]),
    /// The bytes and their scale.
    Fp8(&'a [u8], f32),
}

impl RowReader<'_> {
    /// Writes inputs `ks` of `row` into `dst` (`ks.len()` values); `ks` starts and ends on
    /// multiples of the stored type's block size (or the row's end).
    pub fn read(&self, row: usize, ks: Range<usize>, dst: &mut [f32]) {
        let at = row * self.inputs;
        match &self.source {
            Source::Fp8(bits, scale) => {
                super::cpu::expand::fp8_to_f32(&bits[at + ks.start..at + ks.end], *scale, dst)
            }
            Source::Ggml(dtype, bytes) => {
                let range = at + ks.start..at + ks.end;
                with_block_type!(*dtype, T => blocks::<T>(bytes, range, dst))
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

/// Blocks of `T` holding `elements` values, their bytes filled by `read`.
fn read_blocks<T: GgmlType + Send + Sync + 'static>(
    elements: usize,
    read: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<Box<dyn QuantizedType>> {
    let mut blocks = vec![T::zeros(); elements / T::BLCK_SIZE];
    let len = std::mem::size_of_val(blocks.as_slice());
    // SAFETY: the blocks are plain data (numbers and arrays of them) valid for any bits, and the
    // byte view covers exactly their initialised memory.
    read(unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr() as *mut u8, len) })?;
    Ok(Box::new(blocks))
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
