#include <cmath>
#include <limits>

#include "framework/kernels/softmax.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Fixed inputs (multiples of 1/64, exact in float32) and upstream gradients; the PyTorch 1.13 reference
// values below were computed from the same formulas in float64:
//   x = [((i*i*3 + i*5 + 2) % 29 - 14) / 16 * (b - a) / 4 + (a + b) / 2], gy = [((i*5 + 1) % 13 - 6) / 8]


// Runs f on a leaf holding `x` (converted to dtype), backpropagates `gy`, returns {y, x.grad}.
template <class F> std::pair<Tensor, Tensor> run(F f, const std::vector<double>& x, const Shape& s, DType dtype) {
  Var v(Tensor::from_vector(x, s, dtype), true);
  Var y = f(v);
  y.backward(Tensor::from_vector(upstream(y.numel()), y.shape(), dtype));
  return {y.value(), v.grad()};
}

// ---- composites from basic ops (elementwise + matmul with a ones vector as the sum) ----
// Sum over the last dim, kept: x [..., n] -> [..., 1].
Var sum_last(const Var& x) {
  return matmul(x, Var(Tensor::ones({x.size(-1), 1}, x.dtype())));
}
// Sum over dim -2, kept: x [..., n, m] -> [..., 1, m].
Var sum_second_last(const Var& x) {
  return matmul(Var(Tensor::ones({1, x.size(-2)}, x.dtype())), x);
}
// Max over the last (or second-last) dim, kept, as a constant: the shift that keeps exp finite. Softmax is
// shift-invariant, so treating it as a constant keeps the composite's gradient exact.
Var max_keepdim(const Tensor& x, bool last) {
  Shape s = x.shape();
  int64_t d = static_cast<int64_t>(s.size()) - (last ? 1 : 2), n = s[static_cast<size_t>(d)];
  int64_t inner = last ? 1 : s.back(), outer = x.numel() / (n * inner);
  s[static_cast<size_t>(d)] = 1;
  Tensor m(s, x.dtype());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double v = -kInf;
      for (int64_t j = 0; j < n; ++j) v = std::max(v, x.flat((o * n + j) * inner + i));
      m.set_flat(o * inner + i, v);
    }
  return Var(m);
}
Var softmax_composite(const Var& x, bool last, bool log) {
  Var z = x - max_keepdim(x.value(), last);
  Var s = last ? sum_last(exp(z)) : sum_second_last(exp(z));
  return log ? z - tg::log(s) : exp(z) / s;
}
Var layer_norm_composite(const Var& x, int64_t trailing, const Var& w, const Var& b, double eps) {
  auto sum = [&](const Var& v) { return trailing == 1 ? sum_last(v) : sum_second_last(sum_last(v)); };
  double n = trailing == 1 ? static_cast<double>(x.size(-1)) : static_cast<double>(x.size(-1) * x.size(-2));
  Var xc = x - sum(x) / n;
  Var y = xc / sqrt(sum(xc * xc) / n + eps);
  if (w.defined()) y = y * w;
  if (b.defined()) y = y + b;
  return y;
}

// Values and gradients of fn(x) and composite(x) for the same x and a random upstream gradient.
template <class F, class G> void require_same_as_composite(F fused, G composite, const std::vector<Var>& inputs) {
  std::vector<Var> a, b;
  for (const Var& v : inputs) {
    a.emplace_back(v.value().clone(), v.requires_grad());
    b.emplace_back(v.value().clone(), v.requires_grad());
  }
  Var ya = fused(a), yb = composite(b);
  REQUIRE(max_abs_diff(ya.value(), yb.value()) <= 1e-12);
  Tensor u = rand_tensor(ya.shape(), 77);
  ya.backward(u);
  yb.backward(u);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) REQUIRE(max_abs_diff(a[i].grad(), b[i].grad()) <= 1e-12);
}

}  // namespace

