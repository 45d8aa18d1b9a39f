// tg::gradcheck proven: deliberately wrong backwards written with record() must fail, with a report
// that names the input and the element; a correct one passes; raise_exception throws the same report;
// max_elements samples evenly and bounds the number of evaluations of fn.
//
// Failure modes fed to gradcheck (each must be caught): a sign error; a missing gradient for one input
// of a product; a missing product-rule term for an input used twice; a broadcast gradient not summed;
// a broadcast gradient summed over the wrong dim; a gradient scaled by 2; gradients written to the
// wrong (swapped) slots; a gradient wrong in one element only; a NaN gradient; a wrong gradient of a
// parameter reached through the params overload.
#include <cmath>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/framework/gradcheck.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/tensor_ops.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// One line of a failure report: "  input 1 float64[3] element [2]: analytic A, numeric N, abs error E,
// rel error R".
struct FailureLine {
  std::string kind;      // "input" or "param"
  int64_t index;
  std::string shape;     // "[2, 3]"
  std::string element;   // "[0, 1]"
  double analytic, numeric, abs_error, rel_error;
};

struct Report {
  int64_t failed, checked;
  std::vector<FailureLine> lines;
};

// Parses r.message and REQUIREs its exact format (default tolerances):
//   [gradcheck] F of C elements differ (atol 1e-08, rtol 1e-06, eps 1e-06):
//     <one FailureLine per failure, at most 5>
//     max abs error X, max rel error Y
Report parse(const std::string& message) {
  const std::string num = R"(([-+]?(?:[0-9.]+(?:e[-+][0-9]+)?|nan|inf)))";
  const std::regex header(R"(\[gradcheck\] (\d+) of (\d+) elements differ \(atol 1e-08, rtol 1e-06, eps 1e-06\):)");
  const std::regex line("  (input|param) (\\d+) float64(\\[[0-9, ]*\\]) element (\\[[0-9, ]*\\]): analytic " + num +
                        ", numeric " + num + ", abs error " + num + ", rel error " + num);
  const std::regex footer("  max abs error " + num + ", max rel error " + num);
  std::vector<std::string> rows;
  std::istringstream in(message);
  for (std::string row; std::getline(in, row);) rows.push_back(row);
  INFO(message);
  REQUIRE(rows.size() >= 3);
  std::smatch m;
  REQUIRE(std::regex_match(rows.front(), m, header));
  Report r{std::stoll(m[1]), std::stoll(m[2]), {}};
  REQUIRE(std::regex_match(rows.back(), footer));
  for (size_t i = 1; i + 1 < rows.size(); ++i) {
    REQUIRE(std::regex_match(rows[i], m, line));
    r.lines.push_back({m[1], std::stoll(m[2]), m[3], m[4], std::stod(m[5]), std::stod(m[6]), std::stod(m[7]),
                       std::stod(m[8])});
  }
  REQUIRE(r.lines.size() == static_cast<size_t>(std::min<int64_t>(r.failed, 5)));
  return r;
}

// |a - b| <= 1e-6 * |b|: the printed values (12 significant digits) agree with an expected relation.
bool near(double a, double b) { return std::abs(a - b) <= 1e-6 * std::abs(b) + 1e-12; }

// "[i]": the report's index of element i of a 1-d tensor.
std::string index1(size_t i) {
  std::ostringstream os;
  os << '[' << i << ']';
  return os.str();
}

using BinaryBackward = std::function<void(const Tensor& a, const Tensor& b, const Tensor& gy, Grads& g)>;

// y = a * b (broadcasting) with a hand-written, possibly wrong, backward.
Var mul_with(const Var& a, const Var& b, BinaryBackward backward) {
  return record("mul_custom", a.value() * b.value(), {a, b},
                [av = a.value(), bv = b.value(), backward](const Tensor& gy, Grads& g) { backward(av, bv, gy, g); });
}

// y = a + b (broadcasting) with a hand-written, possibly wrong, backward.
Var add_with(const Var& a, const Var& b, BinaryBackward backward) {
  return record("add_custom", a.value() + b.value(), {a, b},
                [av = a.value(), bv = b.value(), backward](const Tensor& gy, Grads& g) { backward(av, bv, gy, g); });
}

// The correct backward of mul_with.
void mul_backward(const Tensor& a, const Tensor& b, const Tensor& gy, Grads& g) {
  if (g.wants(0)) g.add(0, sum_to(gy * b, a.shape()));
  if (g.wants(1)) g.add(1, sum_to(gy * a, b.shape()));
}

