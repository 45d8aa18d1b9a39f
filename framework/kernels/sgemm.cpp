// Driver of tapegrad's float32 GEMM (kernels/sgemm.h): dispatch, packing of op(B), tiles of C, KC
// blocks. The vector code itself is in kernels/sgemm_avx2.cpp and kernels/sgemm_avx512.cpp.
#include "framework/kernels/sgemm.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/kernels/gemm_blocking.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/scratch.h"
#include "framework/kernels/sgemm_kernel.h"

namespace tg::kernels {
namespace {

using sgemm_detail::kMRMax;
using sgemm_detail::kNR;

// The micro-kernel this CPU runs and the rows of its slivers: the 12-row AVX-512 kernel where the CPU
// has AVX-512F (the OS saving zmm state), else the 6-row AVX2 one. Both give the same bits.
// The AVX-512 one also computes two panels' micro-tiles in one pass over A (pair; null for AVX2).
struct MicroKernel {
  int64_t mr;
  void (*run)(bool, int64_t, const float*, int64_t, const float*, int64_t, const sgemm_detail::TileOut&);
  void (*pair)(bool, int64_t, const float*, int64_t, const float*, const float*, int64_t,
               const sgemm_detail::TileOut&, const sgemm_detail::TileOut&);
};
const MicroKernel& micro() {
  static const MicroKernel k = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
      return MicroKernel{kMRMax, sgemm_detail::micro_kernel_avx512, sgemm_detail::micro_kernel_avx512_pair};
    return MicroKernel{sgemm_detail::kMR, sgemm_detail::micro_kernel, nullptr};
  }();
  return k;
}

// KC: the longest k run per pass over a micro-tile. Its 16-column B panel (kc x 64 bytes) stays in
// L1 across the slivers of a tile; the tile's A block (96 x kc floats) in L2.
constexpr int64_t kKcMax = 320;
constexpr int64_t kMc = 96;    // rows of a task tile (16 slivers of 6)
constexpr int64_t kNc = 128;   // columns of a task tile (8 panels of 16)
// A with rows (or, transposed, columns) at least this many floats apart may be copied per tile (see
// ABlock, sgemm_copies_a).
constexpr int64_t kPackALd = 1024;
// Untransposed B with rows fewer than this many floats apart may be read in place (see run).
constexpr int64_t kInPlaceLd = 1024;
// ... and is in a parallel product of at most kInPlaceRows rows when it has at most kInPlaceFloats floats
// (512 KB). Xeon (Emerald Rapids), AVX-512, 2 threads, p10 of 2000-3000 alternated calls: the tiny LM's and
// gpt-cpu's backward products (768 rows or fewer) 2-12% faster (dX 768 x 128 from 128: 92 -> 82 us; dW 128 x
// 128 from 768 tokens: 89 -> 84 us); 2048-row products 2.5% slower (more slivers share each packed panel),
// 8-13% for mid's, whose B are 1.7 and 3 MB; long's attention backward 4-5% slower when its serial per-head
// products dk, dv (up to 1024 x 64 from a 96-row tile) read B in place.
constexpr int64_t kInPlaceRows = 8 * kMc;
constexpr int64_t kInPlaceFloats = int64_t{1} << 17;
// Sums at least this long may compute a wide product as C^T (see run).
constexpr int64_t kSwapMinK = 256;
// Below this many multiply-adds a product runs on the calling thread: tasks would cost more.
constexpr int64_t kSplitWork = int64_t{1} << 20;
// A parallel product with fewer tiles than this gets narrower ones (see run).
constexpr int64_t kMinTasks = 4;

// KC from K alone (equal blocks of at most kKcMax), so the accumulation order never depends on tiling.
int64_t kc_for(int64_t K) {
  const int64_t blocks = (K + kKcMax - 1) / kKcMax;
  return (K + blocks - 1) / blocks;
}

using gemm_blocking::ceil_div;
using gemm_blocking::fill_no_k;
using gemm_blocking::KRange;

struct Problem {
  bool trans_a;
  int64_t M, N, K, kc;
  float alpha, beta;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  bool trans_b;
  const float* bpack;      // panels first_packed.. of op(B), K x 16 each
  int64_t first_packed;    // 16-column panels before it are read from B in place (untransposed B only)
  float* C;
  int64_t ldc;
  const float* bias;
  bool pack_a;   // copy each tile's A block (see ABlock)
  int64_t panel_k = 0;   // rows per packed panel when more than K (sgemm_serial_packed_b), else K
  CausalLimits causal = {};
  bool c_transposed = false;   // the product computed is C^T (see run): element (i, j) stored at C[j * ldc + i]
  bool narrow_tiles = false;   // tiles of kNc / 2 columns (see tile_cols)
  bool tile_packs_b = false;   // each tile packs its own panels of op(B), KC block by KC block (see run)
  SgemmEpilogue epilogue = {};
};

// The k range of one sliver (rows i.., m of them) and whether it needs the panel at column j, from the
// causal limits (kernels/gemm_blocking.h).
KRange sliver_k(const Problem& p, int64_t i, int64_t m) { return gemm_blocking::causal_k_range(p.causal, i, m, p.K); }
bool sliver_wants_panel(const Problem& p, int64_t i, int64_t m, int64_t j) {
  return gemm_blocking::causal_wants_panel(p.causal, i, m, j);
}

// Where one KC block of a tile's op(A) rows is read from: A in place, or a contiguous copy of the block
// (rows at a stride of `ld` floats, or transposed: columns at `ld`). The copy avoids the cache-set
// conflicts of rows whose stride is a large power of two; the values, hence the bits, are the same.
struct ABlock {
  const float* base;   // op(A)[m0, k0]
  int64_t ld;
};

ABlock a_block(const Problem& p, int64_t m0, int64_t m1, int64_t k0, int64_t kc, float* buf) {
  if (!p.pack_a) return {p.trans_a ? p.A + k0 * p.lda + m0 : p.A + m0 * p.lda + k0, p.lda};
  if (!p.trans_a) {
    const int64_t ld = (kc + 7) / 8 * 8 + 8;
    for (int64_t i = m0; i < m1; ++i) std::copy_n(p.A + i * p.lda + k0, kc, buf + (i - m0) * ld);
    return {buf, ld};
  }
  // [kc, m1 - m0] rows of A^T's block, kMc apart.
  for (int64_t k = 0; k < kc; ++k) std::copy_n(p.A + (k0 + k) * p.lda + m0, m1 - m0, buf + k * kMc);
  return {buf, kMc};
}

// Panels q0..q1 of op(B) (columns 16 q on), each K x 16, into packed (panel q at (q - q0) * K * 16).
void pack_panels(bool trans_b, const float* B, int64_t ldb, int64_t N, int64_t K, int64_t q0, int64_t q1,
                 float* packed) {
  // Untransposed B: its full panels row by row (one contiguous read per row of B, not one 64-byte piece
  // per panel), then an edge panel.
  if (!trans_b) {
    const int64_t full_end = std::clamp(N / kNR, q0, q1);
    if (full_end > q0) sgemm_detail::pack_b_rows(B + q0 * kNR, ldb, K, full_end - q0, packed);
    packed += (full_end - q0) * K * kNR;
    q0 = full_end;
  }
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t j = q * kNR;
    sgemm_detail::pack_b_panel(trans_b, B, ldb, K, j, static_cast<int>(std::min<int64_t>(kNR, N - j)),
                               packed + (q - q0) * K * kNR);
  }
}

