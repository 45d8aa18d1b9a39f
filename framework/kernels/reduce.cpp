#include "framework/kernels/odometer.h"
#include "framework/kernels/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "tapegrad/framework/check.h"
#include "framework/kernels/broadcast.h"
#include "framework/kernels/parallel.h"

namespace tg::kernels {
namespace {

constexpr int64_t kChunk = 16384;   // reduced elements per partial (fixed: results never depend on threads)
constexpr int64_t kBlock = 256;     // outputs handled together when the innermost dim is kept
constexpr int kLanes = 8;           // independent accumulators inside a contiguous run

// A reduction: init, add (one element, or a partial result) and run (n contiguous elements, with
// kLanes independent accumulators combined in a fixed order, written so that the compiler vectorises it).
struct SumOp {
  using Acc = double;
  static Acc init() { return 0.0; }
  static void add(Acc& a, double x) { a += x; }
  template <class T> static Acc run(const T* x, int64_t n) {
    Acc lane[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int k = 0; k < kLanes; ++k) lane[k] += x[i + k];
    for (; i < n; ++i) lane[0] += x[i];
    for (int w = kLanes / 2; w >= 1; w /= 2)
      for (int k = 0; k < w; ++k) lane[k] += lane[k + w];
    return lane[0];
  }
};

template <class T> struct MaxOp {
  using Acc = T;
  static Acc init() { return -std::numeric_limits<T>::infinity(); }
  static void add(Acc& a, T x) { a = (x > a || x != x) ? x : a; }   // NaN wins
  static Acc run(const T* x, int64_t n) {
    T best[kLanes], nan[kLanes];   // nan[k] turns NaN once lane k has seen a NaN
    for (int k = 0; k < kLanes; ++k) {
      best[k] = init();
      nan[k] = T(0);
    }
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int k = 0; k < kLanes; ++k) {
        T v = x[i + k];
        best[k] = best[k] > v ? best[k] : v;
        nan[k] = v != v ? v : nan[k];
      }
    for (; i < n; ++i) add(best[0], x[i]);
    for (int k = 1; k < kLanes; ++k) add(best[0], best[k]);
    for (int k = 0; k < kLanes; ++k)
      if (nan[k] != nan[k]) best[0] = nan[k];
    return best[0];
  }
};

// x's dims split into kept and reduced groups; size-1 dims are dropped and neighbours of the same
// kind merged, e.g. [B, T, E] reduced over {0, 1} is one reduced group of B*T with stride E.
struct Plan {
  Shape kept_size, kept_stride, red_size, red_stride;
  int64_t n_out = 1, n_red = 1;
  bool inner_reduced = true;   // the innermost group is reduced (contiguous runs per output)
};

Plan make_plan(const Shape& s, const std::vector<int64_t>& dims) {
  Plan p;
  Shape st = strides_of(s);
  int last_kind = -1;
  for (size_t i = 0, j = 0; i < s.size(); ++i) {
    bool red = j < dims.size() && dims[j] == static_cast<int64_t>(i);
    if (red) ++j;
    (red ? p.n_red : p.n_out) *= s[i];
    if (s[i] == 1) continue;
    Shape& size = red ? p.red_size : p.kept_size;
    Shape& stride = red ? p.red_stride : p.kept_stride;
    if (last_kind == static_cast<int>(red)) {
      size.back() *= s[i];
      stride.back() = st[i];
    } else {
      size.push_back(s[i]);
      stride.push_back(st[i]);
    }
    last_kind = red;
  }
  if (p.red_size.empty() && p.kept_size.empty()) {   // a single element
    p.red_size = {1};
    p.red_stride = {1};
  }
  p.inner_reduced = !p.red_size.empty() && p.red_stride.back() == 1;
  return p;
}

Shape reduced_shape(const char* op, const Shape& s, const std::vector<int64_t>& dims, bool keepdim) {
  for (size_t j = 0; j < dims.size(); ++j)
    TG_CHECK(dims[j] >= 0 && dims[j] < static_cast<int64_t>(s.size()) && (j == 0 || dims[j] > dims[j - 1]), op,
             "dims must be normalised and increasing; got dims=", to_string(dims), ", x=", to_string(s));
  Shape out;
  for (size_t i = 0, j = 0; i < s.size(); ++i) {
    bool red = j < dims.size() && dims[j] == static_cast<int64_t>(i);
    if (red) ++j;
    if (!red) out.push_back(s[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// Innermost group reduced: reduces the flat reduced range [r0, r1) of the output whose inputs start at base.
template <class Op, class T>
typename Op::Acc reduce_range(const T* src, int64_t base, const Plan& p, int64_t r0, int64_t r1) {
  int64_t L = p.red_size.back();
  Odometer od(p.red_size, p.red_stride, p.red_size.size() - 1, r0 / L);
  typename Op::Acc acc = Op::init();
  for (int64_t r = r0, j = r0 % L; r < r1; j = 0, od.next()) {
    int64_t e = std::min(L, j + (r1 - r));
    Op::add(acc, Op::run(src + base + od.offset() + j, e - j));
    r += e - j;
  }
  return acc;
}

// partial[c * n_out + o] (or out directly when there is one chunk) for every output o and chunk c.
template <class Op, class T, class Store>
void reduce_inner_reduced(const T* src, const Plan& p, int64_t n_chunks, Store store) {
  parallel_for(p.n_out * n_chunks, grain_for(std::min(p.n_red, kChunk), kChunk), [&](int64_t t0, int64_t t1) {
    Odometer kept(p.kept_size, p.kept_stride, p.kept_size.size(), t0 / n_chunks);
    for (int64_t t = t0; t < t1; ++t) {
      int64_t o = t / n_chunks, c = t % n_chunks;
      if (t != t0 && c == 0) kept.next();
      int64_t r0 = c * kChunk, r1 = std::min(p.n_red, r0 + kChunk);
      store(c, o, reduce_range<Op>(src, kept.offset(), p, r0, r1));
    }
  });
}

// Innermost group kept (I contiguous outputs): blocks of kBlock outputs accumulate whole input rows,
// in row-major order over the reduced groups, split into chunks of `rows` rows.
template <class Op, class T, class Store>
void reduce_inner_kept(const T* src, const Plan& p, int64_t rows, int64_t n_chunks, Store store) {
  int64_t I = p.kept_size.back(), n_blk = (I + kBlock - 1) / kBlock, n_outer = p.n_out / I;
  size_t outer_rank = p.kept_size.size() - 1;
  parallel_for(n_outer * n_blk * n_chunks, grain_for(rows * std::min(I, kBlock), kChunk), [&](int64_t t0, int64_t t1) {
    typename Op::Acc acc[kBlock];
    for (int64_t t = t0; t < t1; ++t) {
      int64_t c = t % n_chunks, b = (t / n_chunks) % n_blk, o = t / (n_chunks * n_blk);
      int64_t i0 = b * kBlock, w = std::min(I, i0 + kBlock) - i0;
      int64_t base = Odometer(p.kept_size, p.kept_stride, outer_rank, o).offset() + i0;
      int64_t r0 = c * rows, r1 = std::min(p.n_red, r0 + rows);
      std::fill(acc, acc + w, Op::init());
      Odometer red(p.red_size, p.red_stride, p.red_size.size(), r0);
      for (int64_t r = r0; r < r1; ++r, red.next()) {
        const T* row = src + base + red.offset();
        for (int64_t i = 0; i < w; ++i) Op::add(acc[i], row[i]);
      }
      for (int64_t i = 0; i < w; ++i) store(c, o * I + i0 + i, acc[i]);
    }
  });
}

// out[o] = finish(reduction of output o), finish(acc) = acc / divisor for sums.
template <class Op, class T> void reduce(const T* src, T* out, const Plan& p, double divisor) {
  if (p.n_out == 0) return;
  auto finish = [divisor](typename Op::Acc a) {
    if constexpr (std::is_same_v<Op, SumOp>) return static_cast<T>(a / divisor);
    else return static_cast<T>(a);
  };
  if (p.n_red == 0) {   // sum of nothing (amax rejects this earlier)
    std::fill(out, out + p.n_out, finish(Op::init()));
    return;
  }
  int64_t rows = p.inner_reduced ? kChunk : std::max<int64_t>(1, kChunk / std::min(p.kept_size.back(), kBlock));
  int64_t n_chunks = (p.n_red + rows - 1) / rows;
  std::vector<typename Op::Acc> partial(n_chunks > 1 ? static_cast<size_t>(n_chunks * p.n_out) : 0);
  auto store = [&](int64_t c, int64_t o, typename Op::Acc a) {
    if (n_chunks == 1) out[o] = finish(a);
    else partial[static_cast<size_t>(c * p.n_out + o)] = a;
  };
  if (p.inner_reduced) reduce_inner_reduced<Op>(src, p, n_chunks, store);
  else reduce_inner_kept<Op>(src, p, rows, n_chunks, store);
  if (n_chunks == 1) return;
  parallel_for(p.n_out, grain_for(n_chunks, kChunk), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      typename Op::Acc a = partial[static_cast<size_t>(o)];
      for (int64_t c = 1; c < n_chunks; ++c) Op::add(a, partial[static_cast<size_t>(c * p.n_out + o)]);
      out[o] = finish(a);
    }
  });
}

template <template <class> class OpOf>
Tensor reduce_tensor(const char* op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool is_mean) {
  Tensor out(reduced_shape(op, x.shape(), dims, keepdim), x.dtype());
  Plan p = make_plan(x.shape(), dims);
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    reduce<OpOf<T>>(x.data<T>(), out.data<T>(), p, is_mean ? static_cast<double>(p.n_red) : 1.0);
  });
  return out;
}

template <class> using SumOf = SumOp;

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_tensor<SumOf>("sum", x, dims, keepdim, false);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_tensor<SumOf>("mean", x, dims, keepdim, true);
}

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  for (int64_t d : dims)
    TG_CHECK(d < 0 || d >= x.dim() || x.shape()[static_cast<size_t>(d)] > 0, "amax",
             "cannot reduce over the zero-size dim ", d, "; got x=", to_string(x.shape()));
  return reduce_tensor<MaxOp>("amax", x, dims, keepdim, false);
}

