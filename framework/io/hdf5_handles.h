#pragma once
// Internal to framework/io (includes <hdf5.h>, which only tapegrad_framework sees): RAII handles over
// hid_t, the error context that turns every HDF5 failure into std::runtime_error
// "<file>: <what>: <detail>", and path lookup helpers shared by the H5File implementation.
#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

namespace tg::io::detail {

// Owns one hid_t and closes it with the matching H5?close function, also during stack unwinding.
class Hid {
 public:
  using Closer = herr_t (*)(hid_t);
  Hid(hid_t id, Closer close) : id_(id), close_(close) {}
  Hid(Hid&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  Hid& operator=(Hid&&) = delete;
  ~Hid() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }

 private:
  hid_t id_;
  Closer close_;
};

// Switches off HDF5's automatic error printing for the calling thread (HDF5 keeps one setting per
// thread); every H5File entry point calls it.
void silence_hdf5();

// One operation that may fail: throws std::runtime_error "<file>: <what>: <detail>", where the detail
// is ours or the innermost message of HDF5's error stack ("truncated file: eof = ...").
struct Op {
  const std::string& file;
  std::string what;   // e.g. "cannot read dataset /model/w"

  [[noreturn]] void fail(const std::string& detail) const;
  [[noreturn]] void fail_hdf5() const;
  Hid own(hid_t id, Hid::Closer close) const {   // throws when id < 0
    if (id < 0) fail_hdf5();
    return Hid(id, close);
  }
  void ok(herr_t status) const {
    if (status < 0) fail_hdf5();
  }
  bool truth(htri_t answer) const {
    if (answer < 0) fail_hdf5();
    return answer > 0;
  }
};

std::string normalize(const std::string& path);             // "a//b/" -> "/a/b"; "" -> "/"
std::vector<std::string> prefixes(const std::string& p);    // "/a/b" -> {"/a", "/a/b"}; "/" -> {}
// "cannot <verb> attribute '<name>' of <p>"
std::string attr_what(const char* verb, const std::string& name, const std::string& p);

enum class Kind { missing, group, dataset, other };
// What the normalized path p names (missing also when a parent is missing or not a group).
Kind kind_of(hid_t file, const std::string& p, const Op& op);
// Open p, or throw "no such dataset" / "it is not a dataset", "no such group or dataset", "no such attribute".
Hid open_dataset(hid_t file, const std::string& p, const Op& op);
Hid open_object(hid_t file, const std::string& p, const Op& op);
Hid open_attr(hid_t obj, const std::string& name, const Op& op);
// A link- or attribute-creation property list with UTF-8 names (as h5py writes and reads them).
Hid utf8_plist(hid_t cls, const Op& op);
// A group keeps up to kMaxCompactLinks links in its object header (HDF5's compact storage, checksummed
// with the header) instead of moving past 8 of them into "dense" storage (a fractal heap and B-tree).
// libhdf5 1.10.8 can crash, rather than fail, when it reads a damaged dense group (its cleanup frees link
// records it never filled): a checkpoint's /optimizer/state has a group per parameter, so a flipped bit
// in a real checkpoint aborted the reader. compact_links sets it on a group (or file) creation list.
inline constexpr unsigned kMaxCompactLinks = 65535;
void compact_links(hid_t gcpl, const Op& op);

// Creates the groups along p (all but the last component unless include_last), without timestamps, their
// links compact; existing components must be groups ("/a/w is not a group").
void ensure_groups(hid_t file, const std::string& p, bool include_last, const Op& op);

std::string type_name(hid_t type);            // "float32", "uint8", "string", "enum", ...
void require_single(hid_t space, const Op& op);   // "it holds 3 values, expected one"
// Throws "it has type int64, expected <expected>".
[[noreturn]] void wrong_type(hid_t type, const char* expected, const Op& op);

}  // namespace tg::io::detail