// The KC block k0.. of a tile's panels of op(B) (columns n0..n1), packed kc x 16 each, panel after panel.
const float* pack_tile_block(const Problem& p, int64_t n0, int64_t n1, int64_t k0, int64_t kc,
                             std::vector<float>& buf) {
  const int64_t q0 = n0 / kNR, q1 = ceil_div(n1, kNR);
  buf.resize(static_cast<size_t>((q1 - q0) * kc * kNR));
  pack_panels(p.trans_b, p.trans_b ? p.B + k0 : p.B + k0 * p.ldb, p.ldb, p.N, kc, q0, q1, buf.data());
  return buf.data();
}

// Rows k0.. of the 16-column panel at column j of op(B), and their stride: from the tile's packed KC
// block (block: its panels from column n0 on, kc rows each) when it has one.
const float* b_panel(const Problem& p, int64_t j, int64_t k0, int64_t& ld, const float* block = nullptr,
                     int64_t n0 = 0, int64_t kc = 0) {
  const int64_t q = j / kNR;
  if (block) {
    ld = kNR;
    return block + (j - n0) / kNR * kc * kNR;
  }
  if (q < p.first_packed) {
    ld = p.ldb;
    return p.B + k0 * p.ldb + j;
  }
  ld = kNR;
  return p.bpack + ((q - p.first_packed) * std::max(p.K, p.panel_k) + k0) * kNR;
}

