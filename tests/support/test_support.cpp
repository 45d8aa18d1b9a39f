#include "support/test_support.h"

#include <cmath>
#include <cstdlib>

namespace tg::test {

Tensor rand_tensor(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype) {
  Generator g(seed);
  return Tensor::uniform(shape, lo, hi, g, dtype);
}

Var rand_var(const Shape& shape, uint64_t seed, double lo, double hi, bool requires_grad, DType dtype) {
  return Var(rand_tensor(shape, seed, lo, hi, dtype), requires_grad);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = std::abs(a.flat(i) - b.flat(i));
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

std::string golden_dir() {
  const char* env = std::getenv("TAPEGRAD_GOLDEN_DIR");
  return env && *env ? std::string(env) : std::string(TAPEGRAD_GOLDEN_DEFAULT);
}

}  // namespace tg::test
