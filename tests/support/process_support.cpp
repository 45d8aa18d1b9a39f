#include "support/process_support.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>

namespace tg::test {
namespace {

using Clock = std::chrono::steady_clock;

// The child's side: its own process group (so that a timeout ends everything it started), the working
// folder, the pipes as stdin/stdout/stderr, then exec. Never returns.
// Only async-signal-safe calls here (the test may have threads): argv is built before the fork.
[[noreturn]] void exec_child(char* const* argv, const ProcessOptions& o, int in, int out, int err) {
  ::setpgid(0, 0);
  ::signal(SIGPIPE, SIG_DFL);   // the test ignores SIGPIPE (run_process); the program gets the default back
  if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) ::_exit(127);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(o.merge_stderr ? out : err, 2) < 0) ::_exit(127);
  ::execvp(argv[0], argv);
  ::_exit(127);
}

// Milliseconds left before the deadline (-1: no deadline; 0: passed).
int remaining_ms(bool limited, Clock::time_point deadline) {
  if (!limited) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Closes fd if open and marks it closed.
void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Feeds stdin_text and drains stdout/stderr until both are closed (true) or the deadline passes (false).
// Closes the three pipe ends either way.
bool exchange(int to_child, int from_out, int from_err, const std::string& text, ProcessResult& r, bool limited,
              Clock::time_point deadline) {
  size_t written = 0;
  if (text.empty()) close_fd(to_child);
  bool in_time = true;
  while (in_time && (from_out >= 0 || from_err >= 0)) {
    pollfd fds[3] = {{to_child, POLLOUT, 0}, {from_out, POLLIN, 0}, {from_err, POLLIN, 0}};
    const int wait = remaining_ms(limited, deadline);
    if (wait == 0 || (::poll(fds, 3, wait) < 0 && errno != EINTR)) {
      in_time = false;
      break;
    }
    if (to_child >= 0 && fds[0].revents) {
      const ssize_t n = ::write(to_child, text.data() + written, text.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EINTR) || written == text.size()) close_fd(to_child);
    }
    int* ends[2] = {&from_out, &from_err};
    std::string* sinks[2] = {&r.output, &r.errors};
    for (int i = 0; i < 2; ++i) {
      if (*ends[i] < 0 || !fds[i + 1].revents) continue;
      char buf[4096];
      const ssize_t n = ::read(*ends[i], buf, sizeof buf);
      if (n > 0) sinks[i]->append(buf, static_cast<size_t>(n));
      else if (n == 0 || errno != EINTR) close_fd(*ends[i]);
    }
  }
  close_fd(to_child);
  close_fd(from_out);
  close_fd(from_err);
  return in_time;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
  REQUIRE(!argv.empty());
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int in[2], out[2], err[2];
  REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) exec_child(args.data(), options, in[0], out[1], err[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  ::signal(SIGPIPE, SIG_IGN);   // a program that exits without reading its stdin must not end the test
  const bool limited = options.timeout_seconds > 0;
  const auto deadline = Clock::now() + std::chrono::seconds(options.timeout_seconds);
  ProcessResult r;
  bool in_time = exchange(in[1], out[0], err[0], options.stdin_text, r, limited, deadline);
  int status = 0;
  while (in_time && ::waitpid(pid, &status, WNOHANG) == 0) {
    if (remaining_ms(limited, deadline) == 0) in_time = false;
    else ::usleep(2000);
  }
  if (!in_time) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    r.timed_out = true;
  }
  r.exited = WIFEXITED(status);
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.status = r.exited ? WEXITSTATUS(status) : 128 + r.signal;
  return r;
}

ProcessResult run_shell(const std::string& command_line, const ProcessOptions& options) {
  return run_process({"/bin/sh", "-c", command_line}, options);
}

std::string run_self_test_case(const std::string& env_assignment, const std::string& test_case) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const ProcessResult r = run_process({"env", env_assignment, self, test_case});
  REQUIRE(r.status == 0);
  return r.output;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

bool is_png(const std::filesystem::path& path) { return read_file(path).rfind("\x89PNG\r\n\x1a\n", 0) == 0; }

size_t count_occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace tg::test