// One sliver of a tile: first row, rows, k range.
struct Sliver {
  int64_t i, m;
  KRange r;
};

// The slivers of the tile rows [m0, m1) into sl (their number returned), split as gemm_blocking::SliverSplit.
// Each element's operations do not depend on its sliver (kernels/sgemm_kernel.h), so neither do the bits.
int64_t split_slivers(const Problem& p, int64_t m0, int64_t m1, int64_t mr, Sliver* sl) {
  const gemm_blocking::SliverSplit split(m0, m1, mr);
  for (int64_t is = 0; is < split.count; ++is) {
    sl[is].i = split.start(is);
    sl[is].m = split.end(is) - sl[is].i;
    sl[is].r = sliver_k(p, sl[is].i, sl[is].m);
  }
  return split.count;
}

// The TileOut fields every micro-tile of the product shares.
sgemm_detail::TileOut problem_out(const Problem& p) {
  sgemm_detail::TileOut o;
  o.alpha = p.alpha;
  o.beta = p.bias ? 1.0f : p.beta;
  o.ldc = p.ldc;
  o.ldcin = p.bias ? 0 : p.ldc;
  o.transposed = p.c_transposed;
  return o;
}

// The micro-tile of sliver s at the panel whose first column is j (of a tile ending at column n1), from
// the shared fields in o; acc: its partial sums between KC blocks, or null when there is one block.
void micro_tile(const Problem& p, sgemm_detail::TileOut& o, const Sliver& s, int64_t j, int64_t n1, float* acc,
                bool first, bool last) {
  o.n = static_cast<int>(std::min<int64_t>(kNR, n1 - j));
  o.m = static_cast<int>(s.m);
  o.first = first;
  o.last = last;
  o.acc = acc;
  o.c = p.c_transposed ? p.C + j * p.ldc + s.i : p.C + s.i * p.ldc + j;
  o.cin = p.bias ? p.bias + (p.c_transposed ? s.i : j) : o.c;
}

