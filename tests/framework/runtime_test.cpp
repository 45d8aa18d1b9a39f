#include <cctype>
#include <cstdlib>

#include "framework/kernels/gemm.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using Catch::Matchers::Contains;

namespace {
std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// C = A @ B for 3x3 float matrices through the GEMM kernel, compared with a plain loop.
bool gemm_is_correct() {
  Tensor a = test::rand_tensor({65, 70}, 1, -1, 1, DType::Float32), b = test::rand_tensor({70, 66}, 2, -1, 1, DType::Float32);
  Tensor c = Tensor::zeros({65, 66});
  kernels::gemm<float>(false, false, 65, 66, 70, 1.0f, a.data<float>(), 70, b.data<float>(), 66, 0.0f, c.data<float>(), 66);
  for (int64_t i = 0; i < 65; ++i)
    for (int64_t j = 0; j < 66; ++j) {
      double ref = 0;
      for (int64_t k = 0; k < 70; ++k) ref += a.at({i, k}) * b.at({k, j});
      if (std::abs(ref - c.at({i, j})) > 1e-4) return false;
    }
  return true;
}
}  // namespace

TEST_CASE("runtime: OpenBLAS runs the core cpuid calls for, without user settings", "[runtime]") {
  std::string wanted = blas_core_for_cpu();
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr && !wanted.empty()) REQUIRE(upper(blas_core()) == wanted);
  std::string info = runtime_info();
  REQUIRE_THAT(info, Contains("BLAS OpenBLAS"));
  REQUIRE_THAT(info, Contains("core=" + blas_core()));
  REQUIRE_THAT(info, Contains("threads"));
  REQUIRE_THAT(info, Contains("TBB"));
  REQUIRE_THAT(info, Contains(" | tensor memory: "));
}

TEST_CASE("runtime: switching the OpenBLAS core at run time works and GEMM stays correct", "[runtime]") {
  std::string before = blas_core();
  REQUIRE(select_blas_core("PRESCOTT"));
  REQUIRE(upper(blas_core()) == "PRESCOTT");
  REQUIRE(gemm_is_correct());
  REQUIRE(select_blas_core(upper(before)));
  REQUIRE(blas_core() == before);
  REQUIRE(gemm_is_correct());
}

TEST_CASE("runtime: set_num_threads governs the thread count", "[runtime]") {
  set_num_threads(1);
  REQUIRE(get_num_threads() == 1);
  REQUIRE_THAT(runtime_info(), Contains("threads 1"));
  set_num_threads(2);
  REQUIRE(get_num_threads() == 2);
  // Before, 0 and negative counts silently meant 1.
  REQUIRE_THROWS_MATCHES(set_num_threads(0), std::invalid_argument,
                         Catch::Matchers::Message("[set_num_threads] n must be positive; got n=0"));
  REQUIRE_THROWS_WITH(set_num_threads(-3), "[set_num_threads] n must be positive; got n=-3");
  REQUIRE(get_num_threads() == 2);
}
