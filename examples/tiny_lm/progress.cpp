#include "examples/tiny_lm/progress.h"

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ostream>
#include <stdexcept>

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

namespace {

constexpr const char* kLossHeader = "iter,train_loss,lr,kind\n";

// The whole file, or throws naming it; sets *missing instead when it does not exist.
std::string read_log(const std::string& path, bool* missing) {
  *missing = false;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr && errno == ENOENT) {
    *missing = true;
    return {};
  }
  if (f == nullptr) throw std::runtime_error(path + ": cannot read the losses log: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {   // /dev/zero would never end
    std::fclose(f);
    throw std::runtime_error(path + ": cannot read the losses log: not a regular file");
  }
  std::string text;
  char buf[65536];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) text.append(buf, n);
  const int error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (error != 0) throw std::runtime_error(path + ": cannot read the losses log: " + std::strerror(error));
  return text;
}

// The header and the rows of iterations < step, and the evaluation row of iteration == step (logged just
// before the checkpoint of that step was written, which the resumed run does not evaluate again).
std::string rows_before(const std::string& path, const std::string& text, int64_t step) {
  std::string kept = kLossHeader;
  size_t begin = 0;
  for (int64_t line_no = 1; begin < text.size(); ++line_no) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.empty() || (line_no == 1 && line + "\n" == kLossHeader)) continue;
    int64_t iter = 0;
    auto [stop, ec] = std::from_chars(line.data(), line.data() + line.size(), iter);
    if (ec != std::errc() || stop == line.data() + line.size() || *stop != ',')
      throw std::runtime_error(path + ":" + std::to_string(line_no) + ": not a losses row (iter,train_loss,lr,kind): '" +
                               line.substr(0, 80) + "'");
    if (iter < step || (iter == step && line.ends_with(",val"))) kept += line + "\n";
  }
  return kept;
}

}  // namespace

void LossLog::fail(const std::string& path, const char* what, int error) {
  throw std::runtime_error(path + ": cannot " + what + " the losses log: " +
                           (error != 0 ? std::strerror(error) : "write error"));
}

LossLog LossLog::create(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) fail(path, "create", errno);
  LossLog log(path, f);
  log.write(kLossHeader);
  return log;
}

LossLog LossLog::resume(const std::string& path, int64_t step) {
  bool missing = false;
  const std::string text = read_log(path, &missing);
  if (missing) return create(path);
  const std::string kept = rows_before(path, text, step);
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) fail(path, "rewrite", errno);
  LossLog log(path, f);
  log.write(kept);
  return log;
}

LossLog::LossLog(LossLog&& other) noexcept : path_(std::move(other.path_)), file_(std::exchange(other.file_, nullptr)) {}

LossLog::~LossLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void LossLog::write(const std::string& text) {
  if (file_ == nullptr) throw std::logic_error("[LossLog] " + path_ + " was closed; cannot write to it");
  errno = 0;
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) fail(path_, "write", errno);
  if (std::fflush(file_) != 0) fail(path_, "write", errno);
}

void LossLog::row(int64_t iter, double value, double lr, const char* kind) {
  char line[128];
  std::snprintf(line, sizeof line, "%lld,%g,%g,%s\n", static_cast<long long>(iter), value, lr, kind);
  write(line);
}

void LossLog::close() {
  if (file_ == nullptr) return;
  errno = 0;
  FILE* f = std::exchange(file_, nullptr);
  if (std::fclose(f) != 0) fail(path_, "close", errno);
}

}  // namespace tg::tiny_lm
