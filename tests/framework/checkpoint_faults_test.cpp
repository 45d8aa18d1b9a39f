// Save faults: a full disk, a read-only folder and SIGKILL at random moments of a save. Each must give
// a clear error with the OS's reason (no signal, also at process exit), leave the previous checkpoint
// byte-identical and no temporary file behind. Faults are produced for real: as root, in a private
// mount namespace with a tiny or read-only tmpfs; otherwise with RLIMIT_FSIZE and chmod 0555. When a
// fault cannot be produced the test fails and says why; nothing is skipped.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "support/test_support.h"
#include "tapegrad/framework/io/atomic_file.h"
#include "tapegrad/framework/io/checkpoint.h"

using namespace tg;
using namespace tg::io;
using tg::test::scratch_dir;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

CheckpointData sample(int64_t step, int64_t rows) {
  CheckpointData c;
  c.step = step;
  c.model = StateDict{{"emb.weight", test::rand_tensor({rows, 64}, static_cast<uint64_t>(step), -1, 1, DType::Float32)},
                      {"head.bias", test::rand_tensor({7}, static_cast<uint64_t>(step) + 1)}};
  c.optimizer = StateDict{{"groups/0/lr", Tensor::full({}, 0.5, DType::Float64)}};
  c.generators = {{"main", {42, static_cast<uint64_t>(step)}}};
  c.metadata = R"({"run": "faults"})";
  return c;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int count_temps(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

struct ChildResult {
  bool exited = false;
  int code = -1;
  int signal = 0;
  std::string report;   // what the child's body returned, or "exception: <what>"
};

// Runs body in a forked child that ends with std::exit(0), so HDF5's and every other atexit handler
// runs as in a real program; a crash there shows as a signal.
ChildResult in_child(const std::function<std::string()>& body) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    std::string report;
    try {
      report = body();
    } catch (const std::exception& e) {
      report = std::string("exception: ") + e.what();
    }
    (void)!write(fds[1], report.data(), report.size());
    close(fds[1]);
    std::exit(0);
  }
  close(fds[1]);
  ChildResult r;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) r.report.append(buffer, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return r;
}

// In the child: a private mount namespace with a tmpfs of `size` at dir; "" or the reason it failed.
std::string mount_tmpfs(const fs::path& dir, const char* size) {
  if (geteuid() != 0) return "not root";
  if (unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return std::string("make / private: ") + std::strerror(errno);
  const std::string options = std::string("size=") + size;
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) return std::string("mount tmpfs: ") + std::strerror(errno);
  return "";
}

// The failing save and what must hold afterwards; returns "failed: <message>" or what went wrong.
std::string failing_save(const std::string& path, const CheckpointData& big) {
  const std::string before = read_bytes(path);
  std::string message;
  try {
    write_checkpoint(path, big);
    return "the save succeeded although it should have failed";
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  if (read_bytes(path) != before) return "the previous checkpoint changed; error was: " + message;
  if (count_temps(fs::path(path).parent_path()) != 0) return "a temporary file was left; error was: " + message;
  if (!(read_checkpoint(path) == sample(1, 8))) return "the previous checkpoint does not load as saved";
  return "failed: " + message;
}

void require_clean_failure(const ChildResult& r, const std::string& reason) {
  INFO("child report: " << r.report);
  REQUIRE(r.signal == 0);
  REQUIRE(r.exited);
  REQUIRE(r.code == 0);
  REQUIRE_THAT(r.report, Contains("failed: ") && Contains("ckpt.h5: cannot ") && Contains(reason));
}

}  // namespace

TEST_CASE("checkpoint faults: a full disk (tiny tmpfs) fails cleanly with the OS's reason", "[checkpoint][faults]") {
  const fs::path dir = scratch_dir("faults_full_tmpfs");
  const std::string path = (dir / "ckpt.h5").string();
  ChildResult r = in_child([&]() -> std::string {
    const std::string why = mount_tmpfs(dir, "96k");
    if (!why.empty()) return "cannot produce a full disk: " + why;
    write_checkpoint(path, sample(1, 8));         // ~8 KB: fits
    return failing_save(path, sample(2, 2048));   // ~600 KB: does not
  });
  if (geteuid() != 0) {
    WARN("not root: the full disk is produced with RLIMIT_FSIZE (next test) instead of a tmpfs");
    REQUIRE_THAT(r.report, Contains("not root"));
    return;
  }
  require_clean_failure(r, "No space left on device");
}

