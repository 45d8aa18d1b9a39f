#include "framework/kernels/odometer.h"
#include "framework/kernels/permute.h"

#include <algorithm>
#include <cstring>

#include "tapegrad/framework/check.h"
#include "framework/kernels/parallel.h"

namespace tg::kernels {
namespace {

constexpr int64_t kTile = 64;              // edge of the 2-D transpose tiles, in elements
constexpr int64_t kMicro = 4;              // register blocks inside a tile
constexpr int64_t kChunkElems = 16384;     // elements copied per parallel chunk
constexpr int64_t kMemcpyBytes = 128;      // runs at least this long go through memcpy

template <class F> void dispatch_any(DType d, F&& f) {
  switch (d) {
    case DType::Float32: f(TypeTag<float>{}); return;
    case DType::Float64: f(TypeTag<double>{}); return;
    case DType::Int64: f(TypeTag<int64_t>{}); return;
    case DType::Bool: f(TypeTag<bool>{}); return;
  }
}

// Copies n contiguous elements; short runs use a loop the compiler vectorises (no call overhead).
template <class E> inline void copy_run(E* dst, const E* src, int64_t n) {
  if (n * static_cast<int64_t>(sizeof(E)) >= kMemcpyBytes) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(E));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// The output dims in order with their input strides, after dropping size-1 dims and merging output
// neighbours that are also input neighbours (in the same order). E.g. [B, T, H, D] with dims
// (0, 2, 1, 3) stays 4-d, while (0, 1, 3, 2) on [B, T, H, D] becomes [B*T, D, H].
struct Layout {
  Shape size;
  Shape in_stride;
};

Layout coalesce(const Shape& in_shape, const std::vector<int64_t>& dims) {
  Shape st = strides_of(in_shape);
  Layout l;
  for (int64_t d : dims) {
    int64_t n = in_shape[static_cast<size_t>(d)], s = st[static_cast<size_t>(d)];
    if (n == 1) continue;
    if (!l.size.empty() && l.in_stride.back() == n * s) {
      l.size.back() *= n;
      l.in_stride.back() = s;
    } else {
      l.size.push_back(n);
      l.in_stride.push_back(s);
    }
  }
  return l;
}

// Innermost output dim is also contiguous in the input: copies runs of L elements. The rows are
// visited in output order (sequential writes) or in input order (sequential reads), whichever makes
// the other side cycle through fewer far-apart streams: splitting heads [B, T, H, D] -> [B, H, T, D]
// reads in input order (writes cycle over H planes instead of reads over T rows), merging them back
// writes in output order.
template <class E> void copy_runs(const E* src, E* dst, const Layout& l) {
  size_t outer = l.size.size() - 1;
  Shape out_st = strides_of(l.size);
  std::vector<size_t> order(outer);   // the outer output dims, outermost first
  for (size_t i = 0; i < outer; ++i) order[i] = i;
  size_t in_inner = static_cast<size_t>(
      std::min_element(l.in_stride.begin(), l.in_stride.begin() + static_cast<std::ptrdiff_t>(outer)) -
      l.in_stride.begin());
  if (l.size[in_inner] < l.size[outer - 1])
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return l.in_stride[a] > l.in_stride[b]; });
  Shape size, s_st, d_st;
  for (size_t i : order) {
    size.push_back(l.size[i]);
    s_st.push_back(l.in_stride[i]);
    d_st.push_back(out_st[i]);
  }
  int64_t L = l.size.back(), rows = numel(size);
  parallel_for(rows, grain_for(L, kChunkElems), [&](int64_t r0, int64_t r1) {
    Odometer from(size, s_st, outer, r0), to(size, d_st, outer, r0);
    for (int64_t r = r0; r < r1; ++r, from.next(), to.next()) copy_run(dst + to.offset(), src + from.offset(), L);
  });
}

