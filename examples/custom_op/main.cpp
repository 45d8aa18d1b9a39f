// The custom-op example: rms_norm with a hand-written backward (rms_norm.cpp) is compared with the
// same function built from tapegrad ops, gradchecked in float64, and then trained inside a small MLP
// on a synthetic classification task. Exits 1 if the op disagrees with its composite, the gradcheck
// fails, or the training loss does not drop to half its initial value.
#include <cmath>
#include <cstdio>
#include <vector>

#include "examples/custom_op/rms_norm.h"
#include "tapegrad/framework/gradcheck.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/tensor_ops.h"
#include "tapegrad/optim/adam.h"

using namespace tg;
using tg::examples::rms_norm;
using tg::examples::rms_norm_composite;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.flat(i) - b.flat(i)));
  return m;
}

// Fused and composite give the same values and the same gradients for x and weight (float64).
bool matches_composite() {
  Generator gen(0);
  Tensor xt = Tensor::normal({4, 3, 16}, 0, 1, gen, DType::Float64);
  Tensor wt = Tensor::uniform({16}, 0.5, 1.5, gen, DType::Float64);
  Tensor gy = Tensor::normal({4, 3, 16}, 0, 1, gen, DType::Float64);
  Var x1(xt.clone(), true), w1(wt.clone(), true), x2(xt.clone(), true), w2(wt.clone(), true);
  Var fused = rms_norm(x1, w1), composite = rms_norm_composite(x2, w2);
  fused.backward(gy);
  composite.backward(gy);
  double dy = max_abs_diff(fused.value(), composite.value());
  double dx = max_abs_diff(x1.grad(), x2.grad()), dw = max_abs_diff(w1.grad(), w2.grad());
  std::printf("fused vs composite: max |dy| %.3g, max |dx| %.3g, max |dweight| %.3g\n", dy, dx, dw);
  return dy < 1e-12 && dx < 1e-12 && dw < 1e-12;
}

bool passes_gradcheck() {
  // Gradcheck in float64: central differences against the hand-written backward, for x and weight.
  Generator gen(1);
  Var x(Tensor::normal({2, 3, 8}, 0, 1, gen, DType::Float64), true);
  Var w(Tensor::uniform({8}, 0.5, 1.5, gen, DType::Float64), true);
  tg::GradcheckResult r =
      tg::gradcheck([](const std::vector<Var>& in) { return rms_norm(in[0], in[1], 1e-6); }, {x, w});
  if (!r.ok) std::printf("%s\n", r.message.c_str());
  std::printf("gradcheck rms_norm: %s (%lld elements, max abs error %.3g)\n", r.ok ? "ok" : "FAILED",
              static_cast<long long>(r.checked), r.max_abs_error);
  return r.ok;
}

// logits = fc2(gelu(rms_norm(fc1(x), norm_weight))), parameters as plain leaves.
struct Mlp {
  Var fc1_weight, fc1_bias, norm_weight, fc2_weight, fc2_bias;

  Mlp(int64_t in, int64_t hidden, int64_t out, Generator& gen) {
    double a = 1 / std::sqrt(static_cast<double>(in)), b = 1 / std::sqrt(static_cast<double>(hidden));
    fc1_weight = Var(Tensor::uniform({hidden, in}, -a, a, gen), true);
    fc1_bias = Var(Tensor::uniform({hidden}, -a, a, gen), true);
    norm_weight = Var(Tensor::ones({hidden}), true);
    fc2_weight = Var(Tensor::uniform({out, hidden}, -b, b, gen), true);
    fc2_bias = Var(Tensor::uniform({out}, -b, b, gen), true);
  }
  Var forward(const Var& x) const {
    Var h = rms_norm(linear(x, fc1_weight, fc1_bias), norm_weight);   // [N, hidden]
    return linear(gelu(h), fc2_weight, fc2_bias);                     // [N, out]
  }
  optim::NamedParams named_parameters() const {
    return {{"fc1.weight", fc1_weight}, {"fc1.bias", fc1_bias}, {"norm.weight", norm_weight},
            {"fc2.weight", fc2_weight}, {"fc2.bias", fc2_bias}};
  }
};

// Labels of a random linear teacher: argmax over classes of x @ teacher.
Tensor teacher_labels(const Tensor& x, const Tensor& teacher) {
  Tensor scores = matmul(x, teacher);   // [N, C]
  const int64_t N = scores.size(0), C = scores.size(1);
  Tensor labels = Tensor::zeros({N}, DType::Int64);
  for (int64_t i = 0; i < N; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c) best = scores.at({i, c}) > scores.at({i, best}) ? c : best;
    labels.set({i}, static_cast<double>(best));
  }
  return labels;
}

double accuracy(const Mlp& model, const Tensor& x, const Tensor& labels) {
  NoGradGuard no_grad;   // evaluation: nothing is recorded, rms_norm keeps no closure
  Tensor logits = model.forward(Var(x)).value();
  int64_t right = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < logits.size(1); ++c) best = logits.at({i, c}) > logits.at({i, best}) ? c : best;
    right += best == static_cast<int64_t>(labels.flat(i));
  }
  return static_cast<double>(right) / static_cast<double>(labels.numel());
}

bool trains(int steps) {
  Generator gen(2);
  const int64_t N = 256, D = 16, C = 4;
  Tensor x = Tensor::normal({N, D}, 0, 1, gen);
  Tensor labels = teacher_labels(x, Tensor::normal({D, C}, 0, 1, gen));
  Mlp model(D, 32, C, gen);
  optim::Adam opt(model.named_parameters(), {.lr = 1e-2});
  double first = 0, last = 0;
  for (int step = 0; step <= steps; ++step) {
    Var loss = cross_entropy(model.forward(Var(x)), labels);
    if (step == 0) first = loss.item();
    last = loss.item();
    if (step % 50 == 0) std::printf("step %3d loss %.4f\n", step, last);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  double acc = accuracy(model, x, labels);
  std::printf("loss %.4f -> %.4f, train accuracy %.3f\n", first, last, acc);
  return std::isfinite(last) && last < 0.5 * first;
}

}  // namespace

int main() {
  bool ok = matches_composite();
  ok = passes_gradcheck() && ok;
  ok = trains(300) && ok;
  std::printf("%s\n", ok ? "custom_op: all checks passed" : "custom_op: FAILED");
  return ok ? 0 : 1;
}