MaxDim max_dim(const Tensor& x, int64_t dim, bool keepdim) {
  TG_CHECK(dim >= 0 && dim < x.dim(), "max", "dim ", dim, " out of range; got x=", to_string(x.shape()));
  const Shape& s = x.shape();
  size_t d = static_cast<size_t>(dim);
  int64_t n = s[d];
  TG_CHECK(n > 0, "max", "cannot reduce over the zero-size dim ", dim, "; got x=", to_string(s));
  Shape os = reduced_shape("max", s, {dim}, keepdim);
  MaxDim r{Tensor(os, x.dtype()), Tensor(os, DType::Int64)};
  if (x.numel() == 0) return r;   // a zero-size dim besides `dim`: empty values and indices, as PyTorch
  int64_t inner = numel(Shape(s.begin() + dim + 1, s.end())), outer = x.numel() / (n * inner);
  int64_t n_blk = (inner + kBlock - 1) / kBlock;
  int64_t* idx = r.indices.data<int64_t>();
  dispatch_floating(x.dtype(), "max", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* src = x.data<T>();
    T* val = r.values.data<T>();
    parallel_for(outer * n_blk, grain_for(n * std::min(inner, kBlock), kChunk), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        int64_t o = t / n_blk, i0 = (t % n_blk) * kBlock, i1 = std::min(inner, i0 + kBlock);
        T* best = val + o * inner;
        int64_t* arg = idx + o * inner;
        const T* first = src + o * n * inner;
        for (int64_t i = i0; i < i1; ++i) {
          best[i] = first[i];
          arg[i] = 0;
        }
        for (int64_t k = 1; k < n; ++k) {
          const T* row = first + k * inner;
          for (int64_t i = i0; i < i1; ++i) {
            bool take = row[i] > best[i] || (std::isnan(row[i]) && !std::isnan(best[i]));
            best[i] = take ? row[i] : best[i];
            arg[i] = take ? k : arg[i];
          }
        }
      }
    });
  });
  return r;
}