namespace {
// PyTorch 1.13 reference values in float64 for the pattern inputs above (x [3, 4] for softmax; x [2, 3, 4],
// weight = 0.5 + j / 16, bias = j / 8 - 0.25 for layer_norm; gy = upstream(numel)).
const std::vector<double> k_softmax_dim1_y{
    0.11290080487478876, 0.18614195847622894, 0.4465313453592751, 0.2544258912897071, 0.19209612175380847,
    0.23171215285589947, 0.4066674929440429, 0.16952423244624928, 0.1948313057831391, 0.17193802388013243,
    0.2207727927571539, 0.4124578775795746};
const std::vector<double> k_softmax_dim1_gx{
    -0.08333314292608876, -0.021054401248893344, 0.22857520786430666, -0.12418766368932456, 0.06566448711700064,
    -0.152505662182659, -0.013488589536462996, 0.10032976460212145, -0.09479355965163769, 0.023806242147544423,
    0.16855081546649117, -0.09756349796239792};
const std::vector<double> k_softmax_dim0_y{
    0.25851510245326004, 0.34457813899937517, 0.4373487435378189, 0.37438759197342575, 0.48296979509347987,
    0.47098247408340416, 0.4373487435378189, 0.2739078135714566, 0.25851510245326004, 0.18443938691722073,
    0.12530251292436217, 0.35170459445511776};
const std::vector<double> k_softmax_dim0_gx{
    -0.11760187007742079, 0.11377347572797045, 0.13660533053188154, -0.10618845542801343, 0.20288935234818406,
    -0.19772695223834713, -0.1914062271214826, 0.16198020327018606, -0.08528748227076328, 0.08395347651037671,
    0.05480089658960111, -0.05579174784217263};
const std::vector<double> k_log_softmax_dim1_y{
    -2.181245678757258, -1.681245678757258, -0.8062456787572579, -1.368745678757258, -1.6497593980953948,
    -1.4622593980953948, -0.899759398095395, -1.7747593980953948, -1.635621193380096, -1.760621193380096,
    -1.510621193380096, -0.8856211933800958};
const std::vector<double> k_log_softmax_dim1_gx{
    -0.5826621981719542, 0.06980323442858585, 0.7924492545097281, -0.2795902907663599, 0.2740120152192261,
    -0.7210359808930126, -0.07416656338199464, 0.5211905290557811, -0.5243539132228924, 0.10350774701498344,
    0.7224034009053558, -0.30155723469744683};
const std::vector<double> k_log_softmax_dim0_y{
    -1.3528011633233679, -1.065434395672033, -0.8270243620189505, -0.9824636760244976, -0.7278011633233679,
    -0.7529343956720329, -0.8270243620189505, -1.2949636760244976, -1.3528011633233679, -1.690434395672033,
    -2.0770243620189506, -1.0449636760244976};
const std::vector<double> k_log_softmax_dim0_gx{
    -0.3987992853533975, 0.21536133687460948, 0.07831407057772632, -0.32820155100332177, 0.6725985707067949,
    -0.4556359536978724, -0.6716859294222737, 0.5342384766964321, -0.2737992853533975, 0.24027461682326295,
    0.5933718588445472, -0.20603692569311027};
const std::vector<double> k_ln_y{
    -0.9235153352504027, -0.31883144822613335, 0.8810520373915152, 0.3188314482261333, -0.5533880019149305,
    -0.15125473093494593, 1.0210173141367855, -0.5488714273302785, -0.5285375432876698, -0.6472578936643809,
    -0.1160573097031958, 1.273967366061638, -1.1011339370526474, 0.13866649136957007, 0.23128639593821937,
    0.7186350829080964, -1.0440894017096047, 0.5392863264301501, 0.12725791694064179, 0.264983708634706,
    0.09836265901859625, -1.0655791793502098, 0.5225439885278944, 0.22079973123011398};
const std::vector<double> k_ln_gx{
    0.04696684255942228, 0.16354661762832573, 0.1587192595801772, -0.36923271976792527, 0.10718604587546096,
    -0.8366934968732523, 0.28349107931098505, 0.44601637168680647, -0.6360441668269773, -0.05682264527733655,
    0.8428172703600535, -0.1499504582557397, 0.07687016699790955, -0.42602634846590093, -0.058901119930111566,
    0.4080573013981029, 0.1776050678630443, 0.3256281243122837, -0.5841839523592078, 0.0809507601838797,
    -0.039792299056884, -0.14138509039612376, -0.33573055699030036, 0.5169079464433082};
const std::vector<double> k_ln_gw{
    1.2743169689045222, 0.7572949789685741, 0.4893791002971317, -0.3948953986975145};
const std::vector<double> k_ln_gb{
    -0.375, -1.5, 0.625, 1.125};
const std::vector<double> k_ln2_y{
    -1.1667555469133315, -0.12963950521259238, 1.685313567763701, 0.5185580208503696, 0.1296395052125924,
    0.5185580208503696, 1.685313567763701, -0.12963950521259238, -1.1667555469133315, -1.4260345573385163,
    -0.9074765364881467, 0.3889185156377772, -2.26717830734998, 0.45343566146999603, 0.3297713901599971,
    0.9480927467099918, -1.2778641368699888, 0.8244284753999929, 0.08244284753999928, 0.08244284753999928,
    0.8244284753999929, -1.2778641368699888, 0.9480927467099918, 0.3297713901599971};
const std::vector<double> k_ln2_gx{
    -0.7426143518631351, 0.05192826260604377, 0.7941803118641447, -0.5102052292535574, 0.3802034214359309,
    -1.0287632501039268, -0.24293572983659445, 0.7433389570732032, -0.5697616782463452, 0.31193187824129676,
    1.1413348695178607, -0.3286374614349212, 0.8382909081802705, -0.9261323790040475, -0.08146127967022151,
    0.6417540760606056, -0.31296425377038617, 0.16733961475444298, -1.0302902022825466, -0.20586172688255375,
    0.49711100491444016, -0.4778499488503847, -0.017788704259388735, 0.9078528908097699};
}  // namespace

