// The checkpoint format (see checkpoint.h): plain data to an HDF5 image and back, with the digests
// and every check a reader needs. Live objects (modules, optimizers) are checkpoint.cpp's business.
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tapegrad/framework/io/atomic_file.h"
#include "tapegrad/framework/io/checkpoint.h"
#include "tapegrad/framework/io/hdf5_file.h"

namespace tg::io {
namespace {

constexpr const char* kFormat = "tapegrad-checkpoint";
constexpr const char* kDigestAttr = "digest";

// A 64-bit streaming digest: 8-byte words folded in with multiply and xor-shift steps, each a
// bijection of the state, so any change confined to one word always changes the result; lengths are
// mixed in, so moving bytes between fields does too. Not cryptographic: it detects corruption and
// edits, not an adversary who recomputes it.
class Digest {
 public:
  void bytes(const void* data, size_t size) {
    word(size);
    const auto* p = static_cast<const unsigned char*>(data);
    for (; size >= 8; p += 8, size -= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      word(w);
    }
    uint64_t tail = 0;
    if (size > 0) std::memcpy(&tail, p, size);
    word(tail);
  }
  void text(const std::string& s) { bytes(s.data(), s.size()); }
  void word(uint64_t w) {
    h_ = (h_ ^ w) * 0xff51afd7ed558ccdULL;
    h_ ^= h_ >> 31;
  }
  int64_t value() const {
    uint64_t h = h_ * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    int64_t out;
    std::memcpy(&out, &h, 8);
    return out;
  }

 private:
  uint64_t h_ = 0x9e3779b97f4a7c15ULL;
};

int64_t tensor_digest(const std::string& path, const Tensor& t) {
  Digest d;
  d.text(path);
  d.text(to_string(t.dtype()));
  d.word(t.shape().size());
  for (int64_t n : t.shape()) d.word(static_cast<uint64_t>(n));
  if (t.numel() > 0) d.bytes(t.raw(), t.nbytes());
  else d.word(0);
  return d.value();
}

int64_t string_digest(const std::string& path, const std::string& value) {
  Digest d;
  d.text(path);
  d.text("string");
  d.text(value);
  return d.value();
}

// Root digest: the version, the step and every dataset's (path, digest), in path order.
int64_t root_digest(int64_t step, const std::map<std::string, int64_t>& datasets) {
  Digest d;
  d.text(kFormat);
  d.word(static_cast<uint64_t>(kCheckpointVersion));
  d.word(static_cast<uint64_t>(step));
  for (const auto& [path, digest] : datasets) {
    d.text(path);
    d.word(static_cast<uint64_t>(digest));
  }
  return d.value();
}

std::string path_of(const std::string& key, bool dotted) {
  std::string p = key;
  if (dotted)
    for (char& c : p)
      if (c == '.') c = '/';
  return p;
}

// Keys become HDF5 paths: no empty component, no "." or ".." component, no '/' inside a dotted key.
void check_key(const std::string& section, const std::string& key, bool dotted) {
  const std::string p = path_of(key, dotted);
  bool bad = key.empty() || (dotted && key.find('/') != std::string::npos);
  size_t start = 0;
  while (!bad && start <= p.size()) {
    const size_t end = std::min(p.find('/', start), p.size());
    const std::string part = p.substr(start, end - start);
    bad = part.empty() || part == "." || part == "..";
    start = end + 1;
  }
  if (bad) throw std::invalid_argument("[save_checkpoint] " + section + " key '" + key + "' cannot be a dataset path");
}

bool all_finite(const Tensor& t, int64_t* where) {
  if (!is_floating(t.dtype())) return true;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = t.dtype() == DType::Float32 ? t.data<float>()[i] : t.data<double>()[i];
    if (!std::isfinite(v)) {
      *where = i;
      return false;
    }
  }
  return true;
}

void require_finite(const std::string& file, const std::string& path, const Tensor& t) {
  int64_t where = 0;
  if (all_finite(t, &where)) return;
  const double v = t.dtype() == DType::Float32 ? t.data<float>()[where] : t.data<double>()[where];
  throw std::runtime_error(file + ": dataset " + path + " holds a non-finite value (" + (std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf") +
                           ") at element " + std::to_string(where) + "; a checkpoint stores finite weights and state only");
}

struct Writer {
  H5File& f;
  std::map<std::string, int64_t> digests;

  void tensor(const std::string& path, const Tensor& t) {
    f.write(path, t);
    digests[path] = tensor_digest(path, t);
    f.set_attr(path, kDigestAttr, digests[path]);
  }
  void section(const std::string& root, const StateDict& sd, bool dotted, bool finite) {
    f.create_group(root);
    for (const auto& [key, t] : sd) {
      check_key(root, key, dotted);
      const std::string path = root + "/" + path_of(key, dotted);
      if (finite) require_finite(f.filename(), path, t);
      tensor(path, t);
    }
  }
};

void check_name(const char* what, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name.find('.') != std::string::npos)
    throw std::invalid_argument(std::string("[save_checkpoint] ") + what + " name '" + name +
                                "' must be non-empty without '/' or '.'");
}

std::vector<unsigned char> build_image(const std::string& path, const CheckpointData& c, bool allow_nonfinite) {
  if (c.step < 0) throw std::invalid_argument("[save_checkpoint] step must be >= 0; got step=" + std::to_string(c.step));
  if (!nlohmann::json::accept(c.metadata))
    throw std::invalid_argument("[save_checkpoint] metadata must be JSON text; got metadata=" + c.metadata.substr(0, 80));
  H5File f(path, H5File::Mode::memory);
  Writer w{f, {}};
  if (c.model) w.section("/model", *c.model, true, !allow_nonfinite);
  if (c.optimizer) w.section("/optimizer", *c.optimizer, false, !allow_nonfinite);
  if (c.scheduler) w.section("/scheduler", *c.scheduler, false, false);
  if (!c.extra.empty()) f.create_group("/extra");
  for (const auto& [name, sd] : c.extra) {
    check_name("extra section", name);
    w.section("/extra/" + name, sd, false, false);
  }
  f.create_group("/rng");
  for (const auto& [name, s] : c.generators) {
    check_name("generator", name);
    std::vector<int64_t> bits(2);
    std::memcpy(&bits[0], &s.seed, 8);
    std::memcpy(&bits[1], &s.offset, 8);
    w.tensor("/rng/" + name, Tensor::from_vector(bits, {2}));
  }
  f.write_string("/metadata", c.metadata, H5File::StringStorage::fixed);
  w.digests["/metadata"] = string_digest("/metadata", c.metadata);
  f.set_attr("/metadata", kDigestAttr, w.digests["/metadata"]);
  f.set_attr("/", "format", kFormat, H5File::StringStorage::fixed);
  f.set_attr("/", "version", kCheckpointVersion);
  f.set_attr("/", "step", c.step);
  f.set_attr("/", kDigestAttr, root_digest(c.step, w.digests));
  std::vector<unsigned char> image = f.image();
  f.close();
  return image;
}

// ---- reading ----

struct Reader {
  const H5File& f;
  std::map<std::string, int64_t> digests;