GradcheckResult check_mul(const BinaryBackward& backward, const Var& a, const Var& b) {
  return gradcheck([&](const std::vector<Var>& x) { return mul_with(x[0], x[1], backward); }, {a, b});
}

}  // namespace

TEST_CASE("gradcheck: a correct hand-written backward passes (broadcasting mul)", "[gradcheck][grad]") {
  Var a = rand_var({2, 3}, 1), b = rand_var({3}, 2);
  GradcheckResult r = check_mul(mul_backward, a, b);
  INFO(r.message);
  REQUIRE(r.ok);
  REQUIRE(static_cast<bool>(r));
  REQUIRE(r.message.empty());
  REQUIRE(r.checked == 9);
  REQUIRE(r.max_abs_error < 1e-9);
  REQUIRE(r.max_rel_error < 1e-6);
}

TEST_CASE("gradcheck: a sign error fails on every element, naming input and element", "[gradcheck][grad]") {
  Var x = rand_var({3, 4}, 3);
  auto fn = [](const std::vector<Var>& in) {
    return record("square_wrong_sign", in[0].value() * in[0].value(), {in[0]},
                  [xv = in[0].value()](const Tensor& gy, Grads& g) { g.add(0, -2.0 * gy * xv); });
  };
  GradcheckResult r = gradcheck(fn, {x});
  REQUIRE_FALSE(r.ok);
  REQUIRE_FALSE(static_cast<bool>(r));
  REQUIRE(r.checked == 12);
  Report rep = parse(r.message);
  REQUIRE(rep.failed == 12);
  REQUIRE(rep.checked == 12);
  REQUIRE(rep.lines.size() == 5);   // the first five failures, in element order
  const char* elements[] = {"[0, 0]", "[0, 1]", "[0, 2]", "[0, 3]", "[1, 0]"};
  for (size_t i = 0; i < 5; ++i) {
    REQUIRE(rep.lines[i].kind == "input");
    REQUIRE(rep.lines[i].index == 0);
    REQUIRE(rep.lines[i].shape == "[3, 4]");
    REQUIRE(rep.lines[i].element == elements[i]);
    REQUIRE(near(rep.lines[i].analytic, -rep.lines[i].numeric));
    REQUIRE(near(rep.lines[i].abs_error, 2 * std::abs(rep.lines[i].numeric)));
    REQUIRE(std::abs(rep.lines[i].rel_error - 2.0) < 1e-6);
  }
  REQUIRE(std::abs(r.max_rel_error - 2.0) < 1e-6);
}

TEST_CASE("gradcheck: a missing gradient for one input of a product fails for that input only", "[gradcheck][grad]") {
  Var a = rand_var({4}, 4), b = rand_var({4}, 5);
  auto only_a = [](const Tensor&, const Tensor& bv, const Tensor& gy, Grads& g) {
    if (g.wants(0)) g.add(0, gy * bv);   // d(a*b)/db = a is never added
  };
  Report rep = parse(check_mul(only_a, a, b).message);
  REQUIRE(rep.failed == 4);
  REQUIRE(rep.checked == 8);
  for (size_t i = 0; i < 4; ++i) {
    REQUIRE(rep.lines[i].index == 1);
    REQUIRE(rep.lines[i].element == index1(i));
    REQUIRE(rep.lines[i].analytic == 0.0);
    REQUIRE(near(rep.lines[i].abs_error, std::abs(rep.lines[i].numeric)));
  }
}

TEST_CASE("gradcheck: a missing product-rule term for an input used twice fails", "[gradcheck][grad]") {
  Var x = rand_var({2, 2}, 6);
  // y = x * x through mul_with(x, x): each slot must add its term; here only slot 0 does, so the
  // accumulated gradient is gy * x instead of 2 * gy * x.
  auto first_only = [](const Tensor&, const Tensor& bv, const Tensor& gy, Grads& g) { g.add(0, gy * bv); };
  GradcheckResult r = gradcheck([&](const std::vector<Var>& in) { return mul_with(in[0], in[0], first_only); }, {x});
  Report rep = parse(r.message);
  REQUIRE(rep.failed == 4);
  for (const FailureLine& l : rep.lines) {
    REQUIRE(l.index == 0);
    REQUIRE(near(l.analytic, l.numeric / 2));
  }
  REQUIRE(rep.lines[3].element == "[1, 1]");
  // With both terms, the accumulation in Grads::add makes it right.
  REQUIRE(gradcheck([](const std::vector<Var>& in) { return mul_with(in[0], in[0], mul_backward); }, {x}).ok);
}