// ---------------------------------------------------------------------------------------------------
// softmax / log_softmax

TEST_CASE("softmax: values and grads equal PyTorch's (dim 1 and dim 0)", "[ops][parity]") {
  std::vector<double> x = pattern(12, -2, 2);
  for (DType dt : {DType::Float64, DType::Float32}) {
    double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    auto [y1, g1] = run([](const Var& v) { return softmax(v, 1); }, x, {3, 4}, dt);
    require_close(y1, k_softmax_dim1_y, tol);
    require_close(g1, k_softmax_dim1_gx, tol);
    auto [y0, g0] = run([](const Var& v) { return softmax(v, 0); }, x, {3, 4}, dt);
    require_close(y0, k_softmax_dim0_y, tol);
    require_close(g0, k_softmax_dim0_gx, tol);
  }
}

TEST_CASE("log_softmax: values and grads equal PyTorch's (dim 1 and dim 0)", "[ops][parity]") {
  std::vector<double> x = pattern(12, -2, 2);
  for (DType dt : {DType::Float64, DType::Float32}) {
    double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    auto [y1, g1] = run([](const Var& v) { return log_softmax(v, -1); }, x, {3, 4}, dt);
    require_close(y1, k_log_softmax_dim1_y, tol);
    require_close(g1, k_log_softmax_dim1_gx, tol);
    auto [y0, g0] = run([](const Var& v) { return log_softmax(v, -2); }, x, {3, 4}, dt);
    require_close(y0, k_log_softmax_dim0_y, tol);
    require_close(g0, k_log_softmax_dim0_gx, tol);
  }
}

