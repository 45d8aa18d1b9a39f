// kernels::gemm's one-row path (M = 1 runs as one cblas_?gemv): every transpose combination, strided
// operands, alpha/beta, a row bias and an uninitialised (NaN) output, against a plain loop, in float32
// and float64; and linear() of one row equals the matching row of a many-row linear.
#include <cmath>
#include <limits>

#include "framework/kernels/gemm.h"
#include "support/test_support.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/shape.h"

using namespace tg;
using namespace tg::test;

namespace {

// C[1, N] = alpha * op(A) @ op(B) + (bias, or beta * C0 with beta = 0 ignoring C0) by loops, in double. A holds op(A) = A[0, :]
// (lda unused) or, transposed, the column A[:, 0] of a [K, lda] matrix; B is [K, ldb] or [N, ldb].
std::vector<double> reference(bool ta, bool tb, int64_t N, int64_t K, double alpha, const Tensor& A, int64_t lda,
                              const Tensor& B, int64_t ldb, double beta, const std::vector<double>& c0,
                              const Tensor& bias) {
  std::vector<double> out(static_cast<size_t>(N));
  for (int64_t j = 0; j < N; ++j) {
    double acc = 0;
    for (int64_t k = 0; k < K; ++k) acc += A.flat(ta ? k * lda : k) * B.flat(tb ? j * ldb + k : k * ldb + j);
    out[static_cast<size_t>(j)] = alpha * acc + (bias.defined() ? bias.flat(j) : beta == 0 ? 0.0 : beta * c0[static_cast<size_t>(j)]);
  }
  return out;
}

template <class T>
void check_one_row(DType dt, double tol) {
  const int64_t N = 37, K = 53, lda = 3, ldb_pad = 5;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int variant = 0; variant < 3; ++variant) {   // 0: beta 0 over NaN, 1: beta 0.5, 2: row bias
        INFO("trans_a=" << ta << " trans_b=" << tb << " variant=" << variant);
        Tensor A = rand_tensor({ta ? K : 1, ta ? lda : K}, 11, -1, 1, dt);
        const int64_t ldb = (tb ? K : N) + ldb_pad;
        Tensor B = rand_tensor({tb ? N : K, ldb}, 12, -1, 1, dt);
        Tensor bias = variant == 2 ? rand_tensor({N}, 13, -1, 1, dt) : Tensor();
        Tensor C = variant == 0 ? Tensor::full({N}, std::numeric_limits<double>::quiet_NaN(), dt)
                                : rand_tensor({N}, 14, -1, 1, dt);
        const std::vector<double> c0 = C.to_vector();
        const double alpha = 1.5, beta = variant == 1 ? 0.5 : 0.0;
        kernels::gemm<T>(ta, tb, 1, N, K, T(alpha), A.data<T>(), ta ? lda : K, B.data<T>(), ldb, T(beta), C.data<T>(), N,
                         bias.defined() ? bias.data<T>() : nullptr);
        require_close(C, reference(ta, tb, N, K, alpha, A, lda, B, ldb, beta, c0, bias), tol);
      }
}

}  // namespace

TEST_CASE("gemm: a one-row product equals the loop for every transpose, alpha, beta and row bias", "[kernels][gemm]") {
  check_one_row<double>(DType::Float64, 1e-12);
  check_one_row<float>(DType::Float32, 1e-5);
}

TEST_CASE("linear: one row equals the matching row of a many-row call", "[kernels][gemm]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    Var x = rand_var({6, 40}, 21, -1, 1, false, dt), w = rand_var({24, 40}, 22, -1, 1, false, dt),
        b = rand_var({24}, 23, -1, 1, false, dt);
    Var all = linear(x, w, b);   // (6, 24) through the blocked GEMM
    for (int64_t r = 0; r < 6; ++r) {
      Var one = linear(narrow(x, 0, r, 1), w, b);   // (1, 24) through the one-row path
      REQUIRE(max_abs_diff(one.value(), narrow(all, 0, r, 1).value()) < (dt == DType::Float64 ? 1e-12 : 1e-5));
    }
  }
}