TEST_CASE("gradcheck: a broadcast gradient that is not summed over the broadcast dim fails", "[gradcheck][grad]") {
  Var a = rand_var({4, 3}, 7), b = rand_var({1, 3}, 8);
  auto first_row = [](const Tensor& av, const Tensor& bv, const Tensor& gy, Grads& g) {
    g.add(0, sum_to(gy, av.shape()));
    g.add(1, gy.rows(0, 1).clone());   // should be sum_to(gy, [1, 3]): the rows 1..3 are lost
    (void)bv;
  };
  GradcheckResult r = gradcheck([&](const std::vector<Var>& in) { return add_with(in[0], in[1], first_row); }, {a, b});
  Report rep = parse(r.message);
  REQUIRE(rep.failed == 3);
  REQUIRE(rep.checked == 15);
  const char* elements[] = {"[0, 0]", "[0, 1]", "[0, 2]"};
  for (size_t i = 0; i < 3; ++i) {
    REQUIRE(rep.lines[i].index == 1);
    REQUIRE(rep.lines[i].shape == "[1, 3]");
    REQUIRE(rep.lines[i].element == elements[i]);
  }
}

TEST_CASE("gradcheck: a broadcast gradient summed over the wrong dim fails", "[gradcheck][grad]") {
  // b [3] broadcasts over dim 0 of a [3, 3]; summing gy over dim 1 gives the right shape, wrong values.
  Var a = rand_var({3, 3}, 9), b = rand_var({3}, 10);
  auto wrong_dim = [](const Tensor& av, const Tensor&, const Tensor& gy, Grads& g) {
    g.add(0, sum_to(gy, av.shape()));
    g.add(1, sum(gy, {1}));
  };
  GradcheckResult r = gradcheck([&](const std::vector<Var>& in) { return add_with(in[0], in[1], wrong_dim); }, {a, b});
  Report rep = parse(r.message);
  REQUIRE(rep.failed == 3);
  for (size_t i = 0; i < 3; ++i) {
    REQUIRE(rep.lines[i].index == 1);
    REQUIRE(rep.lines[i].element == index1(i));
  }
  // The same op with sum_to passes.
  auto right = [](const Tensor& av, const Tensor& bv, const Tensor& gy, Grads& g) {
    g.add(0, sum_to(gy, av.shape()));
    g.add(1, sum_to(gy, bv.shape()));
  };
  REQUIRE(gradcheck([&](const std::vector<Var>& in) { return add_with(in[0], in[1], right); }, {a, b}).ok);
}

TEST_CASE("gradcheck: a gradient scaled by 2 fails with rel error 1", "[gradcheck][grad]") {
  Var a = rand_var({2, 3}, 11), b = rand_var({2, 3}, 12);
  auto doubled = [](const Tensor& av, const Tensor& bv, const Tensor& gy, Grads& g) {
    g.add(0, 2.0 * gy * bv);
    g.add(1, gy * av);
  };
  GradcheckResult r = check_mul(doubled, a, b);
  Report rep = parse(r.message);
  REQUIRE(rep.failed == 6);
  REQUIRE(rep.checked == 12);
  for (const FailureLine& l : rep.lines) {
    REQUIRE(l.index == 0);
    REQUIRE(near(l.analytic, 2 * l.numeric));
    REQUIRE(std::abs(l.rel_error - 1.0) < 1e-6);
  }
  REQUIRE(rep.lines[4].element == "[1, 1]");
}

TEST_CASE("gradcheck: gradients written to swapped slots fail for both inputs", "[gradcheck][grad]") {
  Var a = rand_var({2}, 13), b = rand_var({2}, 14);
  auto swapped = [](const Tensor& av, const Tensor& bv, const Tensor& gy, Grads& g) {
    g.add(0, gy * av);   // this is b's gradient
    g.add(1, gy * bv);   // this is a's gradient
  };
  Report rep = parse(check_mul(swapped, a, b).message);
  REQUIRE(rep.failed == 4);
  REQUIRE(rep.lines.size() == 4);
  // Lines: input 0 [0], input 0 [1], input 1 [0], input 1 [1]; each analytic is the other's numeric.
  for (size_t e = 0; e < 2; ++e) {
    const FailureLine &l0 = rep.lines[e], &l1 = rep.lines[2 + e];
    REQUIRE(l0.index == 0);
    REQUIRE(l1.index == 1);
    REQUIRE(l0.element == index1(e));
    REQUIRE(l1.element == l0.element);
    REQUIRE(near(l0.analytic, l1.numeric));
    REQUIRE(near(l1.analytic, l0.numeric));
  }
}

