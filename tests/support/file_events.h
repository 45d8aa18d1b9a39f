#pragma once
// Test support: inotify events of the files in watched folders, to count how often a program opens,
// reads or writes a file (tests/examples: checkpoints are read once on resume).
#include <sys/inotify.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tg::test {

// inotify events of the files in watched folders (every process's, in the order they happened). The
// kernel merges an event into an identical one just before it, so a watch that is to count repeats must
// also see the events between them (an open between two closes).
class FileEvents {
 public:
  struct Event {
    int wd;
    uint32_t mask;
    std::string name;
  };
  FileEvents() : fd_(inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) { REQUIRE(fd_ >= 0); }
  ~FileEvents() { close(fd_); }
  FileEvents(const FileEvents&) = delete;
  FileEvents& operator=(const FileEvents&) = delete;
  int watch(const std::filesystem::path& dir, uint32_t mask) {
    const int wd = inotify_add_watch(fd_, dir.c_str(), mask);
    REQUIRE(wd >= 0);
    return wd;
  }
  // The events so far about a file in a watched folder.
  std::vector<Event> read_all() {
    std::vector<Event> out;
    alignas(inotify_event) char buffer[1 << 16];
    for (ssize_t n; (n = read(fd_, buffer, sizeof buffer)) > 0;)
      for (char* at = buffer; at < buffer + n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(at);
        REQUIRE((e->mask & IN_Q_OVERFLOW) == 0);
        if (e->len > 0) out.push_back({e->wd, e->mask, e->name});
        at += sizeof(inotify_event) + e->len;
      }
    return out;
  }
  // How many of `events` came from watch wd, about file `name`, with a bit of `mask`.
  static int64_t count(const std::vector<Event>& events, int wd, uint32_t mask, const std::string& name) {
    int64_t n = 0;
    for (const Event& e : events) n += e.wd == wd && (e.mask & mask) != 0 && e.name == name;
    return n;
  }

 private:
  int fd_;
};

}  // namespace tg::test
