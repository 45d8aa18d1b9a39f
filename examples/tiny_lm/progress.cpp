#include "examples/tiny_lm/progress.h"

#include <cstdio>
#include <ostream>

namespace tg::tiny_lm {
namespace {

std::string duration(double s) {
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, t / 60 % 60);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  return buf;
}

}  // namespace

Progress::Progress(std::ostream& out, bool live, int64_t total_iters, int64_t tokens_per_iter)
    : out_(out), live_(live), total_(total_iters), tokens_per_iter_(tokens_per_iter),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

void Progress::update(int64_t iter, double loss, double lr) {
  auto now = std::chrono::steady_clock::now();
  if (first_iter_ < 0) {
    first_iter_ = iter - 1;
    start_ = now;
  }
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const int64_t done = iter - first_iter_;
  const double per_iter = done > 0 ? elapsed / static_cast<double>(done) : 0.0;
  const double tok_s = per_iter > 0 ? static_cast<double>(tokens_per_iter_) / per_iter : 0.0;
  const double eta = per_iter * static_cast<double>(total_ - iter);
  char line[256];
  if (live_) {
    if (std::chrono::duration<double>(now - last_draw_).count() < 0.1 && iter < total_) return;
    last_draw_ = now;
    const int width = 30, filled = static_cast<int>(width * iter / (total_ > 0 ? total_ : 1));
    std::string bar(static_cast<size_t>(filled), '=');
    bar.resize(width, ' ');
    std::snprintf(line, sizeof line, "\r\033[Kiter %lld/%lld [%s] loss %.4f lr %.2e %.0f tok/s ETA %s",
                  static_cast<long long>(iter), static_cast<long long>(total_), bar.c_str(), loss, lr, tok_s,
                  duration(eta).c_str());
    out_ << line << std::flush;
    drawn_ = true;
    return;
  }
  const int64_t every = total_ >= 10 ? total_ / 10 : 1;
  if (iter % every != 0 && iter != total_) return;
  std::snprintf(line, sizeof line, "iter %lld/%lld loss %.4f lr %.2e %.0f tok/s %.1f ms/iter ETA %s",
                static_cast<long long>(iter), static_cast<long long>(total_), loss, lr, tok_s, per_iter * 1e3,
                duration(eta).c_str());
  out_ << line << "\n" << std::flush;
}

void Progress::message(const std::string& line) {
  if (live_ && drawn_) out_ << "\r\033[K";
  out_ << line << "\n" << std::flush;
  drawn_ = false;
}

void Progress::finish() {
  if (live_ && drawn_) out_ << "\n" << std::flush;
  drawn_ = false;
}

}  // namespace tg::tiny_lm
