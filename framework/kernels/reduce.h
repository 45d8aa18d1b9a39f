#pragma once
// Reductions over dims (sum, mean, amax, max with indices), their scatter-shaped gradients, and the
// scatter-add that is the adjoint of gather_slabs (kernels/permute.h). Float32 or float64 tensors.
//
// Determinism: every output element is produced by one fixed sequence of operations that depends
// only on the shapes (and, for scatter_add_slabs, on the index values), never on the thread count.
// Sums accumulate in double (also for float32 inputs): the reduced elements of each output are split
// into fixed chunks of consecutive elements (row-major over the reduced dims), each chunk is summed
// in a fixed lane pattern, and the chunk partials are added in order.
#include <cstdint>
#include <vector>

#include "tapegrad/framework/tensor.h"

namespace tg::kernels {

// In all reductions `dims` are normalised (non-negative) and strictly increasing; an empty `dims`
// reduces nothing (a copy). The result has x's shape with the reduced dims set to 1 (keepdim) or
// removed. Bad dims throw std::invalid_argument "[reduce] ...".

// Sum over dims (torch.sum(x, dims, keepdim)); 0 for an empty reduction.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
// Mean over dims (torch.mean): the double-precision sum divided by the number of reduced elements
// (NaN for an empty reduction, as PyTorch).
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
// Maximum over dims (torch.amax); NaN wins. The reduction must not be empty (throws "[amax] ...").
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);

// Maximum along one dim with the index of its first occurrence (torch.max(x, dim, keepdim)); a NaN
// wins and its first index is taken. x.size(dim) must be > 0 (throws "[max] ...").
struct MaxDim {
  Tensor values;    // x's dtype
  Tensor indices;   // int64
};
MaxDim max_dim(const Tensor& x, int64_t dim, bool keepdim);

// Gradient of amax: gy (values' shape) split evenly among the elements of x equal to their maximum
// (NaN counting as equal to a NaN maximum), zero elsewhere. values and gy have the keepdim shape.
Tensor amax_backward(const Tensor& x, const Tensor& values, const Tensor& gy, const std::vector<int64_t>& dims);

// Gradient of max_dim: zeros of x_shape with gy[o, 0, i] written at [o, indices[o, 0, i], i].
// gy and indices have the keepdim shape.
Tensor max_dim_backward(const Tensor& gy, const Tensor& indices, const Shape& x_shape, int64_t dim);

// Adjoint of gather_slabs: out has src's shape with `size` at `dim`, zero-filled, and
//   out[o, index[k], ...] += src[o, k, ...]   for k < src.size(dim),
// each target slab adding its contributions in increasing k (deterministic with repeated indices).
// The slab at index `skip` (if in [0, size)) stays zero (embedding's padding_idx). Every index must
// lie in [0, size) (the caller checks).
Tensor scatter_add_slabs(const Tensor& src, int64_t dim, const int64_t* index, int64_t size, int64_t skip = -1);

}  // namespace tg::kernels
