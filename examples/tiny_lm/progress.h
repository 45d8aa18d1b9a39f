#pragma once
// Training progress: on a terminal, one live line (iteration, loss, lr, tokens/s, ETA) redrawn in
// place; otherwise plain log lines every tenth of the run. Evaluation messages print on their own line.
// LossLog: the losses.csv file, every write checked.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iosfwd>
#include <string>
#include <utility>

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

// out_dir/losses.csv: the header "iter,train_loss,lr,kind", then one row per training iteration and
// per evaluation ("250,1.234,0.001,val"). Each row is flushed as it is written and every write, flush
// and the close are checked: a failure (a full disk, a directory in the file's place) throws
// std::runtime_error "<path>: cannot write the losses log: <the OS's reason>" (create, rewrite, close
// and read on resume likewise), never goes unnoticed.
class LossLog {
 public:
  // A new log (an existing file is replaced) holding only the header.
  static LossLog create(const std::string& path);
  // The log of a resumed run: rows of iterations >= step (written after the checkpoint) are dropped,
  // except the evaluation row of iteration step (written just before that checkpoint);
  // a missing file starts a new log. Throws std::runtime_error naming the file and line of a row that
  // is not "<iter>,...".
  static LossLog resume(const std::string& path, int64_t step);

  LossLog(LossLog&& other) noexcept;
  LossLog& operator=(LossLog&&) = delete;
  LossLog(const LossLog&) = delete;
  ~LossLog();   // closes without reporting; call close() to have the final flush checked

  void row(int64_t iter, double value, double lr, const char* kind);
  void close();

 private:
  LossLog(std::string path, FILE* file) : path_(std::move(path)), file_(file) {}
  [[noreturn]] static void fail(const std::string& path, const char* what, int error);
  void write(const std::string& text);

  std::string path_;
  FILE* file_ = nullptr;
};

}  // namespace tg::tiny_lm
