#include "tapegrad/framework/io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace tg::io {
namespace {

namespace fs = std::filesystem;

fs::path folder_of(const std::string& path) {
  const fs::path target(path);
  return target.has_parent_path() ? target.parent_path() : fs::path(".");
}

// The pid of "<name>.tmp.<pid>", or -1 when `file` is not a temporary of `name`.
long temp_pid(const std::string& file, const std::string& name) {
  const std::string head = name + ".tmp.";
  if (file.size() <= head.size() || file.compare(0, head.size(), head) != 0) return -1;
  long pid = 0;
  for (size_t i = head.size(); i < file.size(); ++i) {
    if (file[i] < '0' || file[i] > '9' || pid > 100000000) return -1;
    pid = pid * 10 + (file[i] - '0');
  }
  return pid;
}

bool process_exists(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw std::runtime_error(path + ": " + what + ": " + std::strerror(err));
}

// Writes all bytes to fd, then fsyncs; returns 0 or the errno of the first failure.
int write_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return ::fsync(fd) == 0 ? 0 : errno;
}

}  // namespace

std::vector<std::string> stale_temp_files(const std::string& path) {
  std::vector<std::string> out;
  const std::string name = fs::path(path).filename().string();
  std::error_code ec;
  for (fs::directory_iterator it(folder_of(path), ec), end; !ec && it != end; it.increment(ec)) {
    const long pid = temp_pid(it->path().filename().string(), name);
    if (pid >= 0 && pid != ::getpid() && !process_exists(pid)) out.push_back(it->path().string());
  }
  return out;
}

void write_file_atomically(const std::string& path, const void* data, size_t size) {
  for (const std::string& stale : stale_temp_files(path)) ::unlink(stale.c_str());
  const fs::path dir = folder_of(path);
  const std::string tmp = (dir / (fs::path(path).filename().string() + ".tmp." + std::to_string(::getpid()))).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "cannot create " + tmp, errno);
  const int write_err = write_all(fd, data, size);
  const int close_err = ::close(fd) == 0 ? 0 : errno;
  if (write_err != 0 || close_err != 0) {
    ::unlink(tmp.c_str());
    fail(path, "cannot write " + tmp, write_err != 0 ? write_err : close_err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path, "cannot rename " + tmp + " over it", err);
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);   // make the rename durable
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace tg::io