TEST_CASE("softmax: grad matches finite differences (dim 0, 1 and -1)", "[ops][grad]") {
  auto x = rand_var({2, 3, 4}, 21, -2.0, 2.0);
  for (int64_t d : {0, 1, -1}) {
    INFO("dim " << d);
    REQUIRE_GRADCHECK([d](const std::vector<Var>& v) { return softmax(v[0], d); }, {x});
  }
  auto s = rand_var({}, 22);   // 0-d: a single element
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return softmax(v[0], 0); }, {s});
}

TEST_CASE("log_softmax: grad matches finite differences (dim 0, 1 and -1)", "[ops][grad]") {
  auto x = rand_var({2, 3, 4}, 23, -2.0, 2.0);
  for (int64_t d : {0, 1, -1}) {
    INFO("dim " << d);
    REQUIRE_GRADCHECK([d](const std::vector<Var>& v) { return log_softmax(v[0], d); }, {x});
  }
}

TEST_CASE("softmax and log_softmax: grad accumulates for an input used twice", "[ops][grad]") {
  auto x = rand_var({3, 5}, 24, -2.0, 2.0);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return softmax(v[0], 1) * v[0]; }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return log_softmax(v[0], 0) + softmax(v[0], 0); }, {x});
}

TEST_CASE("softmax and log_softmax: equal their composites from basic ops in value and grad", "[ops][fused]") {
  auto x = rand_var({2, 5, 7}, 25, -3.0, 3.0);
  for (bool log : {false, true})
    for (bool last : {true, false}) {
      INFO("log " << log << ", last dim " << last);
      require_same_as_composite(
          [&](const std::vector<Var>& v) {
            return log ? log_softmax(v[0], last ? -1 : -2) : softmax(v[0], last ? 2 : 1);
          },
          [&](const std::vector<Var>& v) { return softmax_composite(v[0], last, log); }, {x});
    }
}

TEST_CASE("softmax, log_softmax and layer_norm: equal composites of reduce ops over dims 0, 1 and -1",
          "[ops][fused]") {
  auto x = rand_var({3, 4, 5}, 26, -3.0, 3.0);
  for (int64_t d : {0, 1, -1}) {
    INFO("dim " << d);
    auto shifted = [d](const Var& v) { return v - amax(v, {d}, true); };
    require_same_as_composite([d](const std::vector<Var>& v) { return softmax(v[0], d); },
                              [&](const std::vector<Var>& v) {
                                Var e = exp(shifted(v[0]));
                                return e / sum(e, {d}, true);
                              },
                              {x});
    require_same_as_composite([d](const std::vector<Var>& v) { return log_softmax(v[0], d); },
                              [&](const std::vector<Var>& v) {
                                Var z = shifted(v[0]);
                                return z - log(sum(exp(z), {d}, true));
                              },
                              {x});
  }
  auto w = rand_var({4, 5}, 27, 0.5, 1.5), b = rand_var({4, 5}, 28);
  require_same_as_composite([](const std::vector<Var>& v) { return layer_norm(v[0], {4, 5}, v[1], v[2]); },
                            [](const std::vector<Var>& v) {
                              Var xc = v[0] - mean(v[0], {1, 2}, true);
                              return xc / sqrt(mean(xc * xc, {1, 2}, true) + 1e-5) * v[1] + v[2];
                            },
                            {x, w, b});
}

TEST_CASE("softmax: large logits are numerically stable", "[ops]") {
  Var big(Tensor::from_vector(std::vector<double>{1000, 1001, 1002, -1000, -1001, -1002}, {2, 3}));
  Var small(Tensor::from_vector(std::vector<double>{0, 1, 2, 0, -1, -2}, {2, 3}));
  REQUIRE(max_abs_diff(softmax(big, 1).value(), softmax(small, 1).value()) <= 1e-15);
  REQUIRE(max_abs_diff(log_softmax(big, 1).value(), log_softmax(small, 1).value()) <= 1e-12);
  REQUIRE(std::abs(softmax(small, 1).value().at({0, 2}) - std::exp(2.0) / (1 + std::exp(1.0) + std::exp(2.0))) <=
          1e-15);
}

