#include "support/test_support.h"

#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/runtime.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

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

void require_close(const Tensor& actual, const Tensor& expected, double tol, const std::string& what) {
  INFO(what << ": actual " << describe(actual) << ", expected " << describe(expected));
  REQUIRE(actual.defined());
  REQUIRE(actual.shape() == expected.shape());
  double scale = 1.0;
  for (int64_t i = 0; i < expected.numel(); ++i) scale = std::max(scale, std::abs(expected.flat(i)));
  double err = max_abs_diff(actual, expected);
  INFO("max abs error " << err << ", tolerance " << tol * scale);
  REQUIRE(err <= tol * scale);
}

void require_close(const Tensor& t, const std::vector<double>& ref, double tol) {
  REQUIRE(t.numel() == static_cast<int64_t>(ref.size()));
  for (size_t i = 0; i < ref.size(); ++i) {
    INFO("element " << i << ": got " << t.flat(static_cast<int64_t>(i)) << ", expected " << ref[i]);
    REQUIRE(std::abs(t.flat(static_cast<int64_t>(i)) - ref[i]) <= tol);
  }
}

std::vector<double> pattern(int64_t n, double a, double b) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i)
    v.push_back(static_cast<double>((i * i * 3 + i * 5 + 2) % 29 - 14) / 16.0 * (b - a) / 4.0 + (a + b) / 2.0);
  return v;
}

std::vector<float> uniform_floats(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(gen);
  return v;
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

std::vector<double> upstream(int64_t n) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<double>((i * 5 + 1) % 13 - 6) / 8.0);
  return v;
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> require_same_bits_across_threads(
    const std::function<std::vector<Tensor>(int threads)>& run) {
  const int before = get_num_threads();
  set_num_threads(1);
  std::vector<Tensor> one = run(1);
  set_num_threads(2);
  std::vector<Tensor> two = run(2);
  set_num_threads(before);
  require_bit_equal(one, two);
  return {one, two};
}

void require_bit_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("result " << i);
    REQUIRE(a[i].bit_equal(b[i]));
  }
}

void for_native_bf16_threads(const std::function<void(int threads)>& run) {
  if (!bf16_native_available()) {
    WARN("native bf16 unavailable here (" << bf16_status() << ")");
    return;
  }
  set_bf16_mode(Bf16Mode::native);
  const int before = get_num_threads();
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    AutocastGuard autocast(Precision::bf16);
    run(threads);
  }
  set_num_threads(before);
  reset_bf16_mode();
}

std::string golden_dir() {
  const char* env = std::getenv("TAPEGRAD_GOLDEN_DIR");
  return env && *env ? std::string(env) : std::string(TAPEGRAD_GOLDEN_DEFAULT);
}

std::filesystem::path scratch_dir(const std::string& name) {
  std::filesystem::path d = std::filesystem::path(TAPEGRAD_SCRATCH_ROOT) / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace tg::test
