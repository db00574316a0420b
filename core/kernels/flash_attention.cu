// FLUX's attention through FlashAttention-2's forward kernel, instantiated only for what FLUX
// runs: head dim 128, bf16, no mask, no dropout. The kernel headers come from the
// candle-flash-attn crate's sources (see .ci/build-cuda); this file is the one entry point.
#include <cstring>

#include "flash_fwd_launch_template.h"

extern "C" int flux_flash_attention_bf16_d128(
    const void *q, const void *k, const void *v, void *out, float *softmax_lse,
    int batch, int heads, int seqlen_q, int seqlen_k,
    // Strides in elements of q, k, v (same layout) and of out, for batch, head and row.
    int64_t in_batch_stride, int64_t in_head_stride, int64_t in_row_stride,
    int64_t out_batch_stride, int64_t out_head_stride, int64_t out_row_stride,
    float softmax_scale, void *stream) {
    Flash_fwd_params params;
    std::memset(&params, 0, sizeof(params));
    params.q_ptr = const_cast<void *>(q);
    params.k_ptr = const_cast<void *>(k);
    params.v_ptr = const_cast<void *>(v);
    params.o_ptr = out;
    params.softmax_lse_ptr = softmax_lse;
    params.q_batch_stride = params.k_batch_stride = params.v_batch_stride = in_batch_stride;
    params.q_head_stride = params.k_head_stride = params.v_head_stride = in_head_stride;
    params.q_row_stride = params.k_row_stride = params.v_row_stride = in_row_stride;
    params.o_batch_stride = out_batch_stride;
    params.o_head_stride = out_head_stride;
    params.o_row_stride = out_row_stride;

    auto round_up = [](int x, int m) { return (x + m - 1) / m * m; };
    params.b = batch;
    params.h = params.h_k = heads;
    params.h_h_k_ratio = 1;
    params.seqlen_q = seqlen_q;
    params.seqlen_k = seqlen_k;
    params.seqlen_q_rounded = round_up(seqlen_q, 128);
    params.seqlen_k_rounded = round_up(seqlen_k, 128);
    params.total_q = batch * seqlen_q;
    params.d = params.d_rounded = 128;

    params.scale_softmax = softmax_scale;
    params.scale_softmax_log2 = softmax_scale * float(M_LOG2E);
    // No dropout: keep everything.
    params.p_dropout = 1.f;
    params.p_dropout_in_uint8_t = 255;
    params.rp_dropout = 1.f;
    params.scale_softmax_rp_dropout = softmax_scale;
    // No causal or local window.
    params.window_size_left = params.window_size_right = -1;
    params.is_bf16 = true;
    params.is_seqlens_k_cumulative = true;
    params.num_splits = 1;

    run_mha_fwd_hdim128<cutlass::bfloat16_t, false>(params, reinterpret_cast<cudaStream_t>(stream));
    return static_cast<int>(cudaGetLastError());
}