TEST_CASE("softmax: -inf entries give exact zeros, an all -inf row gives zeros and zero grad", "[ops]") {
  // Row 0 is fully masked, row 1 partly: tapegrad's documented choice (PyTorch gives NaN for row 0).
  Tensor t = Tensor::from_vector(std::vector<double>{-kInf, -kInf, -kInf, 0.5, -kInf, 1.5}, {2, 3});
  Var x(t, true);
  Var y = softmax(x, 1);
  std::vector<double> yv = y.value().to_vector();
  REQUIRE((yv[0] == 0.0 && yv[1] == 0.0 && yv[2] == 0.0 && yv[4] == 0.0));   // exact zeros
  REQUIRE(std::abs(yv[3] - 1 / (1 + std::exp(1.0))) <= 1e-15);
  REQUIRE(std::abs(yv[5] - std::exp(1.0) / (1 + std::exp(1.0))) <= 1e-15);
  y.backward(Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}));
  std::vector<double> g = x.grad().to_vector();
  REQUIRE(g[0] == 0.0);
  REQUIRE(g[1] == 0.0);
  REQUIRE(g[2] == 0.0);
  REQUIRE(g[4] == 0.0);
  double p = 1 / (1 + std::exp(1.0));   // y * (gy - sum(gy * y)) at the finite entries
  REQUIRE(std::abs(g[3] - p * (4 - (4 * p + 6 * (1 - p)))) <= 1e-15);

  Var xl(t, true);
  Var yl = log_softmax(xl, 1);
  std::vector<double> v = yl.value().to_vector();
  REQUIRE((v[0] == -kInf && v[1] == -kInf && v[2] == -kInf && v[4] == -kInf));
  REQUIRE(std::abs(v[3] - std::log(p)) <= 1e-15);
  yl.backward(Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}));
  std::vector<double> gl = xl.grad().to_vector();
  REQUIRE((gl[0] == 0.0 && gl[1] == 0.0 && gl[2] == 0.0));
  REQUIRE(std::abs(gl[3] - (4 - p * 15)) <= 1e-14);   // gy - softmax * sum(gy)
}

TEST_CASE("softmax: a NaN in a row makes the row NaN (never a silent number)", "[ops]") {
  double nan = std::numeric_limits<double>::quiet_NaN();
  Var x(Tensor::from_vector(std::vector<double>{0.5, nan, 1.0, -kInf, nan, -kInf}, {2, 3}));
  for (double v : softmax(x, 1).value().to_vector()) REQUIRE(std::isnan(v));
  for (double v : log_softmax(x, 1).value().to_vector()) REQUIRE(std::isnan(v));
}

TEST_CASE("softmax kernel: exp_shifted matches std::exp to a few ulp and flushes tiny results to 0", "[kernels]") {
  std::vector<double> xd;
  for (int i = 0; i <= 200000; ++i) xd.push_back(-745.0 * i / 200000.0);
  std::vector<double> yd(xd.size());
  kernels::exp_shifted(xd.data(), 0.0, yd.data(), static_cast<int64_t>(xd.size()));
  for (size_t i = 0; i < xd.size(); ++i) {
    double e = std::exp(xd[i]);
    INFO("x = " << xd[i] << ": got " << yd[i] << ", std::exp " << e);
    if (e >= std::numeric_limits<double>::min())
      REQUIRE(std::abs(yd[i] - e) <= 4e-16 * e);
    else
      REQUIRE(yd[i] <= std::numeric_limits<double>::min());
  }
  std::vector<float> xf;
  for (int i = 0; i <= 200000; ++i) xf.push_back(-104.0f * static_cast<float>(i) / 200000.0f);
  std::vector<float> yf(xf.size());
  kernels::exp_shifted(xf.data(), 0.0f, yf.data(), static_cast<int64_t>(xf.size()));
  for (size_t i = 0; i < xf.size(); ++i) {
    double e = std::exp(static_cast<double>(xf[i]));
    INFO("x = " << xf[i] << ": got " << yf[i] << ", exp " << e);
    if (e >= std::numeric_limits<float>::min())
      REQUIRE(std::abs(yf[i] - e) <= 2.5e-7 * e);
    else
      REQUIRE(yf[i] <= std::numeric_limits<float>::min());
  }
  double one = 0, zero = 0;
  double minus_inf = -kInf, zero_in = 0.0;
  kernels::exp_shifted(&zero_in, 0.0, &one, 1);
  kernels::exp_shifted(&minus_inf, 0.0, &zero, 1);
  REQUIRE(one == 1.0);
  REQUIRE(zero == 0.0);
}

