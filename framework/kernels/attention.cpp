#include "framework/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "framework/kernels/allocator.h"
#include "framework/kernels/bf16.h"
#include "framework/kernels/fast_math.h"
#include "framework/kernels/gemm.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/sbgemm.h"
#include "framework/kernels/sgemm.h"
#include "framework/kernels/simd.h"
#include "tapegrad/framework/random.h"

namespace tg::kernels {
namespace {

// Query rows per forward tile, from the shape only. Up to 96 queries (one sgemm tile high) and with at
// least 8 heads in all (tasks for the threads), the whole head is one tile (gpt-cpu's heads, L = 64,
// against 32-row tiles: forward 4% and backward 9% faster, min of alternated calls). Fewer heads keep
// 32-row tiles, so that one sequence's few heads still make several tasks. Long sequences take 96 rows:
// a head's packed keys and values are streamed 3x less often, at the cost of more causal scores above
// the diagonal (bench_mha --shape long, fwd+bwd: 96 rows measured ~10% faster than 32 before the
// per-head packing, ~3% after, within the noise; 192 to 512 rows no better). Those between keep 32 rows.
inline int64_t tile_rows(const AttentionDims& d) {
  if (d.L <= 96 && d.N * d.H >= 8) return std::max<int64_t>(d.L, 1);
  return d.L >= 512 ? 96 : 32;
}

// Under the causal flag the forward writes a row's probabilities up to its tile's last query (zeros
// beyond the row's own limit), then kProbPad more zero columns. The float32 sgemm's backward reads a row
// at most 5 columns beyond its limit (dv's key slivers of <= 6 keys start at their first key's query:
// sgemm.h, k_from_row), so its query tiles may be taller than the forward's: with the sgemm, up to 256
// queries, 8 heads and 64K probabilities per head, the whole head is one backward tile, and dk and dv
// come from one product each instead of a sum over tiles (mid, L = 256: backward 6-10% faster than with
// the forward's 32-row tiles). The other paths read whole tile rows: the forward's tiles.
constexpr int64_t kProbPad = 16;
inline int64_t backward_tile_rows(const AttentionDims& d, bool packs) {
  if (packs && d.L <= 256 && d.N * d.H >= 8 && d.L * d.S <= 65536) return std::max<int64_t>(d.L, 1);
  return tile_rows(d);
}

template <class T> const T* head_ptr(const T* base, HeadLayout l, int64_t n, int64_t h) {
  return base + l.offset + n * l.batch + h * l.head;
}
template <class T> T* head_ptr(T* base, HeadLayout l, int64_t n, int64_t h) {
  return base + l.offset + n * l.batch + h * l.head;
}

// Row stride for rows of ncol elements that are op(A) of the sgemm: ncol, or ncol + kRowPad where the
// float32 sgemm would copy rows ncol apart tile by tile (sgemm.h, sgemm_copies_a). Used for the saved
// probabilities (probs_row) and a tile's scratch rows (dropped probabilities, ds: op(A) of p v and ds k,
// read in place then; as the transposed op(A) of pd^T dout and ds^T q they are copied either way at
// >= 1024 keys). Not monotonic in ncol, so a buffer for any ncol <= S takes rows of S + kRowPad.
constexpr int64_t kRowPad = 16;
inline int64_t scratch_row(int64_t ncol) { return sgemm_copies_a(false, ncol) ? ncol + kRowPad : ncol; }

// Per-thread scratch buffer `slot`, grown on demand and kept: a task neither allocates nor zero-fills
// (TBB runs one task per call of the task functions below, and a zero-initialised vector per task
// cost more than the copy it replaced). Every element a task reads, it has written first, so the
// contents left by earlier tasks never matter. No task nests parallel work, so a thread never
// re-enters a task while it holds a buffer.
template <class T> T* scratch(int slot, int64_t n) {
  thread_local std::vector<T> buffers[4];
  std::vector<T>& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

// Columns a query row may attend to before the mask: all S, or j <= i under the causal flag.
inline int64_t row_limit(const AttentionConfig& cfg, int64_t i, int64_t S) {
  return cfg.causal ? std::min(S, i + 1) : S;
}

// Dropout keep test for element (b, i, j) of the [N*H, L, S] probabilities.
inline bool keep(const AttentionConfig& cfg, const AttentionDims& d, int64_t b, int64_t i, int64_t j) {
  uint64_t counter = cfg.first + static_cast<uint64_t>((b * d.L + i) * d.S + j);
  PhiloxBlock r = philox_block(cfg.seed, counter);
  return u01_from(r.w[0], r.w[1]) >= cfg.dropout_p;
}

// True when the products run through tapegrad's float32 sgemm, so that a head's keys and values can be
// packed once for all its query tiles instead of once per product (bench_mha --shape long: the
// re-packing was ~9% of fwd+bwd).
template <class T> bool packs_heads(const AttentionConfig& cfg) {
  if constexpr (std::is_same_v<T, float>) return cfg.products == Bf16Mode::float32 && sgemm_active();
  else return false;
}

// True when the products run through tapegrad's bf16 GEMM (native autocast), which takes the causal limits.
template <class T> bool bf16_gemm_products(const AttentionConfig& cfg) {
  if constexpr (std::is_same_v<T, float>)
    return uses_sbgemm(cfg.products);
  else return false;
}

// One head's keys or values x [S, D] (row stride ldx) packed for the sgemm: as x^T [D, S] (trans) or x.
struct HeadPack {
  const float* data = nullptr;   // nullptr: the products take x itself
  int64_t k = 0;                 // rows of each packed panel (D for x^T, S for x)
};

// One head's two packed operands, x^T then y for its [S, D] keys and values (forward: k^T, v; backward:
// v^T, k), stored in that order in kv_pack_floats(S, D) floats; head_packs gives both views of such a
// block, pack_head_pair fills one. The layout is known here only.
struct HeadPacks {
  HeadPack xt, y;
};

inline int64_t kv_pack_floats(int64_t S, int64_t D) {
  return sgemm_packed_b_floats(S, D) + sgemm_packed_b_floats(D, S);
}

inline HeadPacks head_packs(const float* block, int64_t S, int64_t D) {
  return {{block, D}, {block + sgemm_packed_b_floats(S, D), S}};
}

// x^T alone packed into block (the first part of a pair's layout).
inline HeadPack pack_head_keys(const float* x, int64_t ldx, int64_t S, int64_t D, float* block) {
  sgemm_pack_b(true, S, D, x, ldx, block);
  return head_packs(block, S, D).xt;
}

inline HeadPacks pack_head_pair(const float* x, int64_t ldx, const float* y, int64_t ldy, int64_t S, int64_t D,
                                float* block) {
  sgemm_pack_b(true, S, D, x, ldx, block);
  sgemm_pack_b(false, D, S, y, ldy, block + sgemm_packed_b_floats(S, D));
  return head_packs(block, S, D);
}

// Every head's packed k^T and v for one forward call, in a block of the tensor allocator.
class KvPackBuffer {
 public:
  KvPackBuffer() = default;
  KvPackBuffer(const KvPackBuffer&) = delete;
  KvPackBuffer& operator=(const KvPackBuffer&) = delete;
  ~KvPackBuffer() {
    if (data_) release(data_, bytes_);
  }
  void reset(size_t floats) {   // once, floats > 0
    bytes_ = floats * sizeof(float);
    data_ = static_cast<float*>(allocate(bytes_));
  }
  float* get() const { return data_; }

 private:
  float* data_ = nullptr;
  size_t bytes_ = 0;
};

// c[m, n] = alpha * a[m, kk] @ op(x)[0:kk, 0:n], op(x) = x^T or x for one head's x [S, D], from its
// packed panels when there are (the same bits: sgemm.h).
// Through the float32 sgemm or the bf16 GEMM (native autocast), a causal tile's product skips what the mask
// makes zero or never reads (sgemm.h, CausalLimits: `kind` for the tile whose first query is i0); the other
// paths compute it all.
template <class T>
inline void times_head(const AttentionConfig& cfg, bool trans, int64_t m, int64_t n, int64_t kk, T alpha, const T* a,
                       int64_t lda, const T* x, int64_t ldx, HeadPack pk, T* c, int64_t ldc,
                       CausalLimits::Kind kind, int64_t i0) {
  if constexpr (std::is_same_v<T, float>) {
    const CausalLimits limits{cfg.causal ? kind : CausalLimits::none, i0};
    if (pk.data) return sgemm_serial_packed_b(false, m, n, kk, alpha, a, lda, pk.data, pk.k, 0.0f, c, ldc, limits);
    if (packs_heads<T>(cfg))   // x not packed beforehand: the sgemm reads it in place or packs it itself
      return sgemm_serial(false, trans, m, n, kk, alpha, a, lda, x, ldx, 0.0f, c, ldc, nullptr, limits);
    if (bf16_gemm_products<T>(cfg))
      return sbgemm_serial(false, trans, m, n, kk, alpha, a, lda, x, ldx, 0.0f, c, ldc, nullptr, limits);
  }
  gemm_mixed_serial<T>(cfg.products, false, trans, m, n, kk, alpha, a, lda, x, ldx, T(0), c, ldc);
}

// c[ncol, D] = a[m, ncol]^T @ x[m, D] + beta * c for the tile whose first query is i0 (dv and dk): under
// the causal flag key j only gets the queries i >= j, which the float32 sgemm and the bf16 GEMM skip before
// they start.
template <class T>
inline void keys_from_tile(const AttentionConfig& cfg, bool packs, int64_t ncol, int64_t D, int64_t m, const T* a,
                           int64_t lda, const T* x, int64_t ldx, T beta, T* c, int64_t ldc, int64_t i0) {
  if constexpr (std::is_same_v<T, float>) {
    const CausalLimits limits{cfg.causal ? CausalLimits::k_from_row : CausalLimits::none, i0};
    if (packs) return sgemm_serial(true, false, ncol, D, m, 1.0f, a, lda, x, ldx, beta, c, ldc, nullptr, limits);
    if (bf16_gemm_products<T>(cfg))
      return sbgemm_serial(true, false, ncol, D, m, 1.0f, a, lda, x, ldx, beta, c, ldc, nullptr, limits);
  }
  gemm_mixed_serial<T>(cfg.products, true, false, ncol, D, m, T(1), a, lda, x, ldx, beta, c, ldc);
}

// qs[r, :] = q[i0 + r, :] / sqrt(D), a true division as PyTorch does before the score GEMM.
template <class T> inline void scaled_queries(const T* qh, int64_t row, int64_t i0, int64_t m, int64_t D, T* qs) {
  T root = static_cast<T>(std::sqrt(static_cast<double>(D)));
  for (int64_t r = 0; r < m; ++r) {
    const T* src = qh + (i0 + r) * row;
    for (int64_t c = 0; c < D; ++c) qs[r * D + c] = src[c] / root;
  }
}

// x[0, n) <- exp(x - max) * (1 / sum) through the vectorisable exp (arguments <= 0), the max by lane_max
// (order-free) and the sum in lane_sum's fixed lanes; false (x untouched) when the max is -inf. The
// normalisation is PyTorch's (its CPU softmax over the last dimension multiplies by the reciprocal of the
// sum): a division per element took 27% of the softmax's time (long, AVX-512, 16 lanes). The plain loops of
// the float64 rows; float rows take the same steps on lane vectors (softmax_rows_lanes).
template <class T> [[gnu::always_inline]] inline bool softmax_in_place(T* x, int64_t n) {
  const T mx = lane_max(x, n);
  if (mx == -std::numeric_limits<T>::infinity()) return false;
  for (int64_t j = 0; j < n; ++j) x[j] = std::max(x[j] - mx, kExpArgMin<T>);
  for (int64_t j = 0; j < n; ++j) x[j] = exp_nonpositive(x[j]);
  const T inv = T(1) / lane_sum<T>(n, [x](int64_t j) { return x[j]; });
  for (int64_t j = 0; j < n; ++j) x[j] *= inv;
  return true;
}

// x[0, lim) += the additive mask's row of query i of head h of batch n.
template <class T>
[[gnu::always_inline]] inline void add_mask_row(MaskView<T> mask, int64_t n, int64_t h, int64_t i, T* x, int64_t lim) {
  const T* mrow = mask.data + n * mask.batch + h * mask.head + i * mask.row;
  for (int64_t j = 0; j < lim; ++j) x[j] += mrow[j * mask.col];
}

// Row-wise masked softmax of sc[m, ncol] (row stride ld) in place (scores in, probabilities out); each row
// is zero from its causal limit up to column `zero_to` >= ncol (the padding of the saved probabilities too,
// in one fill). The float64 rows.
template <class T>
[[gnu::always_inline]] inline void softmax_rows_scalar(const AttentionConfig& cfg, MaskView<T> mask, int64_t n,
                                                       int64_t h, int64_t i0, int64_t m, int64_t ncol, T* sc,
                                                       int64_t ld, int64_t zero_to) {
  for (int64_t r = 0; r < m; ++r) {
    int64_t i = i0 + r, lim = row_limit(cfg, i, ncol);
    T* x = sc + r * ld;
    if (mask.data) add_mask_row(mask, n, h, i, x, lim);
    if (!softmax_in_place<T>(x, lim)) {   // every key masked: a zero row, not NaN
      std::fill(x, x + zero_to, T(0));
      continue;
    }
    std::fill(x + lim, x + zero_to, T(0));
  }
}

// x[j] = f(j) for j < n and x[n, end) = 0 for a float row (n <= end), f.template operator()<U>(j) giving
// x[j, j + lanes of U): on lane vectors V, the vector across n in one store with its lanes from n on zeroed (a
// std::fill of the rest was a call to memset per row); one by one (U = float) where no whole vector fits.
// f may read x itself: each of its vectors is read before it is stored.
template <class V, class F>
[[gnu::always_inline]] inline void write_row_zero_beyond(float* x, int64_t n, int64_t end, F&& f) {
  constexpr int64_t kL = kLanes<V>;
  int64_t j = 0;
  for (; j + kL <= n; j += kL) store(x + j, f.template operator()<V>(j));
  if (j < n && j + kL <= end) {
    store(x + j, keep_first(f.template operator()<V>(j), n - j, 0.0f));
    j += kL;
  }
  for (; j < n; ++j) x[j] = f.template operator()<float>(j);
  for (; j + kL <= end; j += kL) store(x + j, splat<V>(0.0f));
  for (; j < end; ++j) x[j] = 0.0f;
}

// softmax_rows_scalar for float rows on lane vectors V (one pass for exp and sum), compiled per vector ISA (a
// function of its own: were it left to the inliner, a large body could be emitted out of line, for the baseline
// only). Each row's x[lim, ncol) may be read and overwritten (it is zeroed afterwards): a causal row's last
// lim % 8 scores are then one whole run of 8 (fast_math.h, Lanes8), not one scalar exp each (gpt-cpu's causal
// rows, 1..64 long: attention forward 7% faster); those lanes hold scores the product wrote (it stores whole
// 16-column panels) and never used. The steps (max, exp and sum, reciprocal, scale and zeros) go kRowGroup rows
// at a time, each step for every row of the group before the next: a row's steps are one chain of latencies
// (~130 cycles for gpt-cpu's rows), which the rows of a group now overlap (gpt-cpu, one thread: the softmax
// ~25% faster). Each row's operations are those of the scalar steps, so are its bits.
template <class V>
TG_MULTIVERSION void softmax_rows_lanes(const AttentionConfig& cfg, MaskView<float> mask, int64_t n, int64_t h,
                                        int64_t i0, int64_t m, int64_t ncol, float* sc, int64_t ld, int64_t zero_to) {
  constexpr int64_t kRowGroup = 4;
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  for (int64_t r0 = 0; r0 < m; r0 += kRowGroup) {
    const int64_t rows = std::min(kRowGroup, m - r0);
    float* x[kRowGroup];
    int64_t lim[kRowGroup];
    float mx[kRowGroup], inv[kRowGroup];
    for (int64_t g = 0; g < rows; ++g) {
      const int64_t i = i0 + r0 + g;
      x[g] = sc + (r0 + g) * ld;
      lim[g] = row_limit(cfg, i, ncol);
      if (mask.data) add_mask_row(mask, n, h, i, x[g], lim[g]);
    }
    for (int64_t g = 0; g < rows; ++g) mx[g] = lane_max_lanes<V>(x[g], lim[g], ncol);
    for (int64_t g = 0; g < rows; ++g)
      if (mx[g] != kMinusInf) inv[g] = 1.0f / exp_shifted_lane_sum<V>(x[g], lim[g], mx[g], ncol);
    for (int64_t g = 0; g < rows; ++g) {
      if (mx[g] == kMinusInf) {   // every key masked: a zero row, not NaN
        std::fill(x[g], x[g] + zero_to, 0.0f);
        continue;
      }
      float* const xg = x[g];
      const float scale = inv[g];
      write_row_zero_beyond<V>(xg, lim[g], zero_to,
                               [&]<class U>(int64_t j) { return load<U>(xg + j) * splat<U>(scale); });
    }
  }
}

template <class T>
inline void softmax_rows(const AttentionConfig& cfg, MaskView<T> mask, int64_t n, int64_t h, int64_t i0, int64_t m,
                         int64_t ncol, T* sc, int64_t ld, int64_t zero_to) {
  if constexpr (std::is_same_v<T, float>) {
    with_float_lanes([&]<class V>() { softmax_rows_lanes<V>(cfg, mask, n, h, i0, m, ncol, sc, ld, zero_to); });
  } else {
    softmax_rows_scalar<T>(cfg, mask, n, h, i0, m, ncol, sc, ld, zero_to);
  }
}

// Forward tasks [t0, t1) (one task = one query tile of one head), compiled per vector ISA. The float32
// sgemm's packed k^T and v come from kvpack (every head's, packed before) or, without it (a head of one
// tile), k^T from the task itself and v from the sgemm, which reads it in place (a tile of at most 96 rows,
// v's rows under 1024 floats apart; else it packs it): gpt-cpu's attention, one thread, forward 0.327 ->
// 0.315 ms and backward (k likewise) 0.489 -> 0.470 ms against packing v (and k) in the task.
template <class T>
TG_MULTIVERSION void forward_tasks(int64_t t0, int64_t t1, int64_t tiles, T scale, const AttentionDims& d, const T* q,
                                   HeadLayout ql, const T* k, HeadLayout kl, const T* v, HeadLayout vl,
                                   MaskView<T> mask, const AttentionConfig& cfg, T* out, HeadLayout ol, T* probs,
                                   const float* kvpack) {
  const int64_t kTile = tile_rows(d);
  const bool pack_here = !kvpack && packs_heads<T>(cfg);
  T* qs = scratch<T>(0, kTile * d.D);   // [m, D] scaled queries
  T* sc = scratch<T>(1, kTile * (d.S + kRowPad));   // [m, ncol] probabilities (no `probs`, or dropped)
  const int64_t pr = probs_row(d);
  for (int64_t task = t0; task < t1; ++task) {
    const int64_t b = task / tiles, n = b / d.H, h = b % d.H;
    const int64_t i0 = (task % tiles) * kTile, m = std::min(kTile, d.L - i0);
    const int64_t ncol = cfg.causal ? std::min(d.S, i0 + m) : d.S;   // columns any row of the tile sees
    T* oh = head_ptr(out, ol, n, h);
    if (ncol == 0 || d.D == 0) {
      for (int64_t r = 0; r < m; ++r) std::fill(oh + (i0 + r) * ol.row, oh + (i0 + r) * ol.row + d.D, T(0));
      continue;
    }
    // Scores, then probabilities, straight in the rows of `probs` when it is wanted (no copy; its
    // columns >= ncol are never read back), else in the scratch: p [m, ncol] with row stride ld.
    T* p = probs ? probs + (b * d.L + i0) * pr : sc;
    int64_t ld = probs ? pr : scratch_row(ncol);
    scaled_queries(head_ptr(q, ql, n, h), ql.row, i0, m, d.D, qs);
    // kvpack: per head, k^T then v (attention_forward).
    HeadPacks kv = kvpack ? head_packs(kvpack + b * kv_pack_floats(d.S, d.D), d.S, d.D) : HeadPacks{};
    if constexpr (std::is_same_v<T, float>)
      if (pack_here)   // k^T only: v serves this one tile, as B read in place (see pack_here)
        kv.xt = pack_head_keys(head_ptr(k, kl, n, h), kl.row, d.S, d.D, scratch<float>(3, kv_pack_floats(d.S, d.D)));
    const HeadPack kp = kv.xt, vp = kv.y;
    times_head(cfg, true, m, ncol, d.D, T(1), qs, d.D, head_ptr(k, kl, n, h), kl.row, kp, p, ld,
               CausalLimits::cols_upto_row, i0);
    // With `probs`, the rows' zeros reach kProbPad columns beyond ncol: the padding a taller backward tile
    // may read.
    softmax_rows(cfg, mask, n, h, i0, m, ncol, p, ld, probs ? std::min(d.S, ncol + kProbPad) : ncol);
    if (cfg.dropout_p > 0) {   // the dropped probabilities go to the scratch; `probs` keeps p
      const int64_t sld = scratch_row(ncol);
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < ncol; ++j)
          sc[r * sld + j] = keep(cfg, d, b, i0 + r, j) ? p[r * ld + j] * scale : T(0);
      p = sc;
      ld = sld;
    }
    times_head(cfg, false, m, d.D, ncol, T(1), p, ld, head_ptr(v, vl, n, h), vl.row, vp, oh + i0 * ol.row, ol.row,
               CausalLimits::k_upto_row, i0);
  }
}

// Row r's dropout backward (the scalar code of either precision): dp_pre = dp * keep * scale up to lim.
template <class T> [[gnu::always_inline]] inline void dropout_grad_row(T* g, const T* pdr, int64_t lim, T scale) {
  for (int64_t j = 0; j < lim; ++j) g[j] = pdr[j] != T(0) ? g[j] * scale : T(0);
}

// Row r's ds written to ds_out's row too, zero from ncol to ld_out.
template <class T> [[gnu::always_inline]] inline void copy_ds_row(const T* g, int64_t ncol, T* drow, int64_t ld_out) {
  std::memcpy(drow, g, sizeof(T) * static_cast<size_t>(ncol));
  std::fill(drow + ncol, drow + ld_out, T(0));
}

// softmax_grad_rows for float rows on lane vectors V, compiled per vector ISA, each step for the kRowGroup
// rows of a group before the next (as softmax_rows_lanes: the rows' chains of latencies overlap).
template <class V>
TG_MULTIVERSION void softmax_grad_rows_lanes(const AttentionConfig& cfg, float scale, int64_t i0, int64_t m,
                                             int64_t ncol, const float* p, int64_t p_row, const float* pd,
                                             int64_t pd_row, float* dp, int64_t dp_row, float* ds_out,
                                             int64_t ld_out) {
  constexpr int64_t kRowGroup = 4;
  for (int64_t r0 = 0; r0 < m; r0 += kRowGroup) {
    const int64_t rows = std::min(kRowGroup, m - r0);
    int64_t lim[kRowGroup];
    float delta[kRowGroup];
    for (int64_t g = 0; g < rows; ++g) {
      lim[g] = row_limit(cfg, i0 + r0 + g, ncol);
      if (cfg.dropout_p > 0) dropout_grad_row(dp + (r0 + g) * dp_row, pd + (r0 + g) * pd_row, lim[g], scale);
    }
    for (int64_t g = 0; g < rows; ++g)
      delta[g] = dot_lane_sum<V>(p + (r0 + g) * p_row, dp + (r0 + g) * dp_row, lim[g], ncol);
    for (int64_t g = 0; g < rows; ++g) {   // ds = p * (dp - delta), zero from the row's limit to ncol
      const float *const pg = p + (r0 + g) * p_row, d = delta[g];
      float* const dpg = dp + (r0 + g) * dp_row;
      write_row_zero_beyond<V>(dpg, lim[g], ncol, [&]<class U>(int64_t j) {
        return load<U>(pg + j) * (load<U>(dpg + j) - splat<U>(d));
      });
      if (ds_out) copy_ds_row(dpg, ncol, ds_out + (r0 + g) * ld_out, ld_out);
    }
  }
}

// softmax_grad_rows for float64 rows, one row at a time in plain loops.
template <class T>
inline void softmax_grad_rows_scalar(const AttentionConfig& cfg, T scale, int64_t i0, int64_t m, int64_t ncol,
                                     const T* p, int64_t p_row, const T* pd, int64_t pd_row, T* dp, int64_t dp_row,
                                     T* ds_out, int64_t ld_out) {
  for (int64_t r = 0; r < m; ++r) {
    T* g = dp + r * dp_row;
    const T* pr = p + r * p_row;
    const T* pdr = pd + r * pd_row;
    const int64_t lim = row_limit(cfg, i0 + r, ncol);
    if (cfg.dropout_p > 0) dropout_grad_row(g, pdr, lim, scale);
    // (The terms beyond lim were p * dp = 0 * dp: +-0, which leave the lanes' sums as they are.)
    const T delta = lane_sum<T>(lim, [pr, g](int64_t j) { return pr[j] * g[j]; });
    for (int64_t j = 0; j < lim; ++j) g[j] = pr[j] * (g[j] - delta);
    std::fill(g + lim, g + ncol, T(0));
    if (ds_out) copy_ds_row(g, ncol, ds_out + r * ld_out, ld_out);
  }
}

// Softmax backward of a tile in place: dp [m, ncol], rows dp_row apart (gradient w.r.t. the dropped
// probabilities pd) becomes ds = p * (dp_pre - rowsum(p * dp_pre)), dp_pre = dp * keep * scale, in PyTorch's
// order: dropout's backward first (dp_pre rounded and stored), then the softmax's from those values, so that the
// row sum adds exactly the values it is subtracted from (a row of one visible key gets ds = 0, not the rounding
// error of a multiply-add contracted across the two). p and pd have row strides p_row and pd_row (pd != 0 is the
// keep test). Row r (query i0+r) reads dp only up to its causal limit (p is zero beyond it, and the score
// product may have left dp unwritten there) and its ds is zero beyond. With `ds_out` (row stride ld_out), ds is
// also written there, zero beyond column ncol.
template <class T>
inline void softmax_grad_rows(const AttentionConfig& cfg, T scale, int64_t i0, int64_t m, int64_t ncol, const T* p,
                              int64_t p_row, const T* pd, int64_t pd_row, T* dp, int64_t dp_row, T* ds_out,
                              int64_t ld_out) {
  if constexpr (std::is_same_v<T, float>) {
    with_float_lanes([&]<class V>() {
      softmax_grad_rows_lanes<V>(cfg, scale, i0, m, ncol, p, p_row, pd, pd_row, dp, dp_row, ds_out, ld_out);
    });
  } else {   // the float64 rows
    softmax_grad_rows_scalar(cfg, scale, i0, m, ncol, p, p_row, pd, pd_row, dp, dp_row, ds_out, ld_out);
  }
}

// Backward over heads [b0, b1) (batch * H + head), compiled per vector ISA.
template <class T>
TG_MULTIVERSION void backward_heads(int64_t b0, int64_t b1, T scale, T inv_root, const AttentionDims& d, const T* q,
                                    HeadLayout ql, const T* k, HeadLayout kl, const T* v, HeadLayout vl,
                                    const AttentionConfig& cfg, const T* probs, const T* dout, HeadLayout dol, T* dq,
                                    HeadLayout dql, T* dk, HeadLayout dkl, T* dv, HeadLayout dvl, T* dscores) {
  const bool packs = packs_heads<T>(cfg);
  const int64_t kTile = backward_tile_rows(d, packs), pr = probs_row(d);
  T* qs = scratch<T>(0, kTile * d.D);                                 // [m, D] scaled queries
  const int64_t tile_floats = kTile * (d.S + kRowPad);   // rows of scratch_row(ncol <= S) floats
  T* dp = scratch<T>(1, tile_floats);                                 // [m, ncol] dp, then ds
  T* pd = cfg.dropout_p > 0 ? scratch<T>(2, tile_floats) : nullptr;   // [m, ncol] dropped p
  float* kvpack = packs ? scratch<float>(3, kv_pack_floats(d.S, d.D)) : nullptr;   // v^T, k
  HeadPack kp, vp;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t n = b / d.H, h = b % d.H;
    T *dkh = head_ptr(dk, dkl, n, h), *dvh = head_ptr(dv, dvl, n, h), *dqh = head_ptr(dq, dql, n, h);
    // The first tile writes dk/dv rows [0, first) (beta 0), later tiles add to them; only the rows
    // beyond (the causal columns the first tile never sees) start from zero.
    const int64_t first = d.L == 0 ? 0 : (cfg.causal ? std::min(d.S, std::min(kTile, d.L)) : d.S);
    for (int64_t j = first; j < d.S; ++j) {
      std::fill(dkh + j * dkl.row, dkh + j * dkl.row + d.D, T(0));
      std::fill(dvh + j * dvl.row, dvh + j * dvl.row + d.D, T(0));
    }
    if constexpr (std::is_same_v<T, float>) {
      if (packs && d.L <= kTile) {   // one tile: k for it from the sgemm (as v in forward_tasks)
        vp = pack_head_keys(head_ptr(v, vl, n, h), vl.row, d.S, d.D, kvpack);
      } else if (packs) {
        const HeadPacks vk = pack_head_pair(head_ptr(v, vl, n, h), vl.row, head_ptr(k, kl, n, h), kl.row, d.S, d.D,
                                            kvpack);
        vp = vk.xt;
        kp = vk.y;
      }
    }
    for (int64_t i0 = 0; i0 < d.L; i0 += kTile) {
      const int64_t m = std::min(kTile, d.L - i0), ncol = cfg.causal ? std::min(d.S, i0 + m) : d.S;
      const int64_t sld = scratch_row(ncol);   // row stride of dp and pd
      const T* dot = head_ptr(dout, dol, n, h) + i0 * dol.row;
      if (ncol == 0 || d.D == 0) {
        for (int64_t r = 0; r < m; ++r) std::fill(dqh + (i0 + r) * dql.row, dqh + (i0 + r) * dql.row + d.D, T(0));
        if (dscores) std::fill(dscores + (b * d.L + i0) * d.S, dscores + (b * d.L + i0 + m) * d.S, T(0));
        continue;
      }
      const T* p = probs + (b * d.L + i0) * pr;   // [m, S] with row stride pr
      // pdp = dropout(p): the probabilities that multiplied v in forward (p itself without dropout).
      const T* pdp = p;
      int64_t pd_row = pr;
      if (cfg.dropout_p > 0) {
        for (int64_t r = 0; r < m; ++r) {   // p is zero beyond the row's limit (or unwritten: kProbPad)
          const int64_t lim = row_limit(cfg, i0 + r, ncol);
          for (int64_t j = 0; j < lim; ++j)
            pd[r * sld + j] = keep(cfg, d, b, i0 + r, j) ? p[r * pr + j] * scale : T(0);
          std::fill(pd + r * sld + lim, pd + r * sld + ncol, T(0));
        }
        pdp = pd;
        pd_row = sld;
      }
      const T acc = i0 == 0 ? T(0) : T(1);   // write (first tile) or accumulate into dk/dv
      // dv[0:ncol] += pd^T @ dout_tile
      keys_from_tile(cfg, packs, ncol, d.D, m, pdp, pd_row, dot, dol.row, acc, dvh, dvl.row, i0);
      // dp = dout_tile @ v[0:ncol]^T  (gradient w.r.t. the dropped probabilities; under the causal flag
      // only up to each row's limit, which is all softmax_grad_rows reads)
      times_head(cfg, true, m, ncol, d.D, T(1), dot, dol.row, head_ptr(v, vl, n, h), vl.row, vp, dp, sld,
                 CausalLimits::cols_upto_row, i0);
      softmax_grad_rows(cfg, scale, i0, m, ncol, p, pr, pdp, pd_row, dp, sld,
                        dscores ? dscores + (b * d.L + i0) * d.S : nullptr, d.S);
      // dq_tile = ds @ k[0:ncol] / sqrt(D);  dk[0:ncol] += ds^T @ (q_tile / sqrt(D))
      times_head(cfg, false, m, d.D, ncol, inv_root, dp, sld, head_ptr(k, kl, n, h), kl.row, kp, dqh + i0 * dql.row,
                 dql.row, CausalLimits::k_upto_row, i0);
      scaled_queries(head_ptr(q, ql, n, h), ql.row, i0, m, d.D, qs);
      keys_from_tile(cfg, packs, ncol, d.D, m, dp, sld, qs, d.D, acc, dkh, dkl.row, i0);
    }
  }
}

}  // namespace

