// The custom-op example: rms_norm's hand-written backward is gradchecked in-process, equals its
// composite, rejects bad input, a plausible wrong backward is caught; the program runs and learns;
// and every C++ block of docs/custom_ops.md is code that lives in the example or in this test.
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "examples/custom_op/rms_norm.h"
#include "tapegrad/framework/gradcheck.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/tensor_ops.h"
#include "support/process_support.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using tg::examples::rms_norm;
using tg::examples::rms_norm_composite;
using Catch::Matchers::Contains;

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// The contents of the ```cpp ... ``` blocks of a Markdown text.
std::vector<std::string> cpp_blocks(const std::string& md) {
  const std::string open = "```cpp\n", close = "```\n";
  std::vector<std::string> blocks;
  for (size_t at = md.find(open); at != std::string::npos; at = md.find(open, at)) {
    size_t begin = at + open.size(), end = md.find(close, begin);
    REQUIRE(end != std::string::npos);
    blocks.push_back(md.substr(begin, end - begin));
    at = end + close.size();
  }
  return blocks;
}

// A plausible mistake: the backward treats r = 1 / sqrt(mean(x^2) + eps) as a constant, so the
// term through r's dependence on x is missing.
Var rms_norm_r_constant(const Var& x, const Var& weight, double eps) {
  Tensor r = rsqrt(mean(x.value() * x.value(), {-1}, true) + eps);   // [*, 1]
  Tensor y = x.value() * r * weight.value();
  auto backward = [xv = x.value(), w = weight.value(), r](const Tensor& gy, Grads& g) {
    if (g.wants(0)) g.add(0, gy * w * r);   // wrong: misses -r * x_hat * mean(gy*w * x_hat, -1)
    if (g.wants(1)) g.add(1, sum_to(gy * xv * r, w.shape()));
  };
  return record("rms_norm_r_constant", y, {x, weight}, backward);
}

}  // namespace

TEST_CASE("custom_op rms_norm: grad matches finite differences (x and weight)", "[examples][grad]") {
  Var x = rand_var({3, 5}, 1), w = rand_var({5}, 2, 0.5, 1.5);
  REQUIRE_GRADCHECK([](const std::vector<Var>& in) { return rms_norm(in[0], in[1], 1e-6); }, {x, w});
  Var x3 = rand_var({2, 3, 4}, 3), w3 = rand_var({4}, 4, 0.5, 1.5);
  REQUIRE_GRADCHECK([](const std::vector<Var>& in) { return rms_norm(in[0], in[1], 1e-5); }, {x3, w3});
  Var x1 = rand_var({6}, 5), w1 = rand_var({6}, 6, 0.5, 1.5);   // 1-d x: one row
  REQUIRE_GRADCHECK([](const std::vector<Var>& in) { return rms_norm(in[0], in[1]); }, {x1, w1});
}

TEST_CASE("custom_op rms_norm: grad with a frozen weight and with x used twice (accumulation)", "[examples][grad]") {
  Var x = rand_var({4, 3}, 7), frozen = rand_var({3}, 8, 0.5, 1.5, false);
  REQUIRE_GRADCHECK([](const std::vector<Var>& in) { return rms_norm(in[0], in[1]); }, {x, frozen});
  Var w = rand_var({3}, 9, 0.5, 1.5);
  REQUIRE_GRADCHECK([](const std::vector<Var>& in) { return rms_norm(in[0], in[1]) * in[0]; }, {x, w});
}

TEST_CASE("custom_op rms_norm: equals its composite in values and gradients (float64 and float32)", "[examples]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    Var x1 = rand_var({5, 7}, 10, -2, 2, true, dt), w1 = rand_var({7}, 11, 0.5, 1.5, true, dt);
    Var x2 = rand_var({5, 7}, 10, -2, 2, true, dt), w2 = rand_var({7}, 11, 0.5, 1.5, true, dt);
    Var a = rms_norm(x1, w1, 1e-5), b = rms_norm_composite(x2, w2, 1e-5);
    REQUIRE(a.dtype() == dt);
    require_close(a.value(), b.value(), tol, "y");
    Tensor gy = rand_tensor({5, 7}, 12, -1, 1, dt);
    a.backward(gy);
    b.backward(gy);
    require_close(x1.grad(), x2.grad(), tol, "dx");
    require_close(w1.grad(), w2.grad(), tol, "dweight");
  }
  // Known value: x = [3, 4], weight = [1, 2], eps = 0: rms = sqrt(12.5), y = [3, 8] / sqrt(12.5).
  Var x(Tensor::from_vector(std::vector<double>{3, 4}, {2})), w(Tensor::from_vector(std::vector<double>{1, 2}, {2}));
  require_close(rms_norm(x, w, 0.0).value(), {3 / std::sqrt(12.5), 8 / std::sqrt(12.5)}, 1e-15);
  // No rows: an empty result, and the weight's gradient is zero.
  Var empty(Tensor::zeros({0, 4}, DType::Float64), true), we = rand_var({4}, 22);
  Var ye = rms_norm(empty, we);
  REQUIRE(ye.shape() == Shape{0, 4});
  ye.backward(Tensor::zeros({0, 4}, DType::Float64));
  REQUIRE(we.grad().to_vector() == std::vector<double>{0, 0, 0, 0});
  REQUIRE(empty.grad().shape() == Shape{0, 4});
}