Tensor amax_backward(const Tensor& x, const Tensor& values, const Tensor& gy, const std::vector<int64_t>& dims) {
  TG_CHECK(values.shape() == gy.shape() && values.dtype() == x.dtype() && gy.dtype() == x.dtype(), "amax_backward",
           "operands differ; got x=", describe(x), ", values=", describe(values), ", gy=", describe(gy));
  Tensor mask(x.shape(), x.dtype()), grad(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "amax_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    broadcast_binary(x.data<T>(), x.shape(), values.data<T>(), values.shape(), mask.data<T>(), x.shape(),
                     [](T v, T m) { return T(v == m || (std::isnan(v) && std::isnan(m)) ? 1 : 0); });
    Tensor count = sum(mask, dims, true);   // >= 1 wherever gy is used: the maximum is one of the elements
    Tensor share(gy.shape(), gy.dtype());
    const T *pg = gy.data<T>(), *pc = count.data<T>();
    T* ps = share.data<T>();
    for (int64_t i = 0; i < gy.numel(); ++i) ps[i] = pg[i] / pc[i];
    broadcast_binary(mask.data<T>(), x.shape(), ps, share.shape(), grad.data<T>(), x.shape(),
                     [](T m, T s) { return m != T(0) ? s : T(0); });
  });
  return grad;
}