// The probabilities are op(A) of the p v and p^T dout products: rows S floats apart, where that stride
// would make the float32 sgemm copy them tile by tile (S >= 1024, a multiple of 256: sgemm.h), are
// padded by kRowPad floats instead, which spares the copies and the cache-set conflicts both (long,
// S = 1024, 2 threads, median of alternated calls: forward 0.3-3% and backward 0-4% faster; the same
// bits). Other strides stay S: padding mid's 256 or gpt-cpu's 64 measured no better.
int64_t probs_row(const AttentionDims& d) { return scratch_row(d.S); }

template <class T>
void attention_forward(const AttentionDims& d, const T* q, HeadLayout ql, const T* k, HeadLayout kl, const T* v,
                       HeadLayout vl, MaskView<T> mask, const AttentionConfig& cfg, T* out, HeadLayout ol,
                       T* probs) {
  const int64_t kTile = tile_rows(d), tiles = (d.L + kTile - 1) / kTile, tasks = d.N * d.H * tiles;
  const T scale = cfg.dropout_p > 0 ? static_cast<T>(1.0 / (1.0 - cfg.dropout_p)) : T(1);
  // k^T and v of every head packed once for all the tiles of the head (float32 sgemm only), from the
  // tensor allocator's cache (the same size every step: no malloc, no fresh pages). A head of one tile
  // packs its own in its task instead, into a per-thread scratch that stays in cache for its products
  // (gpt-cpu, L = 64: forward 5-8% faster than packing every head first in a region of its own).
  // d.D > 0 and d.S > 0 wherever a task reaches its products.
  KvPackBuffer kvpack;
  if constexpr (std::is_same_v<T, float>) {
    if (packs_heads<T>(cfg) && tiles > 1 && tasks > 0 && d.D > 0 && d.S > 0) {
      const int64_t per = kv_pack_floats(d.S, d.D);
      kvpack.reset(static_cast<size_t>(d.N * d.H * per));
      parallel_for(d.N * d.H, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t n = b / d.H, h = b % d.H;
          pack_head_pair(head_ptr(k, kl, n, h), kl.row, head_ptr(v, vl, n, h), vl.row, d.S, d.D,
                         kvpack.get() + b * per);
        }
      });
    }
  }
  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    forward_tasks(t0, t1, tiles, scale, d, q, ql, k, kl, v, vl, mask, cfg, out, ol, probs, kvpack.get());
  });
}

