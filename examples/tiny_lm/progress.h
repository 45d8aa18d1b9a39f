#pragma once
// Training progress: on a terminal, one live line (iteration, loss, lr, tokens/s, ETA) redrawn in
// place; otherwise plain log lines every tenth of the run. Evaluation messages print on their own line.
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace tg::tiny_lm {

class Progress {
 public:
  Progress(std::ostream& out, bool live, int64_t total_iters, int64_t tokens_per_iter);
  void update(int64_t iter, double loss, double lr);   // after iteration `iter` (1-based count) completed
  void message(const std::string& line);
  void finish();

 private:
  std::ostream& out_;
  bool live_;
  int64_t total_, tokens_per_iter_, first_iter_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace tg::tiny_lm
