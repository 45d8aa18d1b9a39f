#include "framework/kernels/broadcast.h"

#include <algorithm>
#include <type_traits>

#include "tapegrad/framework/check.h"
#include "framework/kernels/odometer.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/simd.h"

namespace tg::kernels {
namespace {

// The sums of sum_to: double for float32 (a float running sum of 1e5 equal terms is off by 1e-4, of 1e6 by
// 1%: every broadcast operand's gradient is such a sum), T otherwise. One rounding to float at the end.
template <class T> using SumAcc = std::conditional_t<std::is_same_v<T, float>, double, T>;

// dst[j] = the sum of src[r * n_out + j] for r = 0, 1, ..., n_red - 1 in turn, j in [0, w): the sum over
// the leading dims of a [n_red, n_out] tensor, column by column in the generic loop's order (vectorised
// across a block of columns instead of walking an odometer per element).
template <class T>
TG_MULTIVERSION void add_leading_rows(const T* src, int64_t n_red, int64_t n_out, int64_t w, T* dst) {
  constexpr int64_t kCols = 256;   // the block's accumulators stay in L1
  SumAcc<T> acc[kCols];
  for (int64_t j0 = 0; j0 < w; j0 += kCols) {
    const int64_t n = std::min(kCols, w - j0);
    for (int64_t j = 0; j < n; ++j) acc[j] = SumAcc<T>(0);
    for (int64_t r = 0; r < n_red; ++r) {
      const T* row = src + r * n_out + j0;
      for (int64_t j = 0; j < n; ++j) acc[j] += row[j];
    }
    for (int64_t j = 0; j < n; ++j) dst[j0 + j] = static_cast<T>(acc[j]);
  }
}

}  // namespace

std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  Shape in_st = strides_of(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[i + off] = in[i] == 1 ? 0 : in_st[i];
  return st;
}

Tensor expand(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Shape os = broadcast_shapes("expand", t.shape(), shape);
  TG_CHECK(os == shape, "expand", "cannot expand ", to_string(t.shape()), " to ", to_string(shape));
  Tensor out(shape, t.dtype());
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    broadcast_binary(t.data<T>(), t.shape(), t.data<T>(), Shape{}, out.data<T>(), shape, [](T x, T) { return x; });
  };
  switch (t.dtype()) {
    case DType::Float32: run(TypeTag<float>{}); break;
    case DType::Float64: run(TypeTag<double>{}); break;
    case DType::Int64: run(TypeTag<int64_t>{}); break;
    case DType::Bool: run(TypeTag<bool>{}); break;
  }
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& target) {
  if (g.shape() == target) return g;
  const Shape& gs = g.shape();
  TG_CHECK(gs.size() >= target.size(), "sum_to", "cannot reduce ", to_string(gs), " to ", to_string(target));
  size_t off = gs.size() - target.size();
  // Split g's dims into kept dims (target size == g size) and reduced dims (leading or size-1 in target).
  Shape kept_sizes, kept_strides, red_sizes, red_strides;
  Shape gst = strides_of(gs);
  for (size_t d = 0; d < gs.size(); ++d) {
    bool reduced = d < off || (target[d - off] == 1 && gs[d] != 1);
    TG_CHECK(reduced || d < off || target[d - off] == gs[d], "sum_to", "cannot reduce ", to_string(gs), " to ",
             to_string(target));
    (reduced ? red_sizes : kept_sizes).push_back(gs[d]);
    (reduced ? red_strides : kept_strides).push_back(gst[d]);
  }
  Tensor out = Tensor::zeros(target, g.dtype());
  int64_t n_out = numel(target), n_red = numel(red_sizes);
  // Every reduced dim (of size > 1) before every kept one: g is [n_red, n_out] row-major.
  bool leading = true, seen_kept = false;
  for (size_t d = 0; d < gs.size(); ++d) {
    if (gs[d] == 1) continue;
    bool reduced = d < off || target[d - off] == 1;
    leading = leading && !(reduced && seen_kept);
    seen_kept = seen_kept || !reduced;
  }
  dispatch_floating(g.dtype(), "sum_to", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* src = g.data<T>();
    T* dst = out.data<T>();
    if (leading) {
      parallel_for(n_out, grain_for(n_red, 8192), [&](int64_t o0, int64_t o1) {
        add_leading_rows(src + o0, n_red, n_out, o1 - o0, dst + o0);
      });
      return;
    }
    parallel_for(n_out, grain_for(n_red, 8192), [&](int64_t o0, int64_t o1) {
      Odometer out(kept_sizes, kept_strides, kept_sizes.size(), o0);
      for (int64_t o = o0; o < o1; ++o, out.next()) {
        Odometer red(red_sizes, red_strides, red_sizes.size(), 0);
        SumAcc<T> acc = 0;
        for (int64_t r = 0; r < n_red; ++r, red.next()) acc += src[out.offset() + red.offset()];
        dst[o] = static_cast<T>(acc);
      }
    });
  });
  return out;
}

}  // namespace tg::kernels