// The C tile rows [m0, m1) x columns [n0, n1) (n0 a multiple of 16): KC blocks, then panels, then slivers.
void run_tile(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const MicroKernel& kernel = micro();
  Sliver sl[kMc / sgemm_detail::kMR];   // kMc / 6 slivers at most
  const int64_t panels = ceil_div(n1 - n0, kNR), slivers = split_slivers(p, m0, m1, kernel.mr, sl);
  // Per-thread scratch: a task runs start to end on one thread and never waits inside, so one each.
  thread_local std::vector<float> acc, apack, bblock;   // partial sums between KC blocks; packed A and B blocks
  if (p.K > p.kc) acc.resize(static_cast<size_t>(panels * slivers * kernel.mr * kNR));
  if (p.pack_a) apack.resize(static_cast<size_t>(kMc * (kKcMax + 16)));
  // The micro-tiles' TileOut, filled in place per call: a fresh copy per call had the compiler reload the two
  // flags as one 16-bit word right after storing them as bytes (a store-forwarding stall per micro-kernel).
  sgemm_detail::TileOut outs[2] = {problem_out(p), problem_out(p)};
  const auto out = [&](int slot, int64_t q, int64_t is, bool first, bool last) -> const sgemm_detail::TileOut& {
    float* tile_acc = p.K > p.kc ? acc.data() + (q * slivers + is) * kernel.mr * kNR : nullptr;
    micro_tile(p, outs[slot], sl[is], n0 + q * kNR, n1, tile_acc, first, last);
    return outs[slot];
  };
  for (int64_t k0 = 0; k0 < p.K; k0 += p.kc) {
    const int64_t kc = std::min(p.kc, p.K - k0);
    const ABlock a = a_block(p, m0, m1, k0, kc, apack.data());
    const float* bb = p.tile_packs_b ? pack_tile_block(p, n0, n1, k0, kc, bblock) : nullptr;
    for (int64_t jp = 0, step = 1; jp < panels; jp += step) {
      // With the AVX-512 kernel, two panels at a time when they have the same stride (not one read in
      // place and the next packed).
      const int64_t j = n0 + jp * kNR;
      int64_t ldb = 0, ldb2 = -1;
      const float* b = b_panel(p, j, k0, ldb, bb, n0, kc);
      const float* b2 = kernel.pair && jp + 1 < panels ? b_panel(p, j + kNR, k0, ldb2, bb, n0, kc) : nullptr;
      if (ldb2 != ldb) b2 = nullptr;
      step = b2 ? 2 : 1;
      for (int64_t is = 0; is < slivers; ++is) {
        const int64_t i = sl[is].i, m = sl[is].m;
        if (!sliver_wants_panel(p, i, m, j)) continue;
        // This block's part [lo, hi) of the sliver's k range (the whole block without causal limits).
        const KRange r = sl[is].r;
        const int64_t lo = std::max(k0, r.begin), hi = std::min(k0 + kc, r.end);
        if (r.end > r.begin ? lo >= hi : k0 != 0) continue;
        const bool first = lo == r.begin, last = std::max(lo, hi) == r.end;
        const int64_t dk = lo - k0, len = std::max<int64_t>(hi - lo, 0);
        const float* ai = p.trans_a ? a.base + (i - m0) + dk * a.ld : a.base + (i - m0) * a.ld + dk;
        if (b2 && sliver_wants_panel(p, i, m, j + kNR))
          kernel.pair(!p.trans_a, len, ai, a.ld, b + dk * ldb, b2 + dk * ldb, ldb, out(0, jp, is, first, last),
                      out(1, jp + 1, is, first, last));
        else
          kernel.run(!p.trans_a, len, ai, a.ld, b + dk * ldb, ldb, out(0, jp, is, first, last));
      }
    }
  }
  // The tile is final: its epilogue, in C's rows and columns (C^T's tile rows are C's columns).
  if (p.epilogue.apply) {
    if (p.c_transposed) p.epilogue.apply(p.epilogue.ctx, p.C, p.ldc, n0, n1, m0, m1);
    else p.epilogue.apply(p.epilogue.ctx, p.C, p.ldc, m0, m1, n0, n1);
  }
}

// Columns of a task tile: kNc, or when each tile copies its A block first (pack_a), up to 3 kNc, so that
// the copy serves more of the product (mid's weight gradient, N = 384: A copied once per tile row, not
// three times); kNc / 2 for a parallel product that would have fewer than kMinTasks tiles (see run).
int64_t tile_cols(const Problem& p) {
  if (p.pack_a) return std::min(3 * kNc, ceil_div(p.N, kNR) * kNR);
  return p.narrow_tiles ? kNc / 2 : kNc;
}

int64_t tile_count(const Problem& p) { return ceil_div(p.M, kMc) * ceil_div(p.N, tile_cols(p)); }

// Tiles t0..t1 of C: ceil(M / 96) tile rows with the slivers spread evenly over them (96 + 32 rows would
// leave one of two threads idle for half the time; 66 + 62 does not), ceil(N / tile_cols) tile columns.
void run_tiles(const Problem& p, int64_t t0, int64_t t1) {
  const int64_t nc = tile_cols(p), mr = micro().mr, slivers = ceil_div(p.M, mr), mt = ceil_div(p.M, kMc),
                nt = ceil_div(p.N, nc);
  const auto row_of = [&](int64_t tm) { return std::min(p.M, slivers * tm / mt * mr); };
  for (int64_t t = t0; t < t1; ++t) {   // narrow tiles column by column: each half of the range gets every tile row
    const int64_t tm = p.narrow_tiles ? t % mt : t / nt, n0 = (p.narrow_tiles ? t / mt : t % nt) * nc;
    run_tile(p, row_of(tm), row_of(tm + 1), n0, std::min(p.N, n0 + nc));
  }
}