template <class T>
void attention_backward(const AttentionDims& d, const T* q, HeadLayout ql, const T* k, HeadLayout kl, const T* v,
                        HeadLayout vl, const AttentionConfig& cfg, const T* probs, const T* dout, HeadLayout dol,
                        T* dq, HeadLayout dql, T* dk, HeadLayout dkl, T* dv, HeadLayout dvl, T* dscores) {
  const T scale = cfg.dropout_p > 0 ? static_cast<T>(1.0 / (1.0 - cfg.dropout_p)) : T(1);
  const T inv_root = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d.D)));
  // One task per (batch, head): dk and dv sum over every query tile of that head.
  parallel_for(d.N * d.H, 1, [&](int64_t b0, int64_t b1) {
    backward_heads(b0, b1, scale, inv_root, d, q, ql, k, kl, v, vl, cfg, probs, dout, dol, dq, dql, dk, dkl, dv, dvl,
                   dscores);
  });
}

template void attention_forward<float>(const AttentionDims&, const float*, HeadLayout, const float*, HeadLayout,
                                       const float*, HeadLayout, MaskView<float>, const AttentionConfig&, float*,
                                       HeadLayout, float*);
template void attention_forward<double>(const AttentionDims&, const double*, HeadLayout, const double*, HeadLayout,
                                        const double*, HeadLayout, MaskView<double>, const AttentionConfig&, double*,
                                        HeadLayout, double*);
template void attention_backward<float>(const AttentionDims&, const float*, HeadLayout, const float*, HeadLayout,
                                        const float*, HeadLayout, const AttentionConfig&, const float*, const float*,
                                        HeadLayout, float*, HeadLayout, float*, HeadLayout, float*, HeadLayout,
                                        float*);
template void attention_backward<double>(const AttentionDims&, const double*, HeadLayout, const double*, HeadLayout,
                                         const double*, HeadLayout, const AttentionConfig&, const double*,
                                         const double*, HeadLayout, double*, HeadLayout, double*, HeadLayout, double*,
                                         HeadLayout, double*);

}  // namespace tg::kernels
