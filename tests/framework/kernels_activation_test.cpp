// The float32 GELU kernels (lane-vector code, kernels/activation.cpp) against the float64 kernels
// (C library erf/exp) on a dense grid and at the special values; every element's bits independent of
// its position (vector body or padded tail, any split).
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "framework/kernels/activation.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::kernels;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Every float step of 2^-10 in [-10, 10] (20481 values; all exact in float), then the special values.
std::vector<float> grid_and_specials() {
  std::vector<float> x;
  for (int i = -10240; i <= 10240; ++i) x.push_back(static_cast<float>(i) / 1024.0f);
  for (float s : {0.0f, -0.0f, kInf, -kInf, kNaN, 1e-30f, -1e-30f, 3e38f, -3e38f, 20.0f, -20.0f, 1e-45f})
    x.push_back(s);
  return x;
}

// float32 and float64 kernel outputs agree: both NaN, or equal infinities, or |f - d| <= bound *
// max(1, |d|). (Far left the float64 form cancels to 0 in 1 + erf while the float erfc keeps the
// tiny true value, so a float64 zero is compared like any other value.)
void require_matches_double(const std::vector<float>& x, const std::vector<float>& f, const std::vector<double>& d,
                            double bound, const char* what) {
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    INFO(what << " at x=" << x[i] << ": float " << f[i] << ", double " << d[i]);
    if (std::isnan(d[i])) {
      REQUIRE(std::isnan(f[i]));
    } else if (std::isinf(d[i])) {
      REQUIRE(f[i] == d[i]);
    } else {
      double err = std::abs(static_cast<double>(f[i]) - d[i]) / std::max(1.0, std::abs(d[i]));
      worst = std::max(worst, err);
      REQUIRE(err <= bound);
    }
  }
  INFO(what << ": worst error " << worst);
  CHECK(worst > 0);   // the float kernel is an approximation: exact agreement would mean it was not run
}

std::vector<double> widened(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

}  // namespace

TEST_CASE("gelu kernels: float32 within 5e-7 of the float64 erf form on [-10, 10] and at inf, NaN, 0", "[kernels]") {
  // Error bound: the fitted erfc (relative error 2.2e-8) and the exp (2 ulp) in float arithmetic;
  // measured worst 9.3e-8 (values) and 3.2e-7 (grads), relative to max(1, |exact|).
  const std::vector<float> x = grid_and_specials();
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> y(x.size()), dy(x.size()), gx(x.size());
  for (size_t i = 0; i < x.size(); ++i) dy[i] = 1.0f + static_cast<float>(i % 7) * 0.25f;
  gelu_forward<float>(x.data(), y.data(), n);
  gelu_backward<float>(x.data(), dy.data(), gx.data(), n);
  const std::vector<double> xd = widened(x), dyd = widened(dy);
  std::vector<double> yd(x.size()), gxd(x.size());
  gelu_forward<double>(xd.data(), yd.data(), n);
  gelu_backward<double>(xd.data(), dyd.data(), gxd.data(), n);
  require_matches_double(x, y, yd, 5e-7, "gelu");
  require_matches_double(x, gx, gxd, 5e-7, "gelu grad");
  // The special values themselves, as the float64 form gives them: gelu(+-0) = +-0, gelu(inf) = inf,
  // gelu(-inf) = -inf * 0 = NaN (as in PyTorch), NaN stays NaN; the grad is NaN at +-inf (inf * 0).
  const size_t s0 = x.size() - 12;   // 0, -0, inf, -inf, NaN
  REQUIRE((y[s0] == 0.0f && !std::signbit(y[s0])));
  REQUIRE((y[s0 + 1] == 0.0f && std::signbit(y[s0 + 1])));
  REQUIRE(y[s0 + 2] == kInf);
  REQUIRE(std::isnan(y[s0 + 3]));
  REQUIRE(std::isnan(y[s0 + 4]));
  REQUIRE(gx[s0] == 0.5f * dy[s0]);
  REQUIRE((std::isnan(gx[s0 + 2]) && std::isnan(gx[s0 + 3]) && std::isnan(gx[s0 + 4])));
}

