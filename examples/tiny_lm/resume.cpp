#include "examples/tiny_lm/resume.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace tg::tiny_lm {
namespace {

constexpr char kState = 'S', kError = 'E';   // the first byte of the broadcast: a checkpoint, or rank 0's error

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot read the checkpoint: " + std::strerror(errno));
  std::vector<char> bytes{kState};
  bytes.insert(bytes.end(), std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error(path + ": cannot read the checkpoint: " + std::strerror(errno));
  return bytes;
}

// A private file in the temporary folder holding bytes [1, end), removed at scope exit.
class TemporaryCopy {
 public:
  explicit TemporaryCopy(const std::vector<char>& bytes) {
    std::string name = (std::filesystem::temp_directory_path() / "tiny_lm_resume_XXXXXX").string();
    const int fd = ::mkstemp(name.data());
    if (fd < 0)
      throw std::runtime_error(name + ": cannot create a temporary copy of rank 0's checkpoint: " +
                               std::strerror(errno));
    path_ = name;
    const char* at = bytes.data() + 1;
    size_t left = bytes.size() - 1;
    while (left > 0) {
      const ssize_t n = ::write(fd, at, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string why = std::strerror(errno);
        ::close(fd);
        throw std::runtime_error(path_ + ": cannot write a temporary copy of rank 0's checkpoint: " + why);
      }
      at += n;
      left -= static_cast<size_t>(n);
    }
    ::close(fd);
  }
  ~TemporaryCopy() { std::remove(path_.c_str()); }
  TemporaryCopy(const TemporaryCopy&) = delete;
  TemporaryCopy& operator=(const TemporaryCopy&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

void resume_from_root(TrainingState& s, const std::string& path) {
  const Processes& ps = s.processes;
  if (ps.size() == 1) {
    s.load(path);
    return;
  }
  std::vector<char> bytes;
  std::exception_ptr failure;
  if (ps.is_root()) {
    try {
      s.load(path);   // its errors name the checkpoint, as alone
      bytes = file_bytes(path);
    } catch (const std::exception& e) {
      failure = std::current_exception();
      const std::string what = e.what();
      bytes.assign(1, kError);
      bytes.insert(bytes.end(), what.begin(), what.end());
    }
  }
  ps.broadcast_bytes(bytes, 0);
  if (failure) std::rethrow_exception(failure);
  if (bytes.empty() || bytes[0] != kState)
    throw std::runtime_error(bytes.empty() ? "rank 0 sent no checkpoint" : std::string(bytes.begin() + 1, bytes.end()));
  if (ps.is_root()) return;
  const TemporaryCopy copy(bytes);
  try {
    s.load(copy.path());
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(ps.rank()) + " cannot restore rank 0's " + path + ": " +
                             e.what());
  }
}

}  // namespace tg::tiny_lm