TEST_CASE("custom_op rms_norm: records nothing under NoGradGuard", "[examples]") {
  Var x = rand_var({2, 3}, 13), w = rand_var({3}, 14);
  REQUIRE(rms_norm(x, w).requires_grad());
  NoGradGuard no_grad;
  Var y = rms_norm(x, w);
  REQUIRE_FALSE(y.requires_grad());
  REQUIRE(y.is_leaf());
}

TEST_CASE("custom_op rms_norm: bad input throws naming the op and every shape", "[examples]") {
  Var x = rand_var({2, 3}, 15), w = rand_var({3}, 16);
  REQUIRE_THROWS_AS(rms_norm(x, rand_var({4}, 17)), std::invalid_argument);
  REQUIRE_THROWS_WITH(rms_norm(x, rand_var({4}, 17)),
                      Contains("[rms_norm] weight must have shape [D] with D = x.size(-1); got x=[2, 3], weight=[4]"));
  REQUIRE_THROWS_WITH(rms_norm(x, rand_var({1, 3}, 17)),
                      Contains("[rms_norm] weight must have shape [D] with D = x.size(-1); got x=[2, 3], weight=[1, 3]"));
  REQUIRE_THROWS_WITH(rms_norm(rand_var({2, 3}, 18, -1, 1, true, DType::Float32), w),
                      Contains("[rms_norm] dtypes differ; got x=float32[2, 3], weight=float64[3]"));
  REQUIRE_THROWS_WITH(rms_norm(rand_var({}, 19), w), Contains("[rms_norm] x must have at least 1 dim; got x=[]"));
  REQUIRE_THROWS_WITH(rms_norm(x, w, -1.0), Contains("[rms_norm] eps must be finite and >= 0; got eps=-1"));
  REQUIRE_THROWS_WITH(rms_norm(Var(), w), Contains("[rms_norm] undefined x"));
  REQUIRE_THROWS_WITH(rms_norm(x, Var()), Contains("[rms_norm] undefined weight"));
  Var xi(Tensor::zeros({2, 3}, DType::Int64)), wi(Tensor::zeros({3}, DType::Int64));
  REQUIRE_THROWS_WITH(rms_norm(xi, wi), Contains("[rms_norm] expected float tensors; got x=int64[2, 3]"));
  REQUIRE_THROWS_WITH(rms_norm_composite(x, rand_var({4}, 17)), Contains("[rms_norm] weight must have shape [D]"));
}

TEST_CASE("custom_op rms_norm: gradcheck catches a backward that treats r as a constant", "[examples][grad]") {
  Var x = rand_var({3, 4}, 20), w = rand_var({4}, 21, 0.5, 1.5);
  tg::GradcheckResult r =
      tg::gradcheck([](const std::vector<Var>& in) { return rms_norm_r_constant(in[0], in[1], 1e-6); }, {x, w});
  REQUIRE_FALSE(r.ok);
  REQUIRE_THAT(r.message, Contains("[gradcheck] 12 of 16 elements differ") &&
                              Contains("  input 0 float64[3, 4] element [0, 0]: analytic "));
  REQUIRE_THAT(r.message, !Contains("input 1"));   // weight's gradient is right
}

TEST_CASE("custom_op: the program checks, gradchecks and trains, and its loss drops", "[examples][e2e]") {
  const std::string bin = std::string(TAPEGRAD_BINARY_DIR) + "/examples/custom_op/custom_op";
  const tg::test::ProcessResult r = tg::test::run_process({bin});
  const std::string& out = r.output;
  INFO(out);
  REQUIRE(r.exited);
  REQUIRE(r.status == 0);
  REQUIRE_THAT(out, Contains("gradcheck rms_norm: ok"));
  REQUIRE_THAT(out, Contains("custom_op: all checks passed"));
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex(R"(loss ([0-9.]+) -> ([0-9.]+), train accuracy ([0-9.]+))")));
  REQUIRE(std::stod(m[2]) < 0.5 * std::stod(m[1]));
  REQUIRE(std::stod(m[3]) > 0.9);
  REQUIRE(std::regex_search(out, std::regex(R"(step 300 loss [0-9.]+)")));
}

TEST_CASE("docs/custom_ops.md and the README's gradient section: every C++ block is example or test code, verbatim",
          "[examples][docs]") {
  const std::string src = TAPEGRAD_SOURCE_DIR;
  std::string code;
  for (const char* f : {"/examples/custom_op/rms_norm.h", "/examples/custom_op/rms_norm.cpp",
                        "/examples/custom_op/main.cpp", "/tests/examples/custom_op_test.cpp"})
    code += read(src + f) + "\n";
  const std::string readme = read(src + "/README.md"), heading = "## Checking gradients of your own ops and models";
  size_t section = readme.find(heading);
  REQUIRE(section != std::string::npos);
  std::string readme_section = readme.substr(section, readme.find("\n## ", section + 1) - section);
  struct Doc { std::string name, text; size_t min_blocks; };
  for (const Doc& d : {Doc{"docs/custom_ops.md", read(src + "/docs/custom_ops.md"), 10},
                       Doc{"README " + heading, readme_section, 2}}) {
    std::vector<std::string> blocks = cpp_blocks(d.text);
    REQUIRE(blocks.size() >= d.min_blocks);
    for (size_t i = 0; i < blocks.size(); ++i) {
      INFO(d.name << ", C++ block " << i << ":\n" << blocks[i]);
      REQUIRE(code.find(blocks[i]) != std::string::npos);
    }
  }
}
