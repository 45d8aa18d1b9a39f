#pragma once
// Layout-changing copies between contiguous row-major tensors of any dtype: permute (the kernel of
// transpose/permute) and slab copies along one dim (the kernels of concat, narrow, slice, split and
// index_select/embedding, forward and backward). Pure copies: the same bits for any thread count.
#include <cstdint>
#include <vector>

#include "tapegrad/framework/tensor.h"

namespace tg::kernels {

// out = x.permute(dims).contiguous() (PyTorch), so out.shape[i] = x.shape[dims[i]]; dims is a
// permutation of 0..rank-1 (already normalised, non-negative). Size-1 dims are dropped and dims that
// stay adjacent are merged first, so e.g. [B, T, H, D] -> [B, H, T, D] becomes a copy of contiguous
// runs of D elements (memcpy / vector loops); when the innermost dim moves, the copy runs in
// cache-sized 2-D tiles. Parallel over output blocks whose size depends only on the shape.
// Throws std::invalid_argument "[permute] ..." when dims is not a permutation.
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);

// Copies `count` slabs along `dim`: for every index o over the dims before `dim` and k < count,
//   dst[o, dst_start + k * dst_step, ...] = src[o, src_start + k * src_step, ...].
// src and dst have one dtype and agree on every size except at `dim`; steps are >= 1 and the ranges
// lie inside both tensors (the caller checks; violations throw "[copy_slabs] ...").
void copy_slabs(const Tensor& src, int64_t src_start, int64_t src_step, Tensor& dst, int64_t dst_start,
                int64_t dst_step, int64_t dim, int64_t count);

// Gathers slabs along `dim`: out[o, k, ...] = src[o, index[k], ...] for k < count; out has src's shape
// with size `count` at `dim`. Every index must lie in [0, src.size(dim)) (the caller checks).
Tensor gather_slabs(const Tensor& src, int64_t dim, const int64_t* index, int64_t count);

}  // namespace tg::kernels