// Transposes one tile: d[a * ds + b] = s[b * ss + a] for a < wa, b < wb, in 4 x 4 register blocks
// (each block reads 4 short input rows and writes 4 short output rows).
template <class E> void transpose_tile(const E* s, int64_t ss, E* d, int64_t ds, int64_t wa, int64_t wb) {
  int64_t b = 0;
  for (; b + kMicro <= wb; b += kMicro) {
    int64_t a = 0;
    for (; a + kMicro <= wa; a += kMicro) {
      E m[kMicro][kMicro];
      for (int64_t i = 0; i < kMicro; ++i)
        for (int64_t j = 0; j < kMicro; ++j) m[i][j] = s[(b + i) * ss + a + j];
      for (int64_t j = 0; j < kMicro; ++j)
        for (int64_t i = 0; i < kMicro; ++i) d[(a + j) * ds + b + i] = m[i][j];
    }
    for (; a < wa; ++a)
      for (int64_t i = 0; i < kMicro; ++i) d[a * ds + b + i] = s[(b + i) * ss + a];
  }
  for (; b < wb; ++b)
    for (int64_t a = 0; a < wa; ++a) d[a * ds + b] = s[b * ss + a];
}

// Innermost output dim is strided in the input: 2-D tiles over (output dim q, which is the input's
// contiguous dim, and the innermost output dim), small enough to stay in L1 on both sides.
template <class E> void copy_tiles(const E* src, E* dst, const Layout& l) {
  size_t r = l.size.size();
  size_t q = static_cast<size_t>(std::find(l.in_stride.begin(), l.in_stride.end(), 1) - l.in_stride.begin());
  Shape out_st = strides_of(l.size);
  int64_t A = l.size[q], Bn = l.size[r - 1], P = l.in_stride[r - 1], Oq = out_st[q];
  Shape bsize, bin, bout;   // the remaining (batch) dims
  for (size_t i = 0; i + 1 < r; ++i) {
    if (i == q) continue;
    bsize.push_back(l.size[i]);
    bin.push_back(l.in_stride[i]);
    bout.push_back(out_st[i]);
  }
  int64_t ta = (A + kTile - 1) / kTile, tb = (Bn + kTile - 1) / kTile, tiles = numel(bsize) * ta * tb;
  parallel_for(tiles, grain_for(kTile * kTile, kChunkElems), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t batch = t / (ta * tb), ia = (t / tb) % ta, ib = t % tb;
      int64_t s_base = 0, d_base = 0;
      for (size_t i = bsize.size(); i-- > 0;) {
        int64_t k = batch % bsize[i];
        batch /= bsize[i];
        s_base += k * bin[i];
        d_base += k * bout[i];
      }
      int64_t a0 = ia * kTile, b0 = ib * kTile;
      transpose_tile(src + s_base + b0 * P + a0, P, dst + d_base + a0 * Oq + b0, Oq, std::min(A - a0, kTile),
                     std::min(Bn - b0, kTile));
    }
  });
}

// dst[o * dst_os + dst_row(k) * inner + j] = src[o * src_os + src_row(k) * inner + j] for o < outer,
// k < count, j < inner; parallel over the (o, k) rows.
template <class E, class SrcRow, class DstRow>
void copy_rows(const E* src, int64_t src_os, SrcRow src_row, E* dst, int64_t dst_os, DstRow dst_row, int64_t outer,
               int64_t count, int64_t inner) {
  if (count <= 0 || inner <= 0) return;
  parallel_for(outer * count, grain_for(inner, kChunkElems), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t o = t / count, k = t % count;
      copy_run(dst + o * dst_os + dst_row(k) * inner, src + o * src_os + src_row(k) * inner, inner);
    }
  });
}

