#pragma once
// Helpers shared by the tests: seeded random inputs and a gradcheck assertion that prints the report.
#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/framework/gradcheck.h"
#include "tapegrad/framework/tape.h"

namespace tg::test {

// A fresh, empty folder build/test_scratch/<name> for a test's files (removed first if present).
std::filesystem::path scratch_dir(const std::string& name);

// A float64 leaf with values uniform in [lo, hi), seeded.
Var rand_var(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0, bool requires_grad = true,
             DType dtype = DType::Float64);
Tensor rand_tensor(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0,
                   DType dtype = DType::Float64);

// n floats uniform in [-1, 1) from std::mt19937(seed) (raw buffers for kernel-level tests).
std::vector<float> uniform_floats(int64_t n, uint32_t seed);

// Whether x and y hold the same floats bit for bit (same length; -0 differs from +0, equal NaNs match).
bool same_bits(const std::vector<float>& x, const std::vector<float>& y);

// Max |a - b| over elements (same shape required).
double max_abs_diff(const Tensor& a, const Tensor& b);

// REQUIREs |actual - expected| <= tol * max(1, max |expected|) elementwise (same shape, defined).
void require_close(const Tensor& actual, const Tensor& expected, double tol, const std::string& what);

// REQUIREs |t[i] - ref[i]| <= tol for every element (t flattened in row-major order).
void require_close(const Tensor& t, const std::vector<double>& ref, double tol);

// Fixed, float32-exact inputs of the ops parity tests (tests/fixtures/gen/ops_parity_refs.py builds the
// PyTorch references from the same formulas): element i of pattern(n, a, b) is
// ((i*i*3 + i*5 + 2) % 29 - 14) / 16 * (b - a) / 4 + (a + b) / 2, of upstream(n) ((i*5 + 1) % 13 - 6) / 8.
std::vector<double> pattern(int64_t n, double a, double b);
std::vector<double> upstream(int64_t n);

// Runs run(threads) with 1 and with 2 threads (the helper sets the count first and restores the
// previous one afterwards) and REQUIREs every returned tensor bit-identical; returns both results.
std::pair<std::vector<Tensor>, std::vector<Tensor>> require_same_bits_across_threads(
    const std::function<std::vector<Tensor>(int threads)>& run);
// REQUIREs a and b of equal length, each pair bit-identical (Tensor::bit_equal: shape, dtype, bytes).
void require_bit_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b);

// Runs run(threads) with 1 and with 2 threads under native bf16 autocast (set_bf16_mode(native) and an
// AutocastGuard(bf16) around each call), then restores the thread count and the bf16 mode; WARNs and runs
// nothing where native bf16 is unavailable.
void for_native_bf16_threads(const std::function<void(int threads)>& run);

// Directory holding golden .h5 files: $TAPEGRAD_GOLDEN_DIR, else the project's tests/golden.
std::string golden_dir();

}  // namespace tg::test

// Runs tg::gradcheck and fails the test with its full report when it does not pass.
// Usage: REQUIRE_GRADCHECK(fn, {a, b}) or REQUIRE_GRADCHECK(fn, {a, b}, options).
#define REQUIRE_GRADCHECK(...)                                              \
  do {                                                                      \
    auto tg_gc_result_ = ::tg::gradcheck(__VA_ARGS__);                      \
    INFO(tg_gc_result_.message);                                            \
    REQUIRE(tg_gc_result_.ok);                                              \
    REQUIRE(tg_gc_result_.checked > 0);                                     \
  } while (0)