TEST_CASE("checkpoint faults: a write failure (RLIMIT_FSIZE) fails cleanly with the OS's reason", "[checkpoint][faults]") {
  const fs::path dir = scratch_dir("faults_full_rlimit");
  const std::string path = (dir / "ckpt.h5").string();
  ChildResult r = in_child([&]() -> std::string {
    write_checkpoint(path, sample(1, 8));
    signal(SIGXFSZ, SIG_IGN);   // write(2) then fails with EFBIG instead of killing the process
    const rlim_t limit = fs::file_size(path) + 4096;
    struct rlimit rl{limit, limit};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return std::string("cannot set RLIMIT_FSIZE: ") + std::strerror(errno);
    return failing_save(path, sample(2, 2048));
  });
  require_clean_failure(r, "File too large");
}

TEST_CASE("checkpoint faults: a read-only folder fails cleanly with the OS's reason", "[checkpoint][faults]") {
  const fs::path dir = scratch_dir("faults_read_only");
  const std::string path = (dir / "ckpt.h5").string();
  ChildResult r = in_child([&]() -> std::string {
    if (geteuid() != 0) {
      write_checkpoint(path, sample(1, 8));
      fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                               fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
      std::string out = failing_save(path, sample(2, 16));
      fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add);
      return out;
    }
    const std::string why = mount_tmpfs(dir, "1m");
    if (!why.empty()) return "cannot produce a read-only folder as root: " + why;
    write_checkpoint(path, sample(1, 8));
    if (mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) != 0)
      return std::string("cannot remount read-only: ") + std::strerror(errno);
    return failing_save(path, sample(2, 16));
  });
  require_clean_failure(r, geteuid() == 0 ? "Read-only file system" : "Permission denied");
}

TEST_CASE("checkpoint faults: SIGKILL at random moments of saves leaves the previous checkpoint byte-identical",
          "[checkpoint][faults]") {
  const fs::path dir = scratch_dir("faults_kill");
  const std::string path = (dir / "ckpt.h5").string();
  const CheckpointData even = sample(10, 12000), odd = sample(11, 12000);   // ~3 MB each
  write_checkpoint(path, odd);
  const std::string odd_bytes = read_bytes(path);
  const auto t0 = std::chrono::steady_clock::now();
  write_checkpoint(path, even);
  const auto save_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  const std::string even_bytes = read_bytes(path);
  std::mt19937 rng(20261129);
  int left_temps = 0;
  // The child reports each finished save through a pipe; after its first one the parent kills it at a
  // random moment within the next two save durations. At least 30 rounds, more (up to 300) until one
  // kill has hit a writer between creating and renaming its temporary file.
  int round = 0;
  for (; round < 300 && (round < 30 || left_temps == 0); ++round) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      for (int i = 0;; ++i) {   // until killed
        write_checkpoint(path, i % 2 ? odd : even);
        (void)!write(fds[1], "s", 1);
      }
    }
    close(fds[1]);
    char c;
    REQUIRE(read(fds[0], &c, 1) == 1);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % (2 * save_us + 1)));
    kill(pid, SIGKILL);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    const std::string bytes = read_bytes(path);
    REQUIRE((bytes == even_bytes || bytes == odd_bytes));
    const CheckpointData got = read_checkpoint(path);
    REQUIRE((got == (got.step == 10 ? even : odd)));
    left_temps += count_temps(dir);
    REQUIRE(stale_temp_files(path).size() == static_cast<size_t>(count_temps(dir)));   // the killed writer's
  }
  INFO("rounds killed in the middle of writing the file: " << left_temps << " of " << round);
  REQUIRE(left_temps > 0);
  // The next save removes what killed writers left behind.
  write_checkpoint(path, even);
  REQUIRE(count_temps(dir) == 0);
  REQUIRE(read_bytes(path) == even_bytes);
}