int64_t product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

}  // namespace

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  int64_t rank = x.dim();
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  bool ok = static_cast<int64_t>(dims.size()) == rank;
  for (size_t i = 0; ok && i < dims.size(); ++i) {
    ok = dims[i] >= 0 && dims[i] < rank && !seen[static_cast<size_t>(dims[i])];
    if (ok) seen[static_cast<size_t>(dims[i])] = true;
  }
  TG_CHECK(ok, "permute", "dims must list each of the ", rank, " dims once; got dims=", to_string(dims),
           ", x=", to_string(x.shape()));
  Shape out_shape(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) out_shape[i] = x.shape()[static_cast<size_t>(dims[i])];
  Tensor out(out_shape, x.dtype());
  if (x.numel() == 0) return out;
  Layout l = coalesce(x.shape(), dims);
  dispatch_any(x.dtype(), [&](auto tag) {
    using E = typename decltype(tag)::type;
    const E* src = x.data<E>();
    E* dst = out.data<E>();
    if (l.size.size() <= 1) {   // nothing moves: a plain copy in parallel chunks
      int64_t n = x.numel();
      parallel_for(n, kChunkElems, [&](int64_t i0, int64_t i1) { copy_run(dst + i0, src + i0, i1 - i0); });
    } else if (l.in_stride.back() == 1) {
      copy_runs(src, dst, l);
    } else {
      copy_tiles(src, dst, l);
    }
  });
  return out;
}

void copy_slabs(const Tensor& src, int64_t src_start, int64_t src_step, Tensor& dst, int64_t dst_start,
                int64_t dst_step, int64_t dim, int64_t count) {
  const Shape &ss = src.shape(), &ds = dst.shape();
  bool ok = src.dtype() == dst.dtype() && ss.size() == ds.size() && dim >= 0 && dim < src.dim();
  for (size_t i = 0; ok && i < ss.size(); ++i) ok = static_cast<int64_t>(i) == dim || ss[i] == ds[i];
  TG_CHECK(ok, "copy_slabs", "tensors differ outside dim ", dim, "; got src=", describe(src), ", dst=", describe(dst));
  if (count <= 0) return;
  size_t d = static_cast<size_t>(dim);
  int64_t src_last = src_start + (count - 1) * src_step, dst_last = dst_start + (count - 1) * dst_step;
  TG_CHECK(src_step >= 1 && dst_step >= 1 && src_start >= 0 && dst_start >= 0 && src_last < ss[d] &&
               dst_last < ds[d],
           "copy_slabs", "slab range out of bounds at dim ", dim, "; got src=", to_string(ss), ", dst=", to_string(ds),
           ", src_start=", src_start, ", src_step=", src_step, ", dst_start=", dst_start, ", dst_step=", dst_step,
           ", count=", count);
  int64_t outer = product(ss, 0, d), inner = product(ss, d + 1, ss.size());
  dispatch_any(src.dtype(), [&](auto tag) {
    using E = typename decltype(tag)::type;
    const E* s = src.data<E>() + src_start * inner;
    E* t = dst.data<E>() + dst_start * inner;
    int64_t s_os = ss[d] * inner, d_os = ds[d] * inner;
    if (src_step == 1 && dst_step == 1) {   // each outer index moves one contiguous block
      auto zero = [](int64_t) { return int64_t{0}; };
      copy_rows(s, s_os, zero, t, d_os, zero, outer, 1, count * inner);
    } else {
      copy_rows(s, s_os, [src_step](int64_t k) { return k * src_step; }, t, d_os,
                [dst_step](int64_t k) { return k * dst_step; }, outer, count, inner);
    }
  });
}

Tensor gather_slabs(const Tensor& src, int64_t dim, const int64_t* index, int64_t count) {
  const Shape& ss = src.shape();
  TG_CHECK(dim >= 0 && dim < src.dim() && count >= 0, "gather_slabs", "bad dim ", dim, " or count ", count,
           "; got src=", to_string(ss));
  size_t d = static_cast<size_t>(dim);
  Shape os = ss;
  os[d] = count;
  Tensor out(os, src.dtype());
  int64_t outer = product(ss, 0, d), inner = product(ss, d + 1, ss.size());
  dispatch_any(src.dtype(), [&](auto tag) {
    using E = typename decltype(tag)::type;
    copy_rows(src.data<E>(), ss[d] * inner, [index](int64_t k) { return index[k]; }, out.data<E>(), count * inner,
              [](int64_t k) { return k; }, outer, count, inner);
  });
  return out;
}

}  // namespace tg::kernels