TEST_CASE("gelu kernels: an element's float32 bits do not depend on its position or the length", "[kernels]") {
  // The vector body and the padded tail must give the same bits, or results would depend on how the
  // tensor is split (the thread count never changes the split, but the tensor's length does).
  std::vector<float> x;
  for (int i = 0; i < 40; ++i) x.push_back(-6.0f + 0.3137f * static_cast<float>(i));
  std::vector<float> dy(x.size(), 0.75f), y_all(x.size()), g_all(x.size());
  gelu_forward<float>(x.data(), y_all.data(), 40);
  gelu_backward<float>(x.data(), dy.data(), g_all.data(), 40);
  for (int64_t start = 0; start < 9; ++start)
    for (int64_t len = 1; start + len <= 40; len += 3) {
      std::vector<float> y(static_cast<size_t>(len)), g(static_cast<size_t>(len));
      gelu_forward<float>(x.data() + start, y.data(), len);
      gelu_backward<float>(x.data() + start, dy.data() + start, g.data(), len);
      for (int64_t i = 0; i < len; ++i) {
        INFO("start " << start << ", length " << len << ", element " << i);
        REQUIRE(std::bit_cast<uint32_t>(y[static_cast<size_t>(i)]) ==
                std::bit_cast<uint32_t>(y_all[static_cast<size_t>(start + i)]));
        REQUIRE(std::bit_cast<uint32_t>(g[static_cast<size_t>(i)]) ==
                std::bit_cast<uint32_t>(g_all[static_cast<size_t>(start + i)]));
      }
    }
}

TEST_CASE("gelu kernels: the slope form gives gelu_forward's and gelu_backward's bits, float32 and float64", "[kernels]") {
  // Training takes y and the slope from one erf and multiplies dy by the slope in backward; it must
  // change nothing but the speed, at every value, the special ones included, and in any split.
  std::vector<float> x = grid_and_specials();
  for (int i = 0; i < 37; ++i) x.push_back(-6.0f + 0.3137f * static_cast<float>(i));   // a tail of every length
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> dy(x.size()), y(x.size()), g(x.size()), y2(x.size()), slope(x.size()), g2(x.size());
  for (size_t i = 0; i < x.size(); ++i) dy[i] = -1.5f + static_cast<float>(i % 11) * 0.375f;
  gelu_forward<float>(x.data(), y.data(), n);
  gelu_backward<float>(x.data(), dy.data(), g.data(), n);
  for (int64_t start : {int64_t{0}, int64_t{3}, n - 5}) {
    const int64_t len = n - start;
    gelu_forward_slope<float>(x.data() + start, y2.data() + start, slope.data() + start, len);
    gelu_backward_slope<float>(slope.data() + start, dy.data() + start, g2.data() + start, len);
    for (int64_t i = start; i < n; ++i) {
      INFO("x=" << x[static_cast<size_t>(i)] << ", from element " << start);
      REQUIRE(std::bit_cast<uint32_t>(y2[static_cast<size_t>(i)]) == std::bit_cast<uint32_t>(y[static_cast<size_t>(i)]));
      REQUIRE(std::bit_cast<uint32_t>(g2[static_cast<size_t>(i)]) == std::bit_cast<uint32_t>(g[static_cast<size_t>(i)]));
    }
  }
  const std::vector<double> xd = widened(x), dyd = widened(dy);
  std::vector<double> yd(x.size()), gd(x.size()), yd2(x.size()), sd(x.size()), gd2(x.size());
  gelu_forward<double>(xd.data(), yd.data(), n);
  gelu_backward<double>(xd.data(), dyd.data(), gd.data(), n);
  gelu_forward_slope<double>(xd.data(), yd2.data(), sd.data(), n);
  gelu_backward_slope<double>(sd.data(), dyd.data(), gd2.data(), n);
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("x=" << xd[i]);
    REQUIRE(std::bit_cast<uint64_t>(yd2[i]) == std::bit_cast<uint64_t>(yd[i]));
    REQUIRE(std::bit_cast<uint64_t>(gd2[i]) == std::bit_cast<uint64_t>(gd[i]));
  }
}