void run(bool parallel, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias,
         CausalLimits causal = {}, bool c_transposed = false, SgemmEpilogue epilogue = {}) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    fill_no_k(M, N, beta, C, ldc, bias);
    if (epilogue.apply) epilogue.apply(epilogue.ctx, C, ldc, 0, M, 0, N);
    return;
  }
  // An untransposed B with a short row stride is read in place, except a last partial panel, when the
  // product is one tile high (copying B would cost a large part of such a product: each panel serves only
  // M / 6 slivers) or, in a parallel product of at most kInPlaceRows rows, B is small (K x N <=
  // kInPlaceFloats: it stays in L2, whose bandwidth serves the panels' strided rows). The values, hence the
  // bits, are the same either way.
  const bool short_rows = !trans_b && ldb < kInPlaceLd, one_tile = short_rows && M <= kMc;
  const bool in_place = one_tile || (parallel && short_rows && M <= kInPlaceRows && K * N <= kInPlaceFloats);
  // Any other product one tile high (a transposed B: a linear layer x W^T on a few tokens, the seed shape's
  // 20 x 1536 from 512) packs op(B) in its tiles' tasks, a KC block of the tile's panels at a time, right
  // before the tile's slivers use it: each panel is packed once (there is one tile row), into L2 rather than
  // through memory. Zen 5, 2 threads, medians: 20 x 1536 x 512 150 -> 115 us, 20 x 512 x 512 63 -> 39 us,
  // 2 x 1536 x 512 87 -> 55 us, 96 x 512 x 512 169 -> 137 us, against C^T reading W's rows in place (one
  // broadcast load per element of W, and C^T's two 16-column panels 20/32 full for 20 tokens). Not under causal
  // limits (the attention's tiles keep their packing).
  const bool tile_packs_b = M <= kMc && !in_place && causal.kind == CausalLimits::none;
  // A product at least twice as wide as high that packs op(B) (K x N) computes C^T = op(B)^T op(A)^T instead,
  // packing op(A)^T (K x M), the smaller: a weight gradient dW = dY^T X of a layer that narrows (the FFN's
  // second linear: 128 x 512 from 768 tokens) packs 4x fewer floats. Only for long sums (K >= kSwapMinK):
  // C^T's micro-tiles are stored element by element, which short sums (attention scores over 64 dimensions)
  // would not pay for. Each element is the same fma sequence (a * b = b * a exactly), so the bits are the
  // same; the micro-tiles are stored transposed.
  const bool wide = !one_tile && !tile_packs_b && N >= 2 * M && K >= kSwapMinK;
  if (!c_transposed && causal.kind == CausalLimits::none && wide)
    return run(parallel, !trans_b, !trans_a, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc, bias, causal, true,
               epilogue);
  // Panels packed up front, from first_packed on (none when the tiles pack their own).
  const int64_t panels = ceil_div(N, kNR), first_packed = in_place ? N / kNR : 0;
  const int64_t up_front = tile_packs_b ? 0 : panels - first_packed;
  Scratch<float> bpack(static_cast<size_t>(up_front * K * kNR));
  float* bp = bpack.data();
  Problem p{trans_a, M, N, K, kc_for(K), alpha, beta, A, lda, B, ldb, trans_b, bp, first_packed, C, ldc, bias,
            sgemm_copies_a(trans_a, lda), 0, causal, c_transposed};
  p.epilogue = epilogue;
  p.tile_packs_b = tile_packs_b;
  const auto pack = [&](int64_t q0, int64_t q1) {
    pack_panels(trans_b, B, ldb, N, K, first_packed + q0, first_packed + q1, bp + q0 * K * kNR);
  };
  const bool split = parallel && M * N * K >= kSplitWork;
  // A product of fewer than kMinTasks tiles (the tiny LM's head weight gradient, 65 x 128 from 768 tokens:
  // one tile, one thread; an out-projection's 128 x 128: two tiles of 5 and 6 slivers) is cut into tiles
  // half as wide, so that two threads share it evenly. The tiling never changes the bits.
  p.narrow_tiles = split && !p.pack_a && tile_count(p) < kMinTasks && N > kNc / 2;
  const auto tiles = [&](int64_t t0, int64_t t1) { run_tiles(p, t0, t1); };
  if (split) {
    parallel_for(up_front, grain_for(K * kNR, int64_t{1} << 15), pack);
    parallel_for(tile_count(p), 1, tiles);
  } else {
    pack(0, up_front);
    tiles(0, tile_count(p));
  }
}

}  // namespace