// ---------------------------------------------------------------------------------------------------
// layer_norm

TEST_CASE("layer_norm: values and grads equal PyTorch's (affine over [4], plain over [3, 4])", "[ops][parity]") {
  std::vector<double> x = pattern(24, -3, 3), w{0.5, 0.5625, 0.625, 0.6875}, b{-0.25, -0.125, 0.0, 0.125};
  for (DType dt : {DType::Float64, DType::Float32}) {
    double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    Var vw(Tensor::from_vector(w, {4}, dt), true), vb(Tensor::from_vector(b, {4}, dt), true);
    auto [y, gx] = run([&](const Var& v) { return layer_norm(v, {4}, vw, vb); }, x, {2, 3, 4}, dt);
    require_close(y, k_ln_y, tol);
    require_close(gx, k_ln_gx, tol);
    require_close(vw.grad(), k_ln_gw, tol);
    require_close(vb.grad(), k_ln_gb, tol);
    auto [y2, gx2] = run([](const Var& v) { return layer_norm(v, {3, 4}); }, x, {2, 3, 4}, dt);
    require_close(y2, k_ln2_y, tol);
    require_close(gx2, k_ln2_gx, tol);
  }
}

TEST_CASE("layer_norm: grad matches finite differences (1 and 2 trailing dims, with and without affine)",
          "[ops][grad]") {
  auto x = rand_var({3, 2, 5}, 31, -2.0, 2.0), w = rand_var({5}, 32, 0.5, 1.5), b = rand_var({5}, 33);
  auto w2 = rand_var({2, 5}, 34, 0.5, 1.5), b2 = rand_var({2, 5}, 35);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], {5}, v[1], v[2]); }, {x, w, b});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], {5}); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], {2, 5}, v[1], v[2], 1e-3); },
                    {x, w2, b2});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], {2, 5}); }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], {5}, v[1]); }, {x, w});   // weight only
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], {5}, Var(), v[1]); }, {x, b});
  auto x2 = rand_var({5}, 39, -2.0, 2.0);   // an input used twice: as x and (through mul) as weight
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], {5}, v[0] * v[0]); }, {x2});
}

TEST_CASE("layer_norm: grad for weight and bias alone (x does not require grad)", "[ops][grad]") {
  auto x = rand_var({4, 6}, 36, -2.0, 2.0, false), w = rand_var({6}, 37, 0.5, 1.5), b = rand_var({6}, 38);
  REQUIRE_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], {6}, v[1], v[2]); }, {x, w, b});
}

