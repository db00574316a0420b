//! Fused attention on CUDA: FlashAttention-2's forward kernel (`kernels/flash_attention.cu`),
//! built only for what FLUX runs (head dim 128, bf16, no mask). It never forms the seq×seq score
//! matrix (≈1 GB bf16 per call at 1024² with a Kontext reference) and reads q, k, v in place.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DevicePtrMut};
use candle_core::{CudaStorage, DType, Layout, Shape, Tensor};

use crate::error::Result;

/// The head dim the kernel is built for.
const HEAD_DIM: usize = 128;

extern "C" {
    fn flux_flash_attention_bf16_d128(
        q: *const core::ffi::c_void,
        k: *const core::ffi::c_void,
        v: *const core::ffi::c_void,
        out: *mut core::ffi::c_void,
        softmax_lse: *mut f32,
        batch: i32,
        heads: i32,
        seqlen_q: i32,
        seqlen_k: i32,
        in_batch_stride: i64,
        in_head_stride: i64,
        in_row_stride: i64,
        out_batch_stride: i64,
        out_head_stride: i64,
        out_row_stride: i64,
        softmax_scale: f32,
        stream: *mut core::ffi::c_void,
    ) -> i32;
}

/// Whether the fused kernel takes these (B, H, N, D) inputs: bf16 on CUDA with D = 128 and
/// q, k, v of one shape and layout with contiguous rows.
pub fn applies(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    let same = |t: &Tensor| {
        t.dims() == q.dims() && t.stride() == q.stride() && t.layout().start_offset() == 0
    };
    q.device().is_cuda()
        && q.dtype() == DType::BF16
        && q.rank() == 4
        && q.dim(3).is_ok_and(|d| d == HEAD_DIM)
        && q.stride()[3] == 1
        && q.layout().start_offset() == 0
        && same(k)
        && same(v)
}

/// Softmax attention over (B, H, N, D) inputs with the scale already in q; returns
/// (B, N, H·D) like the generic path. Callers check [`applies`] first.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, h, n, d) = q.dims4()?;
    // The kernel writes (B, N, H, D): flattening the last two gives the layers' layout.
    Ok(q.apply_op3_no_bwd(k, v, &FlashAttention)?
        .reshape((b, n, h * d))?)
}

struct FlashAttention;

impl candle_core::CustomOp3 for FlashAttention {
    fn name(&self) -> &'static str {
        "flux-flash-attention"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("flash attention runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        q_l: &Layout,
        k: &CudaStorage,
        _: &Layout,
        v: &CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (b, h, n, d) = q_l.shape().dims4()?;
        let stride = q_l.stride();
        let dev = q.device();
        let stream = dev.cuda_stream();
        let out_shape = Shape::from((b, n, h, d));
        let mut out = unsafe { dev.alloc::<half::bf16>(out_shape.elem_count())? };
        let mut lse = dev.alloc_zeros::<f32>(b * h * n)?;
        let (q, k, v) = (
            q.as_cuda_slice::<half::bf16>()?,
            k.as_cuda_slice::<half::bf16>()?,
            v.as_cuda_slice::<half::bf16>()?,
        );
        let status = {
            let (q_ptr, _q_guard) = q.device_ptr(&stream);
            let (k_ptr, _k_guard) = k.device_ptr(&stream);
            let (v_ptr, _v_guard) = v.device_ptr(&stream);
            let (o_ptr, _o_guard) = out.device_ptr_mut(&stream);
            let (lse_ptr, _lse_guard) = lse.device_ptr_mut(&stream);
            let dim = |x: usize| i32::try_from(x).map_err(candle_core::Error::wrap);
            let (bs, hs, rs) = (stride[0] as i64, stride[1] as i64, stride[2] as i64);
            // Output (B, N, H, D) contiguous: batch N·H·D, head D, row H·D.
            let (ob, oh, or) = ((n * h * d) as i64, d as i64, (h * d) as i64);
            unsafe {
                flux_flash_attention_bf16_d128(
                    q_ptr as *const _,
                    k_ptr as *const _,
                    v_ptr as *const _,
                    o_ptr as *mut _,
                    lse_ptr as *mut f32,
                    dim(b)?,
                    dim(h)?,
                    dim(n)?,
                    dim(n)?,
                    bs,
                    hs,
                    rs,
                    ob,
                    oh,
                    or,
                    1.0,
                    stream.cu_stream() as *mut _,
                )
            }
        };
        if status != 0 {
            candle_core::bail!("flash attention kernel failed (cudaError {status})");
        }
        Ok((CudaStorage::wrap_cuda_slice(out, dev.clone()), out_shape))
    }
}
