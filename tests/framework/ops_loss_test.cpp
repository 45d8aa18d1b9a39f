#include <cmath>
#include <limits>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// Fixed logits (multiples of 1/64, exact in float32); the PyTorch 1.13 reference values below were
// computed from the same formula in float64: x = [((i*i*3 + i*5 + 2) % 29 - 14) / 16 * (b - a) / 4 + (a + b) / 2].


Tensor targets(const std::vector<int64_t>& t, const Shape& s) { return Tensor::from_vector(t, s); }

// ---- cross-entropy composed from basic ops (elementwise + matmul with ones vectors as sums), x [N, C] ----
Var sum_last(const Var& x) { return matmul(x, Var(Tensor::ones({x.size(-1), 1}, x.dtype()))); }   // [N, 1]
Var ce_composite(const Var& x, const std::vector<int64_t>& t, int64_t ignore_index, Reduction reduction, double ls) {
  int64_t N = x.size(0), C = x.size(1), count = 0;
  Tensor shift({N, 1}, x.dtype()), onehot = Tensor::zeros({N, C}, x.dtype()), keep = Tensor::zeros({N, 1}, x.dtype());
  for (int64_t i = 0; i < N; ++i) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < C; ++c) m = std::max(m, x.value().at({i, c}));
    shift.set({i, 0}, m);   // a constant shift: log_softmax is shift-invariant, so the gradient stays exact
    if (t[static_cast<size_t>(i)] == ignore_index) continue;
    onehot.set({i, t[static_cast<size_t>(i)]}, 1.0);
    keep.set({i, 0}, 1.0);
    ++count;
  }
  Var z = x - Var(shift);
  Var logp = z - log(sum_last(exp(z)));
  Var per = -sum_last(logp * Var(onehot)) * (1.0 - ls) - sum_last(logp) * Var(keep) * (ls / static_cast<double>(C));
  if (reduction == Reduction::none) return matmul(per, Var(Tensor::ones({1}, x.dtype())));   // [N, 1] -> [N]
  double w = reduction == Reduction::mean ? 1.0 / static_cast<double>(count) : 1.0;
  Var total = matmul(Var(Tensor::full({N}, w, x.dtype())), per);   // [1]
  return matmul(total, Var(Tensor::ones({1}, x.dtype())));        // 0-d
}

}  // namespace

namespace {
// PyTorch 1.13 reference values (float64): logits [4, 5] = pattern(20, -3, 3), targets [1, -100, 3, 0];
// "none" with upstream [0.5, -1, 2, 0.25]; spatial: the same 20 values as logits [2, 5, 2], targets
// [[4, 0], [-100, 2]], label_smoothing 0.2, mean; nll_loss: the same values as log_probs [4, 5], mean.
const std::vector<double> k_ce_mean_ls0_loss{
    1.3965962625033164};
const std::vector<double> k_ce_mean_ls0_gx{
    0.019701535361645952, -0.29162518264543363, 0.1549645792515156, 0.06664943502511905, 0.050309633007153076,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.02129700730542823, 0.05438381334343066, 0.016075824517986427,
    -0.20688717891834862, 0.11513053375150331, -0.22694168796670455, 0.019680475498360453, 0.09687069547058558,
    0.055195258498879275, 0.055195258498879275};
const std::vector<double> k_ce_mean_ls1_loss{
    1.4409712625033164};
const std::vector<double> k_ce_mean_ls1_gx{
    0.013034868694979282, -0.26495851597876696, 0.14829791258484892, 0.05998276835845238, 0.0436429663404864,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.014630340638761563, 0.047717146676763994, 0.009409157851319759,
    -0.18022051225168195, 0.10846386708483664, -0.2002750213000379, 0.013013808831693783, 0.0902040288039189,
    0.0485285918322126, 0.0485285918322126};
const std::vector<double> k_ce_sum_ls0_loss{
    4.189788787509949};
const std::vector<double> k_ce_sum_ls0_gx{
    0.05910460608493786, -0.874875547936301, 0.46489373775454684, 0.19994830507535719, 0.15092889902145923, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0638910219162847, 0.163151440030292, 0.04822747355395928, -0.6206615367550459,
    0.34539160125450996, -0.6808250639001137, 0.059041426495081366, 0.29061208641175673, 0.16558577549663783,
    0.16558577549663783};
const std::vector<double> k_ce_sum_ls1_loss{
    4.322913787509949};
const std::vector<double> k_ce_sum_ls1_gx{
    0.03910460608493786, -0.794875547936301, 0.4448937377545468, 0.1799483050753572, 0.13092889902145924, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.04389102191628469, 0.143151440030292, 0.02822747355395928, -0.5406615367550459,
    0.32539160125450994, -0.6008250639001138, 0.03904142649508137, 0.2706120864117567, 0.14558577549663784,
    0.14558577549663784};
const std::vector<double> k_ce_none_loss{
    2.054071420467637, 0.0, 1.0649514295625628, 1.203890937479749};
const std::vector<double> k_ce_none_gx{
    0.01955230304246893, -0.3974377739681505, 0.2224468688772734, 0.0899741525376786, 0.06546444951072962, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.08778204383256938, 0.286302880060584, 0.05645494710791856, -1.0813230735100918,
    0.6507832025090199, -0.15020626597502845, 0.009760356623770342, 0.06765302160293918, 0.03639644387415946,
    0.03639644387415946};
const std::vector<double> k_ce_sp_loss{
    1.9496754792471902};
const std::vector<double> k_ce_sp_gx{
    0.0030993256908740693, -0.22034405817460265, 0.1159195418830466, 0.08199659026617125, 0.028628931518825312,
    0.08199659026617125, 0.1159195418830466, 0.04632260849206399, -0.26356734097579254, 0.01002826915019605,
    0.0, 0.015543452662485186, 0.0, 0.05380720567185956, 0.0, -0.18231109217460584, 0.0, 0.0756134294335871,
    0.0, 0.0373470044066739};
const std::vector<double> k_nll_loss{
    -0.5625};
const std::vector<double> k_nll_gx{
    0.0, -0.3333333333333333, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.3333333333333333, 0.0,
    -0.3333333333333333, 0.0, 0.0, 0.0, 0.0};
}  // namespace