TEST_CASE("layer_norm: equals its composite from basic ops in value and grad", "[ops][fused]") {
  auto x = rand_var({3, 4, 6}, 39, -2.0, 2.0), w = rand_var({6}, 40, 0.5, 1.5), b = rand_var({6}, 41);
  auto w2 = rand_var({4, 6}, 42, 0.5, 1.5), b2 = rand_var({4, 6}, 43);
  require_same_as_composite([](const std::vector<Var>& v) { return layer_norm(v[0], {6}, v[1], v[2]); },
                            [](const std::vector<Var>& v) { return layer_norm_composite(v[0], 1, v[1], v[2], 1e-5); },
                            {x, w, b});
  require_same_as_composite([](const std::vector<Var>& v) { return layer_norm(v[0], {4, 6}, v[1], v[2], 1e-3); },
                            [](const std::vector<Var>& v) { return layer_norm_composite(v[0], 2, v[1], v[2], 1e-3); },
                            {x, w2, b2});
  require_same_as_composite([](const std::vector<Var>& v) { return layer_norm(v[0], {4, 6}); },
                            [](const std::vector<Var>& v) { return layer_norm_composite(v[0], 2, Var(), Var(), 1e-5); },
                            {x});
}

// ---------------------------------------------------------------------------------------------------
// dropout

TEST_CASE("dropout: grad matches finite differences with the mask replayed from the seed", "[ops][grad]") {
  auto x = rand_var({4, 5}, 51);
  REQUIRE_GRADCHECK(
      [](const std::vector<Var>& v) {
        Generator gen(1234);   // re-seeded on every call: the same mask each time
        return dropout(v[0], 0.4, true, gen);
      },
      {x});
  REQUIRE_GRADCHECK(
      [](const std::vector<Var>& v) {
        Generator gen(99);
        return dropout(v[0], 0.25, true, gen) * v[0];   // input used twice
      },
      {x});
}

TEST_CASE("dropout: kept fraction and mean match 1 - p on 100k elements, masks replay from a seed", "[ops][stats]") {
  const int64_t n = 100000;
  const double p = 0.3;
  Var x(Tensor::ones({n}, DType::Float64));
  Generator gen(2024);
  Var y = dropout(x, p, true, gen);
  REQUIRE(gen.state().offset == static_cast<uint64_t>(n));   // one Philox block per element
  std::vector<double> v = y.value().to_vector();
  int64_t kept = 0;
  double sum = 0;
  for (double e : v) {
    REQUIRE((e == 0.0 || e == 1.0 / (1.0 - p)));
    kept += e != 0.0;
    sum += e;
  }
  // sd of the kept fraction: sqrt(p (1 - p) / n) = 0.00145; allow 5 sd.
  REQUIRE(std::abs(static_cast<double>(kept) / n - (1 - p)) <= 0.0073);
  REQUIRE(std::abs(sum / n - 1.0) <= 0.0104);
  Var eval = dropout(x, p, false, gen);
  REQUIRE(eval.same(x));
  REQUIRE(!y.value().bit_equal(eval.value()));

  Generator again(2024), other(2025);
  REQUIRE(dropout(x, p, true, again).value().bit_equal(y.value()));
  Tensor z = dropout(x, p, true, other).value();
  int64_t differ = 0;
  for (int64_t i = 0; i < n; ++i) differ += z.flat(i) != v[static_cast<size_t>(i)];
  REQUIRE(differ > n / 4);   // independent masks differ in 2 p (1 - p) = 42% of the places
  // A second draw from the same generator continues the stream: a different mask.
  REQUIRE(!dropout(x, p, true, gen).value().bit_equal(y.value()));
}

TEST_CASE("dropout: identity in eval mode or p = 0, p = 1 gives zeros and zero grad", "[ops]") {
  auto x = rand_var({3, 4}, 52);
  Generator gen(7);
  REQUIRE(dropout(x, 0.5, false, gen).same(x));
  REQUIRE(dropout(x, 0.0, true, gen).same(x));
  REQUIRE(gen.state().offset == 0);
  Var y = dropout(x, 1.0, true, gen);
  REQUIRE(gen.state().offset == 0);
  for (double v : y.value().to_vector()) REQUIRE(v == 0.0);
  y.backward(Tensor::ones({3, 4}, DType::Float64));
  for (double g : x.grad().to_vector()) REQUIRE(g == 0.0);
  Var f(Tensor::ones({8}, DType::Float32), true);   // float32: kept elements are x * (1 / (1 - p)) in float
  Generator g32(5);
  for (double v : dropout(f, 0.75, true, g32).value().to_vector()) REQUIRE((v == 0.0 || v == 4.0));
}