TEST_CASE("gradcheck: a gradient wrong in one element only is found at that element", "[gradcheck][grad]") {
  Var x = rand_var({3, 5}, 15);
  auto fn = [](const std::vector<Var>& in) {
    return record("triple_one_wrong", in[0].value() * 3.0, {in[0]}, [](const Tensor& gy, Grads& g) {
      Tensor d = gy * 3.0;
      d.set({2, 1}, d.at({2, 1}) + 0.5);
      g.add(0, d);
    });
  };
  GradcheckResult r = gradcheck(fn, {x});
  Report rep = parse(r.message);
  REQUIRE(rep.failed == 1);
  REQUIRE(rep.checked == 15);
  REQUIRE(rep.lines[0].element == "[2, 1]");
  REQUIRE(std::abs(rep.lines[0].abs_error - 0.5) < 1e-6);
  REQUIRE(std::abs(r.max_abs_error - 0.5) < 1e-6);
}

TEST_CASE("gradcheck: a NaN gradient fails", "[gradcheck][grad]") {
  Var x = rand_var({2}, 16);
  auto fn = [](const std::vector<Var>& in) {
    return record("nan_grad", in[0].value() * 2.0, {in[0]}, [](const Tensor& gy, Grads& g) {
      Tensor d = gy * 2.0;
      d.set({1}, std::nan(""));
      g.add(0, d);
    });
  };
  Report rep = parse(gradcheck(fn, {x}).message);
  REQUIRE(rep.failed == 1);
  REQUIRE(rep.lines[0].element == "[1]");
  REQUIRE(std::isnan(rep.lines[0].analytic));
}

TEST_CASE("gradcheck: a wrong parameter gradient is reported as param N after the inputs", "[gradcheck][grad]") {
  Var x = rand_var({2, 3}, 17), w = rand_var({3}, 18);
  auto wrong_x = [](const Tensor& av, const Tensor&, const Tensor& gy, Grads& g) {
    if (g.wants(0)) g.add(0, gy * av);          // wrong: should be gy * w
    if (g.wants(1)) g.add(1, sum_to(gy * av, {3}));
  };
  Report rep = parse(
      gradcheck([&](const std::vector<Var>& in) { return mul_with(in[0], w, wrong_x); }, {x},
                      std::vector{w}).message);
  // Input 0 (x) has the wrong gradient; the parameter's is right.
  REQUIRE(rep.failed == 6);
  for (const FailureLine& l : rep.lines) {
    REQUIRE(l.kind == "input");
    REQUIRE(l.index == 0);
  }
  // Now the parameter's gradient is wrong (not summed over the batch rows): reported as "param 1".
  auto wrong_param = [](const Tensor& av, const Tensor& bv, const Tensor& gy, Grads& g) {
    if (g.wants(0)) g.add(0, gy * bv);
    if (g.wants(1)) g.add(1, (gy * av).rows(1, 2).reshape({3}).clone());
  };
  GradcheckResult r = gradcheck([&](const std::vector<Var>& in) { return mul_with(in[0], w, wrong_param); }, {x},
                                std::vector{w});
  Report rp = parse(r.message);
  REQUIRE(rp.failed == 3);
  REQUIRE(rp.checked == 9);
  for (size_t i = 0; i < 3; ++i) {
    REQUIRE(rp.lines[i].kind == "param");
    REQUIRE(rp.lines[i].index == 1);
    REQUIRE(rp.lines[i].shape == "[3]");
    REQUIRE(rp.lines[i].element == index1(i));
  }
  REQUIRE_FALSE(w.grad().defined());   // the parameter's own grad is left as it was
}

TEST_CASE("gradcheck: raise_exception throws std::runtime_error with the report", "[gradcheck]") {
  Var a = rand_var({2, 3}, 19), b = rand_var({3}, 20);
  auto sign = [](const Tensor& av, const Tensor& bv, const Tensor& gy, Grads& g) {
    g.add(0, sum_to(-(gy * bv), av.shape()));
    g.add(1, sum_to(gy * av, bv.shape()));
  };
  auto fn = [&](const std::vector<Var>& x) { return mul_with(x[0], x[1], sign); };
  GradcheckResult r = gradcheck(fn, {a, b});
  REQUIRE_FALSE(r.ok);
  REQUIRE_THROWS_AS(gradcheck(fn, {a, b}, GradcheckOptions{.raise_exception = true}), std::runtime_error);
  try {
    gradcheck(fn, {a, b}, GradcheckOptions{.raise_exception = true});
    FAIL("gradcheck did not throw");
  } catch (const std::runtime_error& e) {
    REQUIRE(std::string(e.what()) == r.message);
    REQUIRE(parse(e.what()).lines[0].element == "[0, 0]");
  }
  // A correct backward does not throw.
  GradcheckResult ok = gradcheck([&](const std::vector<Var>& x) { return mul_with(x[0], x[1], mul_backward); }, {a, b},
                                 GradcheckOptions{.raise_exception = true});
  REQUIRE(ok.ok);
}

