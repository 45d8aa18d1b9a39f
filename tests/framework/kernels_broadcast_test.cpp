// kernels::sum_to in float32, where the order of the additions shows in the bits: the leading-dims
// path (g viewed as [n_red, n_out], summed row after row across the columns) and the general odometer
// path both equal a plain loop that adds each output's contributions in index order from +0 in double,
// rounded to float once; and a long sum keeps float32's accuracy.
#include <bit>
#include <cstdint>
#include <vector>

#include "framework/kernels/broadcast.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "support/test_support.h"

using namespace tg;

namespace {

// out[o] = +0 + g[...] + ... over the reduced indices in row-major order, in double, then rounded to float.
std::vector<float> plain_sum_to(const Tensor& g, const Shape& target) {
  const Shape& gs = g.shape();
  const size_t off = gs.size() - target.size();
  std::vector<double> out(static_cast<size_t>(numel(target)), 0.0);
  std::vector<int64_t> idx(gs.size(), 0);
  for (int64_t flat = 0; flat < g.numel(); ++flat) {
    int64_t o = 0;   // the target element that g's element idx adds into
    for (size_t d = off; d < gs.size(); ++d) o = o * target[d - off] + (target[d - off] == 1 ? 0 : idx[d]);
    out[static_cast<size_t>(o)] += static_cast<double>(static_cast<float>(g.flat(flat)));
    for (size_t d = gs.size(); d-- > 0;) {
      if (++idx[d] < gs[d]) break;
      idx[d] = 0;
    }
  }
  return std::vector<float>(out.begin(), out.end());
}

}  // namespace

TEST_CASE("sum_to kernel: float32 sums in index order, leading-dims and general paths", "[kernels]") {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{12, 64, 128}, {64, 128}},   // positional-embedding gradient: leading dim summed (fast path)
      {{3, 7, 33}, {1, 1, 33}},     // leading dims kept as size 1 (fast path)
      {{6, 1, 45}, {45}},           // a size-1 dim between (fast path)
      {{5, 40, 9}, {40, 1}},        // trailing dim reduced (general path)
      {{4, 3, 5}, {1, 3, 1}},       // reduced dims on both sides (general path)
      {{0, 8}, {8}},                // nothing to add: zeros
  };
  for (const auto& [gs, target] : cases) {
    INFO("g=" << to_string(gs) << " -> " << to_string(target));
    Tensor g = test::rand_tensor(gs, 41, -3.0, 3.0, DType::Float32);
    Tensor out = kernels::sum_to(g, target);
    REQUIRE(out.shape() == target);
    const std::vector<float> ref = plain_sum_to(g, target);
    const float* got = out.data<float>();
    for (size_t i = 0; i < ref.size(); ++i) {
      INFO("element " << i << ": " << got[i] << " vs " << ref[i]);
      REQUIRE(std::bit_cast<uint32_t>(got[i]) == std::bit_cast<uint32_t>(ref[i]));
    }
  }
}

TEST_CASE("sum_to: a broadcast operand's float32 gradient over a million elements is the correctly rounded sum",
          "[kernels][grad]") {
  // a [1] + b [n] with upstream gradient 0.1f everywhere: a.grad = n * 0.1f. A float running sum was off by
  // 1.4e-4 (relative) at n = 1e5 and by 1% at n = 1e6; PyTorch's cascade sum is within a few ulps.
  for (const int64_t n : {int64_t{100000}, int64_t{1000000}}) {
    INFO("n=" << n);
    Var a(Tensor::zeros({1}, DType::Float32), true), b(Tensor::zeros({n}, DType::Float32), true);
    add(a, b).backward(Tensor::full({n}, 0.1, DType::Float32));
    const float want = static_cast<float>(static_cast<double>(n) * static_cast<double>(0.1f));
    REQUIRE(std::bit_cast<uint32_t>(a.grad().data<float>()[0]) == std::bit_cast<uint32_t>(want));
    Var c(Tensor::zeros({n, 1}, DType::Float32), true), d(Tensor::zeros({1, 3}, DType::Float32), true);
    mul(add(c, d), Var(Tensor::full({n, 3}, 1.0, DType::Float32))).backward(Tensor::full({n, 3}, 0.1, DType::Float32));
    for (int j = 0; j < 3; ++j)
      REQUIRE(std::bit_cast<uint32_t>(d.grad().data<float>()[j]) == std::bit_cast<uint32_t>(want));
  }
}