// ---------------------------------------------------------------------------------------------------
// errors and determinism

TEST_CASE("nn_functional: bad input throws naming op and shapes", "[ops][errors]") {
  auto x = rand_var({3, 4}, 61);
  REQUIRE_THROWS_WITH(softmax(x, 2), Contains("[softmax] dim 2 out of range for a 2-d tensor; got x=[3, 4]"));
  REQUIRE_THROWS_WITH(log_softmax(x, -3), Contains("[log_softmax] dim -3 out of range for a 2-d tensor; got x=[3, 4]"));
  Var idx(Tensor::zeros({3}, DType::Int64));
  REQUIRE_THROWS_WITH(softmax(idx, 0), Contains("[softmax] expected a float tensor; got x=int64[3]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {3}), Contains("[layer_norm] normalized_shape must match the trailing dims of x; "
                                                   "got x=[3, 4], normalized_shape=[3]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {2, 3, 4}), Contains("[layer_norm] normalized_shape must match the trailing "
                                                         "dims of x; got x=[3, 4], normalized_shape=[2, 3, 4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {}), Contains("[layer_norm] normalized_shape must have at least 1 dim; "
                                                  "got x=[3, 4], normalized_shape=[]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, rand_var({3}, 62)),
                      Contains("[layer_norm] weight must have shape normalized_shape; "
                               "got normalized_shape=[4], weight=[3]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, Var(), rand_var({1, 4}, 63)),
                      Contains("[layer_norm] bias must have shape normalized_shape; "
                               "got normalized_shape=[4], bias=[1, 4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, rand_var({4}, 64, -1, 1, false, DType::Float32)),
                      Contains("[layer_norm] dtypes differ; got x=float64[3, 4], weight=float32[4]"));
  Generator gen(0);
  REQUIRE_THROWS_WITH(dropout(x, 1.5, true, gen), Contains("[dropout] p must be in [0, 1]; got p=1.5"));
  REQUIRE_THROWS_WITH(dropout(x, -0.1, false, gen), Contains("[dropout] p must be in [0, 1]; got p=-0.1"));
}

TEST_CASE("nn_functional: determinism, softmax, layer_norm and dropout are bit-identical for 1 and 2 threads",
          "[ops][determinism]") {
  // Sizes chosen so every kernel splits into several chunks (rows and row-chunks for the weight grads).
  auto run_all = [](int threads) {
    tg::set_num_threads(threads);
    std::vector<Tensor> out;
    for (DType dt : {DType::Float32, DType::Float64}) {
      Var x = rand_var({512, 300}, 71, -4.0, 4.0, true, dt), w = rand_var({300}, 72, 0.5, 1.5, true, dt);
      Var b = rand_var({300}, 73, -1.0, 1.0, true, dt), c = rand_var({64, 40, 33}, 74, -4.0, 4.0, true, dt);
      Tensor gy = rand_tensor({512, 300}, 75, -1.0, 1.0, dt), gc = rand_tensor({64, 40, 33}, 76, -1.0, 1.0, dt);
      Var s = softmax(x, -1), ls = log_softmax(c, 1), ln = layer_norm(x, {300}, w, b);
      Generator gen(11);
      Var d = dropout(x, 0.3, true, gen);
      (s * Var(gy) + ln * Var(gy) + d).backward(gy);
      ls.backward(gc);
      for (const Tensor& t : {s.value(), ls.value(), ln.value(), d.value(), x.grad(), w.grad(), b.grad(), c.grad()})
        out.push_back(t);
    }
    return out;
  };
  require_same_bits_across_threads(run_all);
}