TEST_CASE("gradcheck: max_elements bounds the checked elements and the calls of fn", "[gradcheck]") {
  Var x = rand_var({10, 100}, 21), y = rand_var({50}, 22);
  int64_t calls = 0;
  auto fn = [&](const std::vector<Var>& in) {
    ++calls;
    return mul_with(in[0], sum(in[1], {}), mul_backward);   // [10, 100] * [] -> [10, 100]
  };
  struct Case { int64_t max_elements, checked; };
  // Per input: step = ceil(n / max_elements), elements 0, step, 2 * step, ... (n = 1000 and 50).
  for (Case c : {Case{10, 10 + 10}, Case{7, 7 + 7}, Case{300, 250 + 50}, Case{1, 1 + 1}, Case{-1, 1000 + 50}}) {
    calls = 0;
    GradcheckResult r = gradcheck(fn, {x, y}, GradcheckOptions{.max_elements = c.max_elements});
    INFO("max_elements " << c.max_elements << "\n" << r.message);
    REQUIRE(r.ok);
    REQUIRE(r.checked == c.checked);
    REQUIRE(calls == 1 + 2 * r.checked);   // one analytic pass, two evaluations per checked element
  }
}

TEST_CASE("gradcheck: max_elements samples evenly spaced elements (a wrong element off the grid is missed)", "[gradcheck]") {
  // One wrong element in [10, 100]: with max_elements = 10 the checked elements are 0, 100, ..., 900
  // (flat index), so a wrong gradient at flat 300 ([3, 0]) is caught and one at flat 301 is not; the
  // full check (max_elements = -1) catches both. Use max_elements for speed on large inputs, and a
  // full check on small ones.
  Var x = rand_var({10, 100}, 23);
  auto wrong_at = [](int64_t flat) {
    return [flat](const std::vector<Var>& in) {
      return record("triple_one_wrong", in[0].value() * 3.0, {in[0]}, [flat](const Tensor& gy, Grads& g) {
        Tensor d = gy * 3.0;
        d.set_flat(flat, d.flat(flat) + 1.0);
        g.add(0, d);
      });
    };
  };
  Report on_grid = parse(gradcheck(wrong_at(300), {x}, {.max_elements = 10}).message);
  REQUIRE(on_grid.failed == 1);
  REQUIRE(on_grid.checked == 10);
  REQUIRE(on_grid.lines[0].shape == "[10, 100]");
  REQUIRE(on_grid.lines[0].element == "[3, 0]");
  GradcheckResult off_grid = gradcheck(wrong_at(301), {x}, GradcheckOptions{.max_elements = 10});
  REQUIRE(off_grid.ok);
  REQUIRE(off_grid.checked == 10);
  Report full = parse(gradcheck(wrong_at(301), {x}).message);
  REQUIRE(full.failed == 1);
  REQUIRE(full.checked == 1000);
  REQUIRE(full.lines[0].element == "[3, 1]");
  // A wrong gradient everywhere (a sign error) is caught by any sample.
  auto sign = [](const std::vector<Var>& in) {
    return record("neg_wrong", in[0].value() * 3.0, {in[0]}, [](const Tensor& gy, Grads& g) { g.add(0, gy * -3.0); });
  };
  Report sampled = parse(gradcheck(sign, {x}, GradcheckOptions{.max_elements = 3}).message);
  REQUIRE(sampled.failed == 3);
  REQUIRE(sampled.lines[1].element == "[3, 34]");   // step ceil(1000 / 3) = 334
}

TEST_CASE("gradcheck: rejects float32 inputs and outputs that do not require grad", "[gradcheck]") {
  Var f = rand_var({2}, 24, -1, 1, true, DType::Float32);
  auto id = [](const std::vector<Var>& in) { return in[0] * 1.0; };
  REQUIRE_THROWS_AS(gradcheck(id, {f}), std::invalid_argument);
  REQUIRE_THROWS_WITH(gradcheck(id, {f}),
                      Contains("[gradcheck] input 0 requires grad but is float32[2]; gradcheck needs float64"));
  Var d = rand_var({2}, 25);
  auto detached = [](const std::vector<Var>& in) { return in[0].detach(); };
  REQUIRE_THROWS_WITH(gradcheck(detached, {d}), Contains("[gradcheck] fn's output does not require grad"));
}
