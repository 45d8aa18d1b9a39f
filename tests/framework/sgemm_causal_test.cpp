// tapegrad's float32 GEMM and its bf16 GEMM (kernels/sbgemm.h) under an attention tile's causal limits
// (kernels/sgemm.h, CausalLimits): with op(A) zero where the mask makes it zero, the skipped terms change
// nothing (the same bits as the plain product), and the score products leave exactly the panels beyond a
// sliver's last query unwritten, never an element a row may see.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "framework/kernels/sbgemm.h"
#include "framework/kernels/sgemm.h"
#include "support/test_support.h"

using namespace tg;
using kernels::CausalLimits;
using test::same_bits;

namespace {

// Which product runs: sgemm_serial, sgemm_serial_packed_b, or the bf16 GEMM's sbgemm_serial.
enum class Path { sgemm, packed, bf16 };

// C [M, N] (row stride N + 2) = alpha * op(A) @ op(B) + beta * C0 through `path` under `limits`.
struct Product {
  bool trans_a;
  int64_t M, N, K;
  std::vector<float> A, B, C0;
  int64_t lda() const { return (trans_a ? M : K) + 1; }
  int64_t ldc() const { return N + 2; }
  std::vector<float> run(CausalLimits limits, Path path, float beta, bool nan_c = false) const {
    std::vector<float> C = C0;
    if (nan_c) C.assign(C.size(), std::numeric_limits<float>::quiet_NaN());
    if (path == Path::bf16) {
      kernels::sbgemm_serial(trans_a, false, M, N, K, 1.25f, A.data(), lda(), B.data(), N, beta, C.data(), ldc(),
                             nullptr, limits);
    } else if (path == Path::packed) {
      std::vector<float> pk(static_cast<size_t>(kernels::sgemm_packed_b_floats(N, K)));
      kernels::sgemm_pack_b(false, N, K, B.data(), N, pk.data());
      kernels::sgemm_serial_packed_b(trans_a, M, N, K, 1.25f, A.data(), lda(), pk.data(), K, beta, C.data(), ldc(),
                                     limits);
    } else {
      kernels::sgemm_serial(trans_a, false, M, N, K, 1.25f, A.data(), lda(), B.data(), N, beta, C.data(), ldc(),
                            nullptr, limits);
    }
    return C;
  }
};

// op(A)[r, k], zero where `zero(r, k)`.
template <class Zero> Product make(bool trans_a, int64_t M, int64_t N, int64_t K, uint32_t seed, Zero zero) {
  Product p{trans_a, M, N, K, {}, test::uniform_floats(K * N, seed + 1),
            test::uniform_floats(M * (N + 2), seed + 2)};
  p.A = test::uniform_floats((trans_a ? K : M) * p.lda(), seed);
  for (int64_t r = 0; r < M; ++r)
    for (int64_t k = 0; k < K; ++k)
      if (zero(r, k)) p.A[static_cast<size_t>(trans_a ? k * p.lda() + r : r * p.lda() + k)] = 0.0f;
  return p;
}

// The paths this CPU runs (the bf16 GEMM needs AVX512_BF16).
std::vector<Path> paths() {
  std::vector<Path> p{Path::sgemm, Path::packed};
  if (kernels::sbgemm_cpu_supported()) p.push_back(Path::bf16);
  else WARN("the bf16 GEMM is not checked: this CPU has no AVX512_BF16");
  return p;
}

}  // namespace

TEST_CASE("sgemm causal limits: skipping the masked zeros of op(A) gives the plain product's bits",
          "[kernels][gemm][determinism]") {
  if (!kernels::sgemm_cpu_supported()) {
    WARN("not run: this CPU cannot run tapegrad's sgemm (no AVX2/FMA)");
    return;
  }
  for (int64_t q : {0, 7, 40})
    for (int64_t M : {32, 50, 96, 197})
      for (int64_t K : {64, 700})   // one KC block or several
        for (const Path packed : paths())
          for (float beta : {0.0f, 1.0f}) {
            INFO("first query " << q << ", M=" << M << ", K=" << K << ", path " << static_cast<int>(packed) << ", beta "
                                << beta);
            // p v and ds k: row r (query q + r) sees keys k <= q + r.
            const Product up = make(false, M, 40, K, 3, [&](int64_t r, int64_t k) { return k > q + r; });
            REQUIRE(same_bits(up.run({CausalLimits::k_upto_row, q}, packed, beta), up.run({}, packed, beta)));
            // p^T dout and ds^T q: row j (key j) gets queries q + k >= j.
            const Product from = make(true, M, 40, K, 5, [&](int64_t j, int64_t k) { return q + k < j; });
            REQUIRE(same_bits(from.run({CausalLimits::k_from_row, q}, packed, beta), from.run({}, packed, beta)));
          }
}

TEST_CASE("sgemm causal limits: the score products write every element a row sees and skip whole panels beyond",
          "[kernels][gemm]") {
  if (!kernels::sgemm_cpu_supported()) {
    WARN("not run: this CPU cannot run tapegrad's sgemm (no AVX2/FMA)");
    return;
  }
  for (int64_t q : {0, 5, 64})
    for (int64_t M : {32, 96})
      for (const Path packed : paths()) {
        INFO("first query " << q << ", M=" << M << ", path " << static_cast<int>(packed));
        const Product s = make(false, M, q + M, 32, 9, [](int64_t, int64_t) { return false; });
        const std::vector<float> full = s.run({}, packed, 0.0f);
        const std::vector<float> got = s.run({CausalLimits::cols_upto_row, q}, packed, 0.0f, true);
        int64_t skipped = 0;
        for (int64_t r = 0; r < M; ++r)
          for (int64_t j = 0; j < s.N; ++j) {
            const size_t at = static_cast<size_t>(r * s.ldc() + j);
            if (j <= q + r) REQUIRE(std::memcmp(&got[at], &full[at], sizeof(float)) == 0);
            else if (std::isnan(got[at])) ++skipped;
            else REQUIRE(got[at] == full[at]);   // computed with its 16-column panel: the same value
          }
        // Each sliver (6 rows with the AVX2 kernel, 12 with the AVX-512 one and the bf16 GEMM; a remainder
        // shares the last full sliver's rows evenly) skips the 16-column panels past its last query, and only
        // those.
        const int64_t mr = kernels::sgemm_isa() == "AVX-512" || packed == Path::bf16 ? 12 : 6,
                      slivers = (M + mr - 1) / mr;
        int64_t expected = 0;
        for (int64_t is = 0; is < slivers; ++is) {
          const auto row = [&](int64_t k) {
            if (k >= slivers) return M;
            if (M % mr != 0 && k == slivers - 1) return (k - 1) * mr + (mr + M % mr + 1) / 2;
            return k * mr;
          };
          const int64_t i = row(is), m = row(is + 1) - i, first_skipped = (q + i + m - 1) / 16 * 16 + 16;
          expected += m * std::max<int64_t>(0, s.N - first_skipped);
        }
        REQUIRE(skipped == expected);
        REQUIRE(skipped > 0);
      }
}
