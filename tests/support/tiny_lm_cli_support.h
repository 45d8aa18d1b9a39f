#pragma once
// What the tiny_lm command-line tests share: a run folder that does not exist yet, and train's final line.
#include <regex>
#include <string>

#include "support/test_support.h"

namespace tg::test {

// build/test_scratch/<name>/run: inside a fresh, empty folder, not created (tiny_lm train creates it).
inline std::string fresh_run_dir(const std::string& name) { return (scratch_dir(name) / "run").string(); }

// "final iter N train_loss X val_loss Y" of tiny_lm train's output, without the wall time.
inline std::string final_line(const std::string& out) {
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex("final iter \\d+ train_loss [0-9.]+ val_loss [0-9.]+")));
  return m.str();
}

}  // namespace tg::test
