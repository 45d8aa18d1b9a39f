#include "framework/io/hdf5_handles.h"

#include <cstring>
#include <stdexcept>

namespace tg::io::detail {

namespace {

// Walking downward, the last entry is the innermost, most specific one ("truncated file: eof = ...").
herr_t keep_innermost(unsigned, const H5E_error2_t* err, void* out) {
  if (err->desc && *err->desc) {
    std::strncpy(static_cast<char*>(out), err->desc, 511);
    static_cast<char*>(out)[511] = '\0';
  }
  return 0;
}

std::string hdf5_detail() {
  char detail[512] = "";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, keep_innermost, detail);
  H5Eclear2(H5E_DEFAULT);
  return *detail ? std::string(detail) : std::string("unknown HDF5 error");
}

}  // namespace

void silence_hdf5() {
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

void Op::fail(const std::string& detail) const {
  H5Eclear2(H5E_DEFAULT);
  throw std::runtime_error(file + ": " + what + ": " + detail);
}

void Op::fail_hdf5() const { fail(hdf5_detail()); }

// "a//b/" -> "/a/b"; "" -> "/".
std::string normalize(const std::string& path) {
  std::string out = "/";
  for (char c : path)
    if (c != '/' || out.back() != '/') out += c;
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// "/a/b/c" -> {"/a", "/a/b", "/a/b/c"}; "/" -> {}.
std::vector<std::string> prefixes(const std::string& p) {
  std::vector<std::string> out;
  for (size_t i = 1; i <= p.size(); ++i)
    if (i == p.size() || p[i] == '/') out.push_back(p.substr(0, i));
  if (p == "/") out.clear();
  return out;
}

std::string attr_what(const char* verb, const std::string& name, const std::string& p) {
  return std::string("cannot ") + verb + " attribute '" + name + "' of " + p;
}

// What p names, walking it one link at a time: H5Lexists fails (instead of answering false) when a
// parent is missing, and a dangling soft link exists as a link but not as an object.
Kind kind_of(hid_t file, const std::string& p, const Op& op) {
  if (p == "/") return Kind::group;
  const std::vector<std::string> pre = prefixes(p);
  for (size_t i = 0; i < pre.size(); ++i) {
    const char* name = pre[i].c_str();
    if (!op.truth(H5Lexists(file, name, H5P_DEFAULT))) return Kind::missing;
    if (!op.truth(H5Oexists_by_name(file, name, H5P_DEFAULT))) return Kind::missing;
    Hid obj = op.own(H5Oopen(file, name, H5P_DEFAULT), H5Oclose);
    const H5I_type_t type = H5Iget_type(obj.get());
    if (i + 1 < pre.size() && type != H5I_GROUP) return Kind::missing;
    if (i + 1 < pre.size()) continue;
    return type == H5I_GROUP ? Kind::group : type == H5I_DATASET ? Kind::dataset : Kind::other;
  }
  return Kind::missing;
}

Hid open_dataset(hid_t file, const std::string& p, const Op& op) {
  const Kind kind = kind_of(file, p, op);
  if (kind == Kind::missing) op.fail("no such dataset");
  if (kind != Kind::dataset) op.fail("it is not a dataset");
  return op.own(H5Dopen2(file, p.c_str(), H5P_DEFAULT), H5Dclose);
}

Hid open_object(hid_t file, const std::string& p, const Op& op) {
  if (kind_of(file, p, op) == Kind::missing) op.fail("no such group or dataset");
  return op.own(H5Oopen(file, p.c_str(), H5P_DEFAULT), H5Oclose);
}

Hid open_attr(hid_t obj, const std::string& name, const Op& op) {
  if (!op.truth(H5Aexists(obj, name.c_str()))) op.fail("no such attribute");
  return op.own(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
}

// Link and attribute names are UTF-8 (as h5py writes and reads them).
Hid utf8_plist(hid_t cls, const Op& op) {
  Hid plist = op.own(H5Pcreate(cls), H5Pclose);
  op.ok(H5Pset_char_encoding(plist.get(), H5T_CSET_UTF8));
  return plist;
}

void compact_links(hid_t gcpl, const Op& op) {
  op.ok(H5Pset_link_phase_change(gcpl, kMaxCompactLinks, kMaxCompactLinks));
}

// Creates the groups along p (all but the last component unless include_last); existing ones must be groups.
// No timestamps, so that identical content gives identical files.
void ensure_groups(hid_t file, const std::string& p, bool include_last, const Op& op) {
  const std::vector<std::string> pre = prefixes(p);
  const size_t count = include_last ? pre.size() : pre.size() - 1;
  Hid gcpl = op.own(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  op.ok(H5Pset_obj_track_times(gcpl.get(), false));
  compact_links(gcpl.get(), op);
  Hid lcpl = utf8_plist(H5P_LINK_CREATE, op);
  for (size_t i = 0; i < count; ++i) {
    const char* name = pre[i].c_str();
    if (!op.truth(H5Lexists(file, name, H5P_DEFAULT))) {
      op.own(H5Gcreate2(file, name, lcpl.get(), gcpl.get(), H5P_DEFAULT), H5Gclose);
      continue;
    }
    Hid obj = op.own(H5Oopen(file, name, H5P_DEFAULT), H5Oclose);
    if (H5Iget_type(obj.get()) != H5I_GROUP) op.fail(pre[i] + " is not a group");
  }
}

std::string type_name(hid_t type) {
  const std::string bits = std::to_string(8 * H5Tget_size(type));
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + bits;
    case H5T_FLOAT: return "float" + bits;
    case H5T_STRING: return "string";
    case H5T_ENUM: return "enum";
    case H5T_COMPOUND: return "compound";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "vlen";
    default: return "an unsupported HDF5 type";
  }
}

// The value of an attribute holding one number or one string must be a single element.
void require_single(hid_t space, const Op& op) {
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 0) op.fail_hdf5();
  if (n != 1) op.fail("it holds " + std::to_string(n) + " values, expected one");
}

void wrong_type(hid_t type, const char* expected, const Op& op) {
  op.fail("it has type " + type_name(type) + ", expected " + expected);
}

}  // namespace tg::io::detail