TEST_CASE("cross_entropy: values and grads equal PyTorch's (mean/sum/none, label smoothing, ignore_index)",
          "[ops][parity]") {
  Tensor t = targets({1, -100, 3, 0}, {4});
  struct Case {
    Reduction reduction;
    double ls;
    const std::vector<double>&loss, &gx;
  };
  std::vector<Case> cases{{Reduction::mean, 0.0, k_ce_mean_ls0_loss, k_ce_mean_ls0_gx},
                          {Reduction::mean, 0.1, k_ce_mean_ls1_loss, k_ce_mean_ls1_gx},
                          {Reduction::sum, 0.0, k_ce_sum_ls0_loss, k_ce_sum_ls0_gx},
                          {Reduction::sum, 0.1, k_ce_sum_ls1_loss, k_ce_sum_ls1_gx}};
  for (DType dt : {DType::Float64, DType::Float32}) {
    double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    for (const Case& c : cases) {
      INFO("reduction " << static_cast<int>(c.reduction) << ", label_smoothing " << c.ls);
      Var x(Tensor::from_vector(pattern(20, -3, 3), {4, 5}, dt), true);
      Var l = cross_entropy(x, t, -100, c.reduction, c.ls);
      REQUIRE(l.shape() == Shape{});
      l.backward();
      require_close(l.value(), c.loss, tol);
      require_close(x.grad(), c.gx, tol);
    }
    Var x(Tensor::from_vector(pattern(20, -3, 3), {4, 5}, dt), true);
    Var l = cross_entropy(x, t, -100, Reduction::none, 0.1);
    REQUIRE(l.shape() == Shape{4});
    l.backward(Tensor::from_vector(std::vector<double>{0.5, -1.0, 2.0, 0.25}, {4}, dt));
    require_close(l.value(), k_ce_none_loss, tol);
    require_close(x.grad(), k_ce_none_gx, tol);
    Var xs(Tensor::from_vector(pattern(20, -3, 3), {2, 5, 2}, dt), true);
    Var ls = cross_entropy(xs, targets({4, 0, -100, 2}, {2, 2}), -100, Reduction::mean, 0.2);
    ls.backward();
    require_close(ls.value(), k_ce_sp_loss, tol);
    require_close(xs.grad(), k_ce_sp_gx, tol);
  }
}

TEST_CASE("nll_loss: values and grads equal PyTorch's", "[ops][parity]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    Var x(Tensor::from_vector(pattern(20, -3, 3), {4, 5}, dt), true);
    Var l = nll_loss(x, targets({1, -100, 3, 0}, {4}));
    l.backward();
    require_close(l.value(), k_nll_loss, tol);
    require_close(x.grad(), k_nll_gx, tol);
  }
}

