#include "examples/common/gnuplot.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace tg::examples {
namespace fs = std::filesystem;

namespace {

std::string this_host() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return host;
}

// Scratch folders of `name` in `dir` that a process of this host left behind when it was killed
// (SIGTERM, Ctrl-C: no destructor ran). Each folder's file "owner" names its host and process; the
// folders whose process no longer exists go. Another host's, and a folder without an owner, stay.
void remove_abandoned(const fs::path& dir, const std::string& name) {
  const std::string prefix = name + ".gnuplot-", host = this_host();
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
      if (e.path().filename().string().rfind(prefix, 0) != 0) continue;
      std::ifstream f(e.path() / "owner");
      std::string owner_host;
      long pid = 0;
      if (!std::getline(f, owner_host) || !(f >> pid) || owner_host != host || pid <= 0) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;   // alive, or not ours to judge
      std::error_code ignored;
      fs::remove_all(e.path(), ignored);
    }
  } catch (const fs::filesystem_error&) {   // a folder we cannot list: nothing to clean, the picture goes on
  }
}

// A fresh folder "<dir>/.<name>.gnuplot-XXXXXX" (name: the picture's, cut to 200 bytes) holding a file
// "owner" (this host and process id), removed with what is left in it on destruction; folders this host's
// killed processes left behind go first (remove_abandoned).
class ScratchFolder {
 public:
  explicit ScratchFolder(const fs::path& beside) {
    fs::path dir = beside.parent_path().empty() ? fs::path(".") : beside.parent_path();
    // At most 200 bytes of the picture's name: with the 16 added characters the folder's name stays within
    // the 255 bytes a file system allows (a 250-byte picture name used to fail here).
    std::string name = beside.filename().string().substr(0, 200);
    name.insert(name.begin(), '.');
    remove_abandoned(dir, name);
    name.append(".gnuplot-XXXXXX");
    std::string pattern = (dir / name).string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error(beside.string() + ": cannot create a scratch folder beside it: " + std::strerror(errno));
    path_ = pattern;
    std::ofstream(path_ / "owner") << this_host() << "\n" << ::getpid() << "\n";
  }
  ~ScratchFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& contents, const std::string& output) {
  std::ofstream f(path, std::ios::binary);
  f << contents;
  f.close();
  if (!f) throw std::runtime_error(output + ": cannot write the plot's file " + path.string());
}

std::string tail_of(const fs::path& log) {
  std::ifstream f(log, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  std::string text = s.str();
  if (text.size() > 600) {
    text.erase(0, text.size() - 600);
    text.insert(0, "...");
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Runs `gnuplot script.gp` in `dir` with stdout and stderr in dir/gnuplot.log; the wait status.
int spawn_and_wait(const std::string& gnuplot, const fs::path& dir, const std::string& output) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = (dir / "gnuplot.log").string();
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // The actions run in order: open the log (a path relative to our folder when dir is) before the chdir.
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  std::string arg0 = gnuplot, arg1 = "script.gp";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const int error = ::posix_spawn(&pid, gnuplot.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::runtime_error(output + ": cannot start " + gnuplot + ": " + std::strerror(error));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(output + ": waiting for gnuplot failed: " + std::strerror(errno));
  }
  return status;
}

// Why `written` is not a whole picture of its kind, or "" when it is. gnuplot exits 0 even when a write
// failed (a full disk), leaving a truncated file: a PNG must start with the signature and end with the
// IEND chunk, an SVG must end with </svg>. Other kinds need only be non-empty.
std::string incomplete(const fs::path& written) {
  std::ifstream f(written, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  std::string data = s.str();
  if (data.empty()) return "it is empty";
  const std::string ext = written.extension().string();
  if (ext == ".png") {
    static const std::string signature("\x89PNG\r\n\x1a\n", 8);
    static const std::string iend("\0\0\0\0IEND\xae\x42\x60\x82", 12);
    if (data.compare(0, signature.size(), signature) != 0) return "it has no PNG signature";
    if (data.size() < signature.size() + iend.size() || data.compare(data.size() - iend.size(), iend.size(), iend) != 0)
      return "it does not end with a PNG IEND chunk (truncated)";
  } else if (ext == ".svg") {
    while (!data.empty() && std::isspace(static_cast<unsigned char>(data.back()))) data.pop_back();
    if (data.size() < 6 || data.compare(data.size() - 6, 6, "</svg>") != 0)
      return "it does not end with </svg> (truncated)";
  }
  return "";
}

}  // namespace

std::string find_gnuplot() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  std::istringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/gnuplot";
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

std::string png_terminal(int width, int height) {
  const std::string size = " size " + std::to_string(width) + "," + std::to_string(height) + " noenhanced";
  return "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo" + size + " font 'Sans,10' } "
         "else { set terminal png" + size + " }\n";
}

std::string gnuplot_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\'') out += "''";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (u < 0x20 || u == 0x7f) {
      static const char* const kHex = "0123456789abcdef";
      out.append("\\x").append(1, kHex[u >> 4]).append(1, kHex[u & 15]);
    } else {
      out += c;
    }
  }
  return out + "'";
}

bool run_gnuplot(const GnuplotJob& job) {
  if (job.outputs.empty()) throw std::invalid_argument("[run_gnuplot] a job needs at least one output; got none");
  const fs::path first = job.outputs.front().second;
  for (const auto& [name, final_path] : job.outputs)
    if (fs::path(final_path).parent_path() != first.parent_path())
      throw std::invalid_argument("[run_gnuplot] every output must be in one folder; got " + first.string() + " and " +
                                  final_path);
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty()) return false;
  ScratchFolder scratch(first);
  for (const auto& [name, contents] : job.files) write_file(scratch.path() / name, contents, first.string());
  write_file(scratch.path() / "script.gp", job.script, first.string());
  const int status = spawn_and_wait(gnuplot, scratch.path(), first.string());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                              : "signal " + std::to_string(WTERMSIG(status));
    throw std::runtime_error(first.string() + ": gnuplot failed (" + how + "): " + tail_of(scratch.path() / "gnuplot.log"));
  }
  // Every output is checked before any replaces its previous picture: a bad one leaves all old ones.
  for (const auto& [name, final_path] : job.outputs) {
    const fs::path written = scratch.path() / name;
    std::error_code ec;
    if (!fs::is_regular_file(written, ec) || fs::file_size(written, ec) == 0)
      throw std::runtime_error(final_path + ": gnuplot exited 0 but wrote no " + name + ": " +
                               tail_of(scratch.path() / "gnuplot.log"));
    if (const std::string why = incomplete(written); !why.empty())
      throw std::runtime_error(final_path + ": gnuplot exited 0 but its " + name + " is not a whole picture (" + why +
                               "; disk full?); the previous picture is kept: " +
                               tail_of(scratch.path() / "gnuplot.log"));
  }
  for (const auto& [name, final_path] : job.outputs) {
    const fs::path written = scratch.path() / name;
    if (std::rename(written.c_str(), final_path.c_str()) != 0)
      throw std::runtime_error(final_path + ": cannot move the picture into place: " + std::strerror(errno));
  }
  return true;
}

}  // namespace tg::examples
