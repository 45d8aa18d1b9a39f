// Golden parity: every case of every .h5 file in $TAPEGRAD_GOLDEN_DIR (default: tests/golden) is
// rebuilt from its config and params and must reproduce PyTorch's outputs, attention weights and
// every gradient within the tolerances of tests/golden/README.md. Prints per file the line
// "golden <file>: P/T cases passed", then per case dtype the worst absolute and relative error over every
// compared tensor, "golden <file> float64: worst abs 3.1e-15 rel 2.0e-13"; a case that cannot be run
// (unknown kind or config key, any error) counts as failed, never skipped.
#include <filesystem>
#include <iostream>

#include "golden/golden_runners.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

TEST_CASE("golden: every case of every file in TAPEGRAD_GOLDEN_DIR matches PyTorch", "[golden]") {
  const std::string dir = golden_dir();
  INFO("golden dir: " << dir);
  std::vector<std::string> files = golden_files(dir);
  REQUIRE(!files.empty());
  std::string report;
  bool all = true;
  for (const std::string& file : files) {
    const std::string name = std::filesystem::path(file).filename().string();
    GoldenTally tally;
    GoldenErrors errors;
    std::vector<GoldenCase> cases;
    try {
      cases = load_golden_cases(file);
    } catch (const std::exception& e) {
      report += name + ": cannot be read: " + e.what() + "\n";
      all = false;
      continue;
    }
    for (const GoldenCase& c : cases) {
      try {
        auto it = golden_runners().find(c.kind);
        if (it == golden_runners().end()) throw std::invalid_argument("unknown case kind '" + c.kind + "'");
        const std::vector<Compare> comparisons = it->second(c);
        tally.record(c, comparisons);
        errors.record(c, comparisons);
      } catch (const std::exception& e) {
        tally.record_failure(c, e.what());
      }
    }
    std::cout << tally.summary_line(name) << std::endl;
    for (const std::string& line : errors.lines(name)) std::cout << line << std::endl;
    report += tally.failure_report();
    all = all && tally.total() > 0 && tally.passed() == tally.total();
  }
  INFO(report);
  REQUIRE(all);
}

TEST_CASE("golden: the decoder_layer and transformer runners fail a case with a config key they do not know", "[golden]") {
  for (const char* file : {"decoder_layer.h5", "transformer.h5"}) {
    std::vector<GoldenCase> cases = load_golden_cases(std::string(TAPEGRAD_SOURCE_DIR) + "/tests/golden/" + file);
    REQUIRE(!cases.empty());
    GoldenCase c = cases.front();
    REQUIRE(golden_runners().at(c.kind)(c).size() > 0);   // runs as recorded
    c.config["memory_is_causal_hint"] = true;
    REQUIRE_THROWS_WITH(golden_runners().at(c.kind)(c),
                        "unknown config key 'memory_is_causal_hint' in " + c.where());
  }
}

namespace {

Tensor f64(std::vector<double> v) {
  Tensor t = Tensor::zeros({static_cast<int64_t>(v.size())}, DType::Float64);
  for (size_t i = 0; i < v.size(); ++i) t.set_flat(static_cast<int64_t>(i), v[i]);
  return t;
}

}  // namespace

TEST_CASE("golden: the error report gives the worst absolute and relative error per file and dtype", "[golden]") {
  GoldenCase a;
  a.file = "x.h5";
  a.name = "a";
  a.dtype = DType::Float64;
  a.outputs["output"] = f64({0.5, -2.0});
  a.grad_params["w"] = f64({1e-3, 0.0});
  a.grad_params["z"] = f64({0.0, 0.0});
  GoldenErrors errors;
  REQUIRE(errors.lines("x.h5").empty());
  errors.record(a, {compare_to_golden("outputs/output", f64({0.5, -2.0 + 4e-12}), a.outputs["output"], a.dtype),
                    compare_to_golden("grads/params/w", f64({1e-3 + 3e-15, 0.0}), a.grad_params["w"], a.dtype),
                    compare_to_golden("grads/params/z", f64({1e-13, 0.0}), a.grad_params["z"], a.dtype)});
  // abs: 4e-12 (the output); rel: 3e-15 / 1e-3 = 3e-12 (w) beats 4e-12 / 2 = 2e-12; the all-zero reference z
  // has no relative error (its 1e-13 counts in abs only).
  REQUIRE(errors.lines("x.h5") == std::vector<std::string>{"golden x.h5 float64: worst abs 4.0e-12 rel 3.0e-12"});
  GoldenCase b = a;
  b.name = "b";
  b.dtype = DType::Float32;
  b.grad_params.clear();
  b.outputs["output"] = Tensor::full({1}, 4.0, DType::Float32);
  Tensor got = Tensor::full({1}, 4.0 + std::ldexp(1.0, -21), DType::Float32);   // one float32 ulp above 4
  Compare nan_case = compare_to_golden("outputs/output", Tensor::full({1}, std::nan(""), DType::Float32),
                                       b.outputs["output"], b.dtype);
  errors.record(b, {compare_to_golden("outputs/output", got, b.outputs["output"], b.dtype), nan_case});
  REQUIRE(errors.lines("x.h5") == std::vector<std::string>{"golden x.h5 float64: worst abs 4.0e-12 rel 3.0e-12",
                                                            "golden x.h5 float32: worst abs 4.8e-07 rel 1.2e-07"});
}
