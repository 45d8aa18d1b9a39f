// Golden parity: every case of every .h5 file in $TAPEGRAD_GOLDEN_DIR (default: tests/golden) is
// rebuilt from its config and params and must reproduce PyTorch's outputs, attention weights and
// every gradient within the tolerances of tests/golden/README.md. Prints exactly one line per file,
// "golden <file>: P/T cases passed"; a case that cannot be run (unknown kind or config key, any
// error) counts as failed, never skipped.
#include <cstdlib>
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
        tally.record(c, it->second(c));
      } catch (const std::exception& e) {
        tally.record_failure(c, e.what());
      }
    }
    std::cout << tally.summary_line(name) << std::endl;
    if (std::getenv("TAPEGRAD_GOLDEN_VERBOSE"))   // worst errors, for issue notes; off by default
      std::cerr << "  " << name << " worst error / scale: float64 " << tally.worst_error(DType::Float64)
                << ", float32 " << tally.worst_error(DType::Float32) << std::endl;
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