// A's rows are copied per tile when they are at least kPackALd floats apart and the stride is a multiple
// of 256 floats (1 KB): such rows fall into a few cache sets. Other long row strides (mid's 1152: 3 x 384)
// read in place measured 0.5-4% faster than copied (min / p10 / median of alternated fwd+bwd iterations)
// and are left in place. A transposed A is read a few floats per k from kc rows lda apart; at least
// kPackALd floats apart it is copied whatever the stride (Xeon, AVX-512 kernel, 2 threads: mid's weight
// gradient dY^T X, 1152 x 384 x 2048, 220 -> 240 GFLOP/s; mid fwd+bwd 2-3% and long 3-5% faster). So is
// one whose columns are a multiple of 512 floats (2 KB) apart, whose kc rows fall into two cache sets or one:
// the tiny LM's FFN weight gradients (512 x 128 and, as C^T, 512 x 128 from 768 tokens, lda = 512) 3-5%
// faster (p10 of 2000 alternated calls, three runs); at 256 floats apart (long's out-projection dW) no
// measurable change, so those stay in place.
bool sgemm_copies_a(bool trans_a, int64_t lda) {
  return (lda >= kPackALd && (trans_a || lda % 256 == 0)) || (trans_a && lda > 0 && lda % 512 == 0);
}

bool sgemm_cpu_supported() {
  // libgcc's cpu model checks the OS's XSAVE state for AVX as well as the cpuid bits.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

std::string sgemm_isa() { return micro().mr == kMRMax ? "AVX-512" : "AVX2"; }

bool sgemm_active() {
  static const bool active = [] {
    const char* env = std::getenv("TAPEGRAD_GEMM");
    const std::string choice = env ? env : "";
    if (choice == "openblas") return false;
    if (!choice.empty() && choice != "auto")
      throw std::invalid_argument("[gemm] TAPEGRAD_GEMM must be 'openblas' or 'auto'; got TAPEGRAD_GEMM=" + choice);
    return sgemm_cpu_supported();
  }();
  return active;
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* row_bias,
           SgemmEpilogue epilogue) {
  run(true, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias, {}, false, epilogue);
}

void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* row_bias,
                  CausalLimits causal) {
  run(false, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias, causal);
}

int64_t sgemm_packed_b_floats(int64_t N, int64_t K) { return ceil_div(N, kNR) * K * kNR; }

void sgemm_pack_b(bool trans_b, int64_t N, int64_t K, const float* B, int64_t ldb, float* packed) {
  pack_panels(trans_b, B, ldb, N, K, 0, ceil_div(N, kNR), packed);
}

void sgemm_serial_packed_b(bool trans_a, int64_t M, int64_t n, int64_t K, float alpha, const float* A, int64_t lda,
                           const float* packed, int64_t packed_k, float beta, float* C, int64_t ldc,
                           CausalLimits causal) {
  if (M <= 0 || n <= 0) return;
  if (K <= 0) return fill_no_k(M, n, beta, C, ldc, nullptr);
  // As run(), every panel packed: the micro-kernel sees the same values, hence the same bits.
  const Problem p{trans_a, M, n, K, kc_for(K), alpha, beta, A, lda, nullptr, 0, false, packed, 0, C, ldc, nullptr,
                  sgemm_copies_a(trans_a, lda), packed_k, causal};
  run_tiles(p, 0, tile_count(p));
}

}  // namespace tg::kernels
