#include "tapegrad/framework/io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "tapegrad/framework/io/hdf5_file.h"

namespace tg::io {
namespace {

constexpr const char* kFormat = "tapegrad-checkpoint";
constexpr int64_t kVersion = 1;

std::string dotted_to_path(const std::string& name) {
  std::string p = name;
  for (char& c : p)
    if (c == '.') c = '/';
  return p;
}

void write_section(H5File& f, const std::string& root, const NamedTensors& entries, bool dotted) {
  f.create_group(root);
  for (const auto& [name, t] : entries) f.write(root + "/" + (dotted ? dotted_to_path(name) : name), t);
}

// Every dataset below `group`, named by its path relative to `root` (separator `sep`).
void read_section(const H5File& f, const std::string& root, const std::string& group, char sep, NamedTensors& out) {
  for (const std::string& child : f.children(group)) {
    const std::string path = group + "/" + child;
    if (f.is_group(path)) {
      read_section(f, root, path, sep, out);
    } else {
      std::string name = path.substr(root.size() + 1);
      for (char& c : name)
        if (c == '/') c = sep;
      out.emplace_back(name, f.read(path));
    }
  }
}

void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string tmp = (dir / (target.filename().string() + ".tmp." + std::to_string(::getpid()))).string();
  try {
    {
      H5File f(tmp, H5File::Mode::truncate);
      f.set_attr("/", "format", kFormat);
      f.set_attr("/", "version", kVersion);
      f.set_attr("/", "step", c.step);
      write_section(f, "/model", c.model, true);
      write_section(f, "/optimizer", c.optimizer, false);
      write_section(f, "/scheduler", c.scheduler, false);
      write_section(f, "/data", c.data, false);
      f.create_group("/rng");
      for (const auto& [name, s] : c.generators) {
        std::vector<int64_t> bits(2);
        std::memcpy(&bits[0], &s.seed, 8);
        std::memcpy(&bits[1], &s.offset, 8);
        f.write("/rng/" + name, Tensor::from_vector(bits, {2}));
      }
      f.write_string("/config", c.config);
      f.write_string("/vocabulary", c.vocabulary);
      f.flush(/*sync=*/true);
      f.close();
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw std::runtime_error(path + ": cannot rename " + tmp + " over it: " + std::strerror(errno));
    fsync_path(dir.string(), O_RDONLY | O_DIRECTORY);   // make the rename itself durable
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

Checkpoint load_checkpoint(const std::string& path) {
  H5File f(path, H5File::Mode::read);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kFormat)
    throw std::runtime_error(path + ": not a tapegrad checkpoint (attribute /format is missing or differs)");
  const int64_t version = f.attr_int("/", "version");
  if (version != kVersion)
    throw std::runtime_error(path + ": checkpoint version " + std::to_string(version) + " is not supported (expected " +
                             std::to_string(kVersion) + ")");
  for (const char* group : {"/model", "/optimizer", "/scheduler", "/data", "/rng", "/config", "/vocabulary"})
    if (!f.exists(group)) throw std::runtime_error(path + ": missing " + std::string(group));
  Checkpoint c;
  c.step = f.attr_int("/", "step");
  read_section(f, "/model", "/model", '.', c.model);
  read_section(f, "/optimizer", "/optimizer", '/', c.optimizer);
  read_section(f, "/scheduler", "/scheduler", '/', c.scheduler);
  read_section(f, "/data", "/data", '/', c.data);
  for (const std::string& name : f.children("/rng")) {
    Tensor bits = f.read("/rng/" + name, DType::Int64, {2});
    GeneratorState s;
    std::memcpy(&s.seed, bits.data<int64_t>(), 8);
    std::memcpy(&s.offset, bits.data<int64_t>() + 1, 8);
    c.generators.emplace_back(name, s);
  }
  c.config = f.read_string("/config");
  c.vocabulary = f.read_string("/vocabulary");
  return c;
}

const Tensor& find_entry(const NamedTensors& entries, const std::string& name, const std::string& file,
                         const std::string& section) {
  for (const auto& [n, t] : entries)
    if (n == name) return t;
  throw std::runtime_error(file + ": no dataset /" + section + "/" + name);
}

GeneratorState find_generator(const Checkpoint& c, const std::string& name, const std::string& file) {
  for (const auto& [n, s] : c.generators)
    if (n == name) return s;
  throw std::runtime_error(file + ": no dataset /rng/" + name);
}

}  // namespace tg::io
