#pragma once
// Broadcasting element-wise loops and their adjoint, sum_to.
#include <cstdint>
#include <vector>

#include "framework/kernels/parallel.h"
#include "tapegrad/framework/shape.h"
#include "tapegrad/framework/tensor.h"

namespace tg::kernels {

// Strides of `in` aligned to the rank of `out`, 0 on broadcast dims.
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);

// out[i] = f(a[ia], b[ib]) over out_shape, with NumPy broadcasting. A, B, O are element types.
template <class A, class B, class O, class F>
void broadcast_binary(const A* a, const Shape& as, const B* b, const Shape& bs, O* out, const Shape& os, F&& f) {
  int64_t n = numel(os);
  if (n == 0) return;
  if (as == os && bs == os) {
    parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) out[i] = f(a[i], b[i]);
    });
    return;
  }
  std::vector<int64_t> sa = broadcast_strides(as, os), sb = broadcast_strides(bs, os);
  int64_t rank = static_cast<int64_t>(os.size());
  int64_t inner = rank ? os[static_cast<size_t>(rank - 1)] : 1;
  int64_t ia_in = rank ? sa[static_cast<size_t>(rank - 1)] : 0, ib_in = rank ? sb[static_cast<size_t>(rank - 1)] : 0;
  int64_t rows = n / inner;
  parallel_for(rows, grain_for(inner, 16384), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t ra = 0, rb = 0, rem = r;
      for (int64_t d = rank - 2; d >= 0; --d) {
        int64_t k = rem % os[static_cast<size_t>(d)];
        rem /= os[static_cast<size_t>(d)];
        ra += k * sa[static_cast<size_t>(d)];
        rb += k * sb[static_cast<size_t>(d)];
      }
      O* o = out + r * inner;
      for (int64_t j = 0; j < inner; ++j) o[j] = f(a[ra + j * ia_in], b[rb + j * ib_in]);
    }
  });
}

// Copies t broadcast to `shape` (any dtype); returns t itself when the shapes already agree.
Tensor expand(const Tensor& t, const Shape& shape);

// Sums g (of a shape that `target` broadcasts to) down to `target`: the gradient of a broadcast.
// Each output element adds its contributions in a fixed order (deterministic).
Tensor sum_to(const Tensor& g, const Shape& target);

}  // namespace tg::kernels