Tensor max_dim_backward(const Tensor& gy, const Tensor& indices, const Shape& x_shape, int64_t dim) {
  TG_CHECK(dim >= 0 && dim < static_cast<int64_t>(x_shape.size()) && gy.shape() == indices.shape() &&
               gy.numel() * x_shape[static_cast<size_t>(dim)] == numel(x_shape),
           "max_backward", "operands differ; got gy=", describe(gy), ", indices=", describe(indices),
           ", x=", to_string(x_shape), ", dim=", dim);
  Tensor grad = Tensor::zeros(x_shape, gy.dtype());
  size_t d = static_cast<size_t>(dim);
  int64_t n = x_shape[d], inner = numel(Shape(x_shape.begin() + dim + 1, x_shape.end()));
  int64_t outer = inner == 0 ? 0 : gy.numel() / inner;
  const int64_t* idx = indices.data<int64_t>();
  dispatch_floating(gy.dtype(), "max_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = gy.data<T>();
    T* out = grad.data<T>();
    parallel_for(outer, grain_for(inner, kChunk), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o)
        for (int64_t i = 0; i < inner; ++i) out[(o * n + idx[o * inner + i]) * inner + i] = pg[o * inner + i];
    });
  });
  return grad;
}

Tensor scatter_add_slabs(const Tensor& src, int64_t dim, const int64_t* index, int64_t size, int64_t skip) {
  TG_CHECK(dim >= 0 && dim < src.dim() && size >= 0, "scatter_add_slabs", "bad dim ", dim, " or size ", size,
           "; got src=", to_string(src.shape()));
  const Shape& ss = src.shape();
  size_t d = static_cast<size_t>(dim);
  int64_t count = ss[d], inner = numel(Shape(ss.begin() + dim + 1, ss.end()));
  Shape os = ss;
  os[d] = size;
  Tensor out = Tensor::zeros(os, src.dtype());
  int64_t outer = numel(Shape(ss.begin(), ss.begin() + dim));
  if (out.numel() == 0 || count == 0) return out;
  // Stable counting sort of k by index[k]: order[begin[j], begin[j + 1]) lists, increasing, the k with index[k] == j.
  std::vector<int64_t> begin(static_cast<size_t>(size) + 1, 0), order(static_cast<size_t>(count)), targets;
  for (int64_t k = 0; k < count; ++k) ++begin[static_cast<size_t>(index[k]) + 1];
  for (int64_t j = 0; j < size; ++j) {
    if (begin[static_cast<size_t>(j) + 1] > 0 && j != skip) targets.push_back(j);
    begin[static_cast<size_t>(j) + 1] += begin[static_cast<size_t>(j)];
  }
  std::vector<int64_t> fill(begin.begin(), begin.end() - 1);
  for (int64_t k = 0; k < count; ++k) order[static_cast<size_t>(fill[static_cast<size_t>(index[k])]++)] = k;
  int64_t n_t = static_cast<int64_t>(targets.size()), n_blk = (inner + kBlock - 1) / kBlock;
  dispatch_floating(src.dtype(), "scatter_add_slabs", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* ps = src.data<T>();
    T* po = out.data<T>();
    parallel_for(outer * n_t * n_blk, grain_for(std::min(inner, kBlock) * (count / std::max<int64_t>(n_t, 1)), kChunk),
                 [&](int64_t t0, int64_t t1) {
                   double acc[kBlock];
                   for (int64_t t = t0; t < t1; ++t) {
                     int64_t o = t / (n_t * n_blk), j = targets[static_cast<size_t>((t / n_blk) % n_t)];
                     int64_t i0 = (t % n_blk) * kBlock, w = std::min(inner, i0 + kBlock) - i0;
                     std::fill(acc, acc + w, 0.0);
                     for (int64_t q = begin[static_cast<size_t>(j)]; q < begin[static_cast<size_t>(j) + 1]; ++q) {
                       const T* row = ps + (o * count + order[static_cast<size_t>(q)]) * inner + i0;
                       for (int64_t i = 0; i < w; ++i) acc[i] += row[i];
                     }
                     T* dst = po + (o * size + j) * inner + i0;
                     for (int64_t i = 0; i < w; ++i) dst[i] = static_cast<T>(acc[i]);
                   }
                 });
  });
  return out;
}

}  // namespace tg::kernels
