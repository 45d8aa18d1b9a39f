#include "examples/tiny_lm/resume.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "examples/tiny_lm/data.h"

namespace tg::tiny_lm {
namespace {

constexpr char kState = 'S', kError = 'E';   // the first byte of the broadcast: a checkpoint, or rank 0's error

// `path`'s bytes after a kState byte, read through one file descriptor (read_regular_file): one version
// of the file, also when a save renames a new one over it meanwhile. Throws std::runtime_error
// "<path>: cannot read the checkpoint: <reason>".
std::vector<char> file_bytes(const std::string& path) {
  const std::string content = read_regular_file(path, "checkpoint");
  std::vector<char> bytes;
  bytes.reserve(content.size() + 1);
  bytes.push_back(kState);
  bytes.insert(bytes.end(), content.begin(), content.end());
  return bytes;
}

// Rank 0's read of the checkpoint. When the file cannot be read (no file, a directory, no permission),
// TrainingState::load says why, in the words of a run without mpirun ("<path>: cannot open file for
// reading: no such file"); should it load after all (the file appeared meanwhile), the read's error stands.
std::vector<char> root_bytes(TrainingState& s, const std::string& path) {
  try {
    return file_bytes(path);
  } catch (const std::runtime_error&) {
    s.load(path);
    throw;
  }
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

// Restores s from the checkpoint bytes (kState first) through a private copy. TrainingState::load's
// errors name `path`, the file the bytes were read from, instead of the copy.
void restore(TrainingState& s, const std::vector<char>& bytes, const std::string& path) {
  const TemporaryCopy copy(bytes);
  try {
    s.load(copy.path());
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    for (size_t at = what.find(copy.path()); at != std::string::npos; at = what.find(copy.path(), at + path.size()))
      what.replace(at, copy.path().size(), path);
    throw std::runtime_error(what);
  }
}

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
      bytes = root_bytes(s, path);
      restore(s, bytes, path);   // from the bytes the others get, not from the file again
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
  try {
    restore(s, bytes, path);
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(ps.rank()) + " cannot restore rank 0's " + path + ": " +
                             e.what());
  }
}

}  // namespace tg::tiny_lm