  int64_t stored_digest(const std::string& path) const {
    if (!f.has_attr(path, kDigestAttr)) throw std::runtime_error(f.filename() + ": dataset " + path + " has no digest attribute");
    return f.attr_int(path, kDigestAttr);
  }
  [[noreturn]] void mismatch(const std::string& path) const {
    throw std::runtime_error(f.filename() + ": checksum mismatch in dataset " + path + " (the file is corrupted or was edited)");
  }
  Tensor tensor(const std::string& path) {
    const int64_t stored = stored_digest(path);
    Tensor t = f.read(path);
    if (tensor_digest(path, t) != stored) mismatch(path);
    digests[path] = stored;
    return t;
  }
  std::string text(const std::string& path) {
    const int64_t stored = stored_digest(path);
    std::string s = f.read_string(path, H5File::StringStorage::fixed);
    if (string_digest(path, s) != stored) mismatch(path);
    digests[path] = stored;
    return s;
  }
  // Every dataset below group, keyed by its path relative to root ('/' -> sep).
  void section(const std::string& root, const std::string& group, char sep, StateDict& out) {
    for (const std::string& child : f.children(group)) {
      const std::string path = group + "/" + child;
      if (f.is_group(path)) {
        section(root, path, sep, out);
        continue;
      }
      std::string key = path.substr(root.size() + 1);
      for (char& c : key)
        if (c == '/') c = sep;
      if (out.contains(key)) throw std::runtime_error(f.filename() + ": dataset " + path + " repeats the key " + key);
      out.add(key, tensor(path));
    }
  }
  StateDict section(const std::string& root, char sep) {
    if (!f.is_group(root)) throw std::runtime_error(f.filename() + ": " + root + " is not a group");
    StateDict sd;
    section(root, root, sep, sd);
    return sd;
  }
};

// Opens path and checks what must hold before any data is read.
void check_header(const H5File& f, int64_t* step) {
  const std::string& file = f.filename();
  if (!f.has_attr("/", "format") || !f.has_attr("/", "version"))
    throw std::runtime_error(file + ": not a tapegrad checkpoint (attribute /format or /version is missing)");
  // The version first: version 1 stored /format as a variable-length string, which is not read any more.
  const int64_t version = f.attr_int("/", "version");
  if (version != kCheckpointVersion)
    throw std::runtime_error(file + ": checkpoint version " + std::to_string(version) +
                             " is not supported; this tapegrad reads version " + std::to_string(kCheckpointVersion));
  std::string format;
  try {
    format = f.attr_string("/", "format", H5File::StringStorage::fixed);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(file + ": not a tapegrad checkpoint (" + e.what() + ")");
  }
  if (format != kFormat) throw std::runtime_error(file + ": not a tapegrad checkpoint (attribute /format is '" + format + "')");
  f.check_self_contained();
  *step = f.attr_int("/", "step");
  if (*step < 0) throw std::runtime_error(file + ": attribute /step is " + std::to_string(*step) + ", expected >= 0");
  for (const std::string& child : f.children("/"))
    if (child != "model" && child != "optimizer" && child != "scheduler" && child != "extra" && child != "rng" &&
        child != "metadata")
      throw std::runtime_error(file + ": unexpected /" + child + " (not part of the checkpoint format)");
  for (const char* required : {"/rng", "/metadata"})
    if (!f.exists(required)) throw std::runtime_error(file + ": missing " + std::string(required));
}

void read_generators(Reader& r, CheckpointData& c) {
  for (const std::string& name : r.f.children("/rng")) {
    const std::string path = "/rng/" + name;
    Tensor bits = r.tensor(path);
    if (bits.dtype() != DType::Int64 || bits.shape() != Shape{2})
      throw std::runtime_error(r.f.filename() + ": dataset " + path + " has " + to_string(bits.dtype()) +
                               to_string(bits.shape()) + ", expected int64[2]");
    GeneratorState s;
    std::memcpy(&s.seed, bits.data<int64_t>(), 8);
    std::memcpy(&s.offset, bits.data<int64_t>() + 1, 8);
    c.generators.emplace_back(name, s);
  }
}

bool same(const StateDict& a, const StateDict& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, t] : a)
    if (!b.contains(k) || !b.at(k).bit_equal(t)) return false;
  return true;
}