TEST_CASE("cross_entropy: grad matches finite differences (each reduction, ignore_index hits, smoothing)",
          "[ops][grad]") {
  Var x = rand_var({5, 4}, 501, -2.0, 2.0);
  Tensor t = targets({3, -100, 0, 2, -100}, {5});
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (double ls : {0.0, 0.3}) {
      INFO("reduction " << static_cast<int>(r) << ", label_smoothing " << ls);
      REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return cross_entropy(v[0], t, -100, r, ls); }, {x});
    }
  // Spatial logits [N, C, d1, d2] with targets [N, d1, d2], and a custom ignore_index that is a class id.
  Var xs = rand_var({2, 3, 2, 2}, 502, -2.0, 2.0);
  Tensor ts = targets({0, 2, 1, 1, 2, 0, 0, 1}, {2, 2, 2});
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return cross_entropy(v[0], ts, 1, Reduction::mean, 0.1); },
                    {xs});
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return cross_entropy(v[0], ts, -100, Reduction::none); }, {xs});
  // Unbatched logits [C] with a 0-d target.
  Var x1 = rand_var({6}, 503, -2.0, 2.0);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return cross_entropy(v[0], targets({4}, {}), -100); }, {x1});
  // An input used twice.
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return cross_entropy(v[0] * v[0], t) * v[0]; }, {x});
}

TEST_CASE("nll_loss: grad matches finite differences (each reduction, spatial)", "[ops][grad]") {
  Var x = rand_var({5, 4}, 511);
  Tensor t = targets({3, -100, 0, 2, 1}, {5});
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return nll_loss(v[0], t, -100, r); }, {x});
  Var xs = rand_var({2, 3, 2}, 512);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& v) { return nll_loss(v[0], targets({0, 2, -100, 1}, {2, 2})); }, {xs});
}

TEST_CASE("cross_entropy: equals its composite from basic ops in value and grad", "[ops][fused]") {
  Var x = rand_var({6, 5}, 521, -3.0, 3.0);
  std::vector<int64_t> tv{4, -100, 0, 2, 2, 1};
  Tensor t = targets(tv, {6});
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (double ls : {0.0, 0.25}) {
      INFO("reduction " << static_cast<int>(r) << ", label_smoothing " << ls);
      Var a(x.value().clone(), true), b(x.value().clone(), true);
      Var fa = cross_entropy(a, t, -100, r, ls), fb = ce_composite(b, tv, -100, r, ls);
      REQUIRE(fa.shape() == fb.shape());
      REQUIRE(max_abs_diff(fa.value(), fb.value()) <= 1e-12);
      Tensor u = rand_tensor(fa.shape(), 522);
      fa.backward(u);
      fb.backward(u);
      REQUIRE(max_abs_diff(a.grad(), b.grad()) <= 1e-12);
    }
  // Spatial layout: equal to nll_loss(log_softmax(x, 1)).
  Var xs = rand_var({2, 4, 3}, 523, -3.0, 3.0);
  Tensor ts = targets({0, 3, -100, 1, 2, 2}, {2, 3});
  Var a(xs.value().clone(), true), b(xs.value().clone(), true);
  Var fa = cross_entropy(a, ts), fb = nll_loss(log_softmax(b, 1), ts);
  REQUIRE(std::abs(fa.item() - fb.item()) <= 1e-12);
  fa.backward();
  fb.backward();
  REQUIRE(max_abs_diff(a.grad(), b.grad()) <= 1e-12);
}

TEST_CASE("cross_entropy: all targets ignored gives 0 with zero grad (tapegrad's choice, PyTorch: NaN)", "[ops]") {
  Var x = rand_var({3, 4}, 531);
  Tensor t = targets({-100, -100, -100}, {3});
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    Var a(x.value().clone(), true);
    Var l = cross_entropy(a, t, -100, r, 0.1);
    REQUIRE(l.item() == 0.0);
    l.backward();
    for (double g : a.grad().to_vector()) REQUIRE(g == 0.0);
  }
  Var n = nll_loss(x, t);
  REQUIRE(n.item() == 0.0);
  Var e(Tensor::zeros({0, 4}, DType::Float64), true);   // no targets at all
  REQUIRE(cross_entropy(e, Tensor::zeros({0}, DType::Int64)).item() == 0.0);
  for (double v : cross_entropy(x, t, -100, Reduction::none).value().to_vector()) REQUIRE(v == 0.0);
}

TEST_CASE("cross_entropy: large and masked logits stay finite", "[ops]") {
  double inf = std::numeric_limits<double>::infinity();
  Var big(Tensor::from_vector(std::vector<double>{1000, 1001, 1003, -1000, -1002, -1001}, {2, 3}));
  Var small(Tensor::from_vector(std::vector<double>{0, 1, 3, 0, -2, -1}, {2, 3}));
  Tensor t = targets({0, 2}, {2});
  REQUIRE(std::abs(cross_entropy(big, t).item() - cross_entropy(small, t).item()) <= 1e-12);
  // A masked (-inf) class that is not the target contributes nothing.
  Var m(Tensor::from_vector(std::vector<double>{0.5, -inf, 1.5}, {1, 3}), true);
  Var l = cross_entropy(m, targets({2}, {1}));
  REQUIRE(std::abs(l.item() - std::log(1 + std::exp(-1.0))) <= 1e-15);
  l.backward();
  REQUIRE(m.grad().at({0, 1}) == 0.0);
  REQUIRE(std::abs(m.grad().at({0, 0}) - 1 / (1 + std::exp(1.0))) <= 1e-15);
}