bool same(const std::optional<StateDict>& a, const std::optional<StateDict>& b) {
  return a.has_value() == b.has_value() && (!a || same(*a, *b));
}

}  // namespace

bool CheckpointData::operator==(const CheckpointData& o) const {
  if (step != o.step || metadata != o.metadata || generators.size() != o.generators.size() || extra.size() != o.extra.size())
    return false;
  if (!same(model, o.model) || !same(optimizer, o.optimizer) || !same(scheduler, o.scheduler)) return false;
  for (const auto& [name, s] : generators) {
    bool found = false;
    for (const auto& [n2, s2] : o.generators) found = found || (n2 == name && s2 == s);
    if (!found) return false;
  }
  for (const auto& [name, sd] : extra) {
    bool found = false;
    for (const auto& [n2, sd2] : o.extra) found = found || (n2 == name && same(sd, sd2));
    if (!found) return false;
  }
  return true;
}

void write_checkpoint(const std::string& path, const CheckpointData& data, bool allow_nonfinite) {
  const std::vector<unsigned char> image = build_image(path, data, allow_nonfinite);
  write_file_atomically(path, image.data(), image.size());
}

CheckpointData read_checkpoint(const std::string& path, bool allow_nonfinite) {
  H5File f(path, H5File::Mode::read);
  CheckpointData c;
  check_header(f, &c.step);
  Reader r{f, {}};
  if (f.exists("/model")) c.model = r.section("/model", '.');
  if (f.exists("/optimizer")) c.optimizer = r.section("/optimizer", '/');
  if (f.exists("/scheduler")) c.scheduler = r.section("/scheduler", '/');
  if (f.exists("/extra"))
    for (const std::string& name : f.children("/extra")) c.extra.emplace_back(name, r.section("/extra/" + name, '/'));
  read_generators(r, c);
  c.metadata = r.text("/metadata");
  if (root_digest(c.step, r.digests) != f.attr_int("/", kDigestAttr))
    throw std::runtime_error(path + ": digest mismatch (a dataset was added, removed or renamed, or the step was edited)");
  if (!nlohmann::json::accept(c.metadata)) throw std::runtime_error(path + ": /metadata is not JSON text");
  if (!allow_nonfinite) require_finite(c, path);
  return c;
}

void require_finite(const CheckpointData& c, const std::string& source) {
  if (c.model)
    for (const auto& [k, t] : *c.model) require_finite(source, "/model/" + path_of(k, true), t);
  if (c.optimizer)
    for (const auto& [k, t] : *c.optimizer) require_finite(source, "/optimizer/" + k, t);
}

std::string read_checkpoint_metadata(const std::string& path) {
  H5File f(path, H5File::Mode::read);
  int64_t step = 0;
  check_header(f, &step);
  Reader r{f, {}};
  return r.text("/metadata");
}

}  // namespace tg::io