TEST_CASE("cross_entropy and nll_loss: bad input throws naming op and shapes", "[ops][errors]") {
  Var x = rand_var({4, 10}, 541);
  REQUIRE_THROWS_WITH(cross_entropy(x, targets({1, 12, 3, 0}, {4})),
                      Contains("[cross_entropy] target 12 out of range for 10 classes; "
                               "got logits=[4, 10], targets=[4]"));
  REQUIRE_THROWS_WITH(cross_entropy(x, targets({1, -1, 3, 0}, {4})),
                      Contains("[cross_entropy] target -1 out of range for 10 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(x, targets({1, -100, 3, 0}, {4}), -1),
                      Contains("[cross_entropy] target -100 out of range for 10 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(x, targets({1, 2, 3}, {3})),
                      Contains("[cross_entropy] targets must have shape [4] (logits without the class dim 1); "
                               "got logits=[4, 10], targets=[3]"));
  REQUIRE_THROWS_WITH(cross_entropy(rand_var({2, 10, 3}, 542), targets({1, 2}, {2})),
                      Contains("[cross_entropy] targets must have shape [2, 3] (logits without the class dim 1); "
                               "got logits=[2, 10, 3], targets=[2]"));
  REQUIRE_THROWS_WITH(cross_entropy(rand_var({10}, 543), targets({1}, {1})),
                      Contains("[cross_entropy] targets must have shape [] (logits without the class dim 0); "
                               "got logits=[10], targets=[1]"));
  REQUIRE_THROWS_WITH(cross_entropy(x, Tensor::zeros({4}, DType::Float32)),
                      Contains("[cross_entropy] targets must be int64 class indices; got targets=float32[4]"));
  REQUIRE_THROWS_WITH(cross_entropy(x, targets({1, 2, 3, 0}, {4}), -100, Reduction::mean, 1.5),
                      Contains("[cross_entropy] label_smoothing must be in [0, 1]; got label_smoothing=1.5"));
  REQUIRE_THROWS_WITH(cross_entropy(rand_var({}, 544), targets({0}, {})),
                      Contains("[cross_entropy] logits must have at least 1 dim (the classes); got logits=[]"));
  REQUIRE_THROWS_WITH(cross_entropy(Var(Tensor::zeros({2, 3}, DType::Int64)), targets({0, 1}, {2})),
                      Contains("[cross_entropy] expected a float tensor; got logits=int64[2, 3]"));
  REQUIRE_THROWS_WITH(nll_loss(x, targets({1, 10, 3, 0}, {4})),
                      Contains("[nll_loss] target 10 out of range for 10 classes; got log_probs=[4, 10], targets=[4]"));
  REQUIRE_THROWS_WITH(nll_loss(x, targets({1, 2}, {2})),
                      Contains("[nll_loss] targets must have shape [4] (log_probs without the class dim 1); "
                               "got log_probs=[4, 10], targets=[2]"));
}

TEST_CASE("cross_entropy: determinism, loss and grads are bit-identical for 1 and 2 threads", "[ops][determinism]") {
  auto run_all = [](int threads) {
    tg::set_num_threads(threads);
    std::vector<Tensor> out;
    Generator gen(8);
    std::vector<int64_t> tv, ts;
    for (int64_t i = 0; i < 2048; ++i) tv.push_back(i % 17 == 0 ? -100 : static_cast<int64_t>(gen.next_below(100)));
    for (int64_t i = 0; i < 16 * 64; ++i) ts.push_back(static_cast<int64_t>(gen.next_below(50)));
    for (DType dt : {DType::Float32, DType::Float64}) {
      for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
        Var x = rand_var({2048, 100}, 551, -5.0, 5.0, true, dt);
        Var l = cross_entropy(x, targets(tv, {2048}), -100, r, 0.1);
        l.backward(rand_tensor(l.shape(), 552, -1.0, 1.0, dt));
        out.push_back(l.value());
        out.push_back(x.grad());
      }
      Var xs = rand_var({16, 50, 64}, 553, -5.0, 5.0, true, dt);   // class dim strided: gathered lanes
      Var ls = cross_entropy(xs, targets(ts, {16, 64}));
      ls.backward();
      out.push_back(ls.value());
      out.push_back(xs.grad());
    }
    return out;
  };
  require_same_bits_across_threads(run_all);
}
