#include "tapegrad/framework/io/hdf5_file.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "framework/io/hdf5_handles.h"

namespace tg::io {

using namespace detail;

static_assert(std::is_same_v<hid_t, int64_t>, "H5File stores its hid_t as int64_t");
static_assert(sizeof(bool) == 1, "Bool tensors are written and read as one byte per element");

namespace {

constexpr size_t kCompactBytes = 16 * 1024;   // datasets up to this size live in their object header
constexpr size_t kChunkBytes = 1 << 20;        // target chunk size of larger datasets (= HDF5's chunk cache)

Hid create_dataset(hid_t file, const std::string& p, hid_t type, hid_t space, hid_t dcpl, const Op& op) {
  if (p == "/") op.fail("the root is a group");
  ensure_groups(file, p, false, op);
  if (op.truth(H5Lexists(file, p.c_str(), H5P_DEFAULT))) op.fail("it already exists");
  Hid lcpl = utf8_plist(H5P_LINK_CREATE, op);
  return op.own(H5Dcreate2(file, p.c_str(), type, space, lcpl.get(), dcpl, H5P_DEFAULT), H5Dclose);
}

Hid make_space(const Shape& shape, const Op& op) {
  if (shape.empty()) return op.own(H5Screate(H5S_SCALAR), H5Sclose);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return op.own(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

// Whole trailing dims while the chunk stays <= kChunkBytes, then as many rows of the next dim as fit.
std::vector<hsize_t> chunk_dims(const Shape& shape, size_t element_bytes) {
  std::vector<hsize_t> chunk(shape.size(), 1);
  size_t bytes = element_bytes;
  for (size_t d = shape.size(); d-- > 0;) {
    const auto n = static_cast<size_t>(shape[d]);
    if (bytes * n > kChunkBytes) {
      chunk[d] = std::max<size_t>(1, kChunkBytes / bytes);
      break;
    }
    chunk[d] = n;
    bytes *= n;
  }
  return chunk;
}

// Small data inside the (checksummed) object header, larger data in Fletcher32-checksummed chunks.
Hid make_dcpl(const Shape& shape, size_t element_bytes, const Op& op) {
  Hid dcpl = op.own(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  op.ok(H5Pset_obj_track_times(dcpl.get(), false));
  const auto bytes = static_cast<size_t>(numel(shape)) * element_bytes;
  if (bytes == 0) return dcpl;
  op.ok(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER));   // every element is written right away
  if (bytes <= kCompactBytes) {
    op.ok(H5Pset_layout(dcpl.get(), H5D_COMPACT));
    return dcpl;
  }
  const std::vector<hsize_t> chunk = chunk_dims(shape, element_bytes);
  op.ok(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()));
  op.ok(H5Pset_fletcher32(dcpl.get()));
  return dcpl;
}

hid_t file_type_of(DType d) {
  switch (d) {
    case DType::Float32: return H5T_IEEE_F32LE;
    case DType::Float64: return H5T_IEEE_F64LE;
    case DType::Int64: return H5T_STD_I64LE;
    case DType::Bool: return H5T_STD_U8LE;
  }
  return -1;
}

hid_t mem_type_of(DType d) {
  switch (d) {
    case DType::Float32: return H5T_NATIVE_FLOAT;
    case DType::Float64: return H5T_NATIVE_DOUBLE;
    case DType::Int64: return H5T_NATIVE_INT64;
    case DType::Bool: return H5T_NATIVE_UINT8;
  }
  return -1;
}

// h5py stores numpy bools as an enum {FALSE = 0, TRUE = 1} over int8.
bool is_bool_enum(hid_t type) {
  return H5Tget_class(type) == H5T_ENUM && H5Tget_size(type) == 1 && H5Tget_nmembers(type) == 2;
}

// Reads a one-element integer (any width or sign) or bool-enum attribute.
int64_t read_int_attr(hid_t attr, const Op& op) {
  Hid type = op.own(H5Aget_type(attr), H5Tclose);
  Hid space = op.own(H5Aget_space(attr), H5Sclose);
  require_single(space.get(), op);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_NONE && H5Tget_size(type.get()) >= 8) {
    uint64_t value = 0;
    op.ok(H5Aread(attr, H5T_NATIVE_UINT64, &value));
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      op.fail("value " + std::to_string(value) + " does not fit into int64");
    return static_cast<int64_t>(value);
  }
  if (cls == H5T_INTEGER) {
    int64_t value = 0;
    op.ok(H5Aread(attr, H5T_NATIVE_INT64, &value));
    return value;
  }
  if (cls != H5T_ENUM) wrong_type(type.get(), "an integer", op);
  // An enum value is stored as its base integer: read it raw, then convert the base type to int64.
  Hid native = op.own(H5Tget_native_type(type.get(), H5T_DIR_ASCEND), H5Tclose);
  Hid base = op.own(H5Tget_super(native.get()), H5Tclose);
  if (H5Tget_size(native.get()) > 8) wrong_type(type.get(), "an integer", op);
  alignas(8) unsigned char buffer[8] = {};
  op.ok(H5Aread(attr, native.get(), buffer));
  op.ok(H5Tconvert(base.get(), H5T_NATIVE_INT64, 1, buffer, nullptr, H5P_DEFAULT));
  int64_t value = 0;
  std::memcpy(&value, buffer, sizeof value);
  return value;
}

// Reads a one-element string (variable or fixed length) from a dataset or an attribute.
std::string read_string_value(hid_t obj, bool is_attr, const Op& op, bool fixed_only = false) {
  Hid type = op.own(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), H5Tclose);
  Hid space = op.own(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_STRING) wrong_type(type.get(), "a string", op);
  require_single(space.get(), op);
  auto read = [&](hid_t mem, void* buffer) {
    op.ok(is_attr ? H5Aread(obj, mem, buffer) : H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer));
  };
  if (op.truth(H5Tis_variable_str(type.get()))) {
    if (fixed_only) op.fail("it is a variable-length string, expected a fixed-length one");
    Hid mem = op.own(H5Tcopy(H5T_C_S1), H5Tclose);
    op.ok(H5Tset_size(mem.get(), H5T_VARIABLE));
    op.ok(H5Tset_cset(mem.get(), H5Tget_cset(type.get())));
    char* value = nullptr;
    read(mem.get(), &value);
    std::string out;
    try {
      out = value ? value : "";
    } catch (...) {
      H5free_memory(value);
      throw;
    }
    op.ok(H5free_memory(value));   // HDF5 allocated the one string it read
    return out;
  }
  std::string out(H5Tget_size(type.get()), '\0');
  read(type.get(), out.data());
  if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD) {
    out.erase(out.find_last_not_of(' ') + 1);
  } else {
    out.resize(std::strlen(out.c_str()));
  }
  return out;
}

void write_attr(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type, const void* value,
                const Op& op) {
  if (op.truth(H5Aexists(obj, name.c_str()))) op.ok(H5Adelete(obj, name.c_str()));
  Hid space = op.own(H5Screate(H5S_SCALAR), H5Sclose);
  Hid acpl = utf8_plist(H5P_ATTRIBUTE_CREATE, op);
  Hid attr = op.own(H5Acreate2(obj, name.c_str(), file_type, space.get(), acpl.get(), H5P_DEFAULT), H5Aclose);
  op.ok(H5Awrite(attr.get(), mem_type, value));
}

Hid vlen_utf8(const Op& op) {
  Hid type = op.own(H5Tcopy(H5T_C_S1), H5Tclose);
  op.ok(H5Tset_size(type.get(), H5T_VARIABLE));
  op.ok(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  return type;
}

// A fixed-length UTF-8 string type of exactly `size` bytes (at least 1), NUL-padded, no terminator.
Hid fixed_utf8(size_t size, const Op& op) {
  Hid type = op.own(H5Tcopy(H5T_C_S1), H5Tclose);
  op.ok(H5Tset_size(type.get(), std::max<size_t>(size, 1)));
  op.ok(H5Tset_strpad(type.get(), H5T_STR_NULLPAD));
  op.ok(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  return type;
}

Shape read_shape(hid_t dset, const Op& op) {
  Hid space = op.own(H5Dget_space(dset), H5Sclose);
  const H5S_class_t cls = H5Sget_simple_extent_type(space.get());
  if (cls == H5S_SCALAR) return {};
  if (cls == H5S_NULL) op.fail("it has an empty (null) dataspace");
  if (cls != H5S_SIMPLE) op.fail_hdf5();
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) op.fail_hdf5();
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) op.fail_hdf5();
  Shape shape;
  uint64_t elements = 1;   // checked here, before any allocation: (2^31, 2^31) must not wrap around
  for (hsize_t d : dims) {
    if (d > static_cast<hsize_t>(std::numeric_limits<int64_t>::max())) op.fail("a dimension is too large");
    if (d != 0 && elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 8) / d)
      op.fail("its " + std::to_string(rank) + "-d shape has too many elements");
    elements *= d;
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

// The tensor dtype a dataset reads as (see the header).
DType dtype_of_dataset(hid_t dset, hid_t type, const Op& op) {
  const size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT: return size <= 4 ? DType::Float32 : DType::Float64;
    case H5T_INTEGER:
      if (size == 1 && H5Tget_sign(type) == H5T_SGN_NONE) {
        if (!op.truth(H5Aexists(dset, "is_bool"))) return DType::Bool;
        Hid flag = op.own(H5Aopen(dset, "is_bool", H5P_DEFAULT), H5Aclose);
        return read_int_attr(flag.get(), op) != 0 ? DType::Bool : DType::Int64;
      }
      return DType::Int64;
    default:
      if (is_bool_enum(type)) return DType::Bool;
      op.fail("it has type " + type_name(type) + ", which is not a tensor type");
  }
}

struct OverflowFlag {
  bool hit = false;
};

H5T_conv_ret_t abort_on_overflow(H5T_conv_except_t except, hid_t, hid_t, void*, void*, void* flag) {
  if (except != H5T_CONV_EXCEPT_RANGE_HI && except != H5T_CONV_EXCEPT_RANGE_LOW) return H5T_CONV_UNHANDLED;
  static_cast<OverflowFlag*>(flag)->hit = true;
  return H5T_CONV_ABORT;
}

Tensor read_data(hid_t dset, hid_t file_type, DType dtype, const Shape& shape, const Op& op) {
  Tensor out;
  try {
    out = Tensor(shape, dtype);
  } catch (const std::exception& e) {
    op.fail(std::string("cannot allocate ") + to_string(dtype) + to_string(shape) + ": " + e.what());
  }
  if (out.numel() == 0) return out;   // HDF5 rejects a null buffer even for zero elements
  const bool is_enum = H5Tget_class(file_type) == H5T_ENUM;
  Hid mem = op.own(H5Tcopy(is_enum ? file_type : mem_type_of(dtype)), H5Tclose);
  Hid dxpl = op.own(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  OverflowFlag overflow;
  op.ok(H5Pset_type_conv_cb(dxpl.get(), abort_on_overflow, &overflow));
  if (H5Dread(dset, mem.get(), H5S_ALL, H5S_ALL, dxpl.get(), out.raw()) < 0) {
    if (overflow.hit) op.fail("a value does not fit into " + to_string(dtype));
    op.fail_hdf5();
  }
  if (dtype == DType::Bool) {   // any nonzero byte means true; a bool must hold exactly 0 or 1
    auto* bytes = static_cast<unsigned char*>(out.raw());
    for (int64_t i = 0; i < out.numel(); ++i) bytes[i] = bytes[i] != 0;
  }
  return out;
}

struct NameList {
  std::vector<std::string> names;
  bool failed = false;
};

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  auto* list = static_cast<NameList*>(out);
  try {
    list->names.emplace_back(name);
    return 0;
  } catch (...) {   // never unwind through HDF5's C frames
    list->failed = true;
    return -1;
  }
}

// The name HDF5 gets for a Mode::memory file: a path that cannot exist ("/dev/null" is no folder) and is
// unique in the process (HDF5 takes two open in-memory files of one name for the same file). With the
// file's own name, H5Fcreate's first, tentative open (without H5F_ACC_TRUNC, to compare with the files
// already open) made the core driver read the whole previous checkpoint into memory at every save.
std::string memory_file_name() {
  static std::atomic<unsigned long long> count{0};
  return "/dev/null/tapegrad-memory-file-" + std::to_string(count++);
}

}  // namespace

H5File::H5File(const std::string& filename, Mode mode) : filename_(filename) {
  silence_hdf5();
  const Op op{filename_, mode == Mode::read ? "cannot open file for reading" : "cannot create file"};
  Hid fapl = op.own(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  op.ok(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG));
#if H5_VERSION_GE(1, 10, 7)
  if (mode != Mode::memory) op.ok(H5Pset_file_locking(fapl.get(), true, true));   // lock, but work on file systems without locks
#endif
  if (mode == Mode::memory) {
    // The core driver without a backing store: the file lives in memory until image() copies it out.
    op.ok(H5Pset_fapl_core(fapl.get(), 1 << 20, false));
  }
  if (mode == Mode::read) {
    std::error_code ec;
    if (!std::filesystem::exists(filename, ec)) op.fail("no such file");
    if (std::filesystem::is_directory(filename, ec)) op.fail("it is a directory");
    // A FIFO or a device would block or stream forever inside HDF5's open.
    if (!std::filesystem::is_regular_file(filename, ec)) op.fail("not a regular file");
    id_ = H5Fopen(filename.c_str(), H5F_ACC_RDONLY, fapl.get());
  } else {
    // The 1.8 format: checksummed superblock and object headers, but no 1.10 "file open for write"
    // flag, which would make a file left behind by a killed writer unreadable without h5clear.
    op.ok(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18));
    Hid fcpl = op.own(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
    op.ok(H5Pset_obj_track_times(fcpl.get(), false));   // the root group's timestamps
    compact_links(fcpl.get(), op);                       // the root group's links (hdf5_handles.h)
    const std::string name = mode == Mode::memory ? memory_file_name() : filename;
    id_ = H5Fcreate(name.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  }
  if (id_ < 0) op.fail_hdf5();
}

H5File::~H5File() {
  if (id_ >= 0) {
    H5Fclose(id_);
    H5Eclear2(H5E_DEFAULT);
  }
}

void H5File::close() {
  if (id_ < 0) return;
  silence_hdf5();
  const hid_t file = std::exchange(id_, -1);
  if (H5Fclose(file) < 0) Op{filename_, "cannot close file"}.fail_hdf5();
}

int64_t H5File::fid() const {
  silence_hdf5();
  if (id_ < 0) throw std::runtime_error(filename_ + ": file is closed");
  return id_;
}

bool H5File::exists(const std::string& path) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  return kind_of(file, p, Op{filename_, "cannot look up " + p}) != Kind::missing;
}

bool H5File::is_group(const std::string& path) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  return kind_of(file, p, Op{filename_, "cannot look up " + p}) == Kind::group;
}

std::vector<std::string> H5File::children(const std::string& group) const {
  const hid_t file = fid();
  const std::string p = normalize(group);
  const Op op{filename_, "cannot list group " + p};
  const Kind kind = kind_of(file, p, op);
  if (kind == Kind::missing) op.fail("no such group");
  if (kind != Kind::group) op.fail("it is not a group");
  Hid g = op.own(H5Gopen2(file, p.c_str(), H5P_DEFAULT), H5Gclose);
  NameList list;
  if (H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name, &list) < 0) {
    if (list.failed) op.fail("out of memory");
    op.fail_hdf5();
  }
  std::sort(list.names.begin(), list.names.end());
  return list.names;
}

void H5File::create_group(const std::string& path) {
  const hid_t file = fid();
  const std::string p = normalize(path);
  ensure_groups(file, p, true, Op{filename_, "cannot create group " + p});
}

void H5File::write(const std::string& path, const Tensor& t) {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, "cannot write dataset " + p};
  if (!t.defined()) op.fail("the tensor is undefined");
  Hid space = make_space(t.shape(), op);
  Hid dcpl = make_dcpl(t.shape(), static_cast<size_t>(element_size(t.dtype())), op);
  Hid dset = create_dataset(file, p, file_type_of(t.dtype()), space.get(), dcpl.get(), op);
  if (t.numel() > 0)
    op.ok(H5Dwrite(dset.get(), mem_type_of(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()));
  if (t.dtype() == DType::Bool) {
    const int64_t one = 1;
    write_attr(dset.get(), "is_bool", H5T_STD_I64LE, H5T_NATIVE_INT64, &one, op);
  }
}

Tensor H5File::read(const std::string& path) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, "cannot read dataset " + p};
  Hid dset = open_dataset(file, p, op);
  Hid type = op.own(H5Dget_type(dset.get()), H5Tclose);
  const DType dtype = dtype_of_dataset(dset.get(), type.get(), op);
  return read_data(dset.get(), type.get(), dtype, read_shape(dset.get(), op), op);
}

Tensor H5File::read(const std::string& path, DType expected_dtype, const Shape& expected_shape) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, "cannot read dataset " + p};
  Hid dset = open_dataset(file, p, op);
  Hid type = op.own(H5Dget_type(dset.get()), H5Tclose);
  const DType dtype = dtype_of_dataset(dset.get(), type.get(), op);
  const Shape shape = read_shape(dset.get(), op);
  if (dtype != expected_dtype || shape != expected_shape)
    throw std::runtime_error(filename_ + ": dataset " + p + " has " + to_string(dtype) + to_string(shape) +
                             ", expected " + to_string(expected_dtype) + to_string(expected_shape));
  return read_data(dset.get(), type.get(), dtype, shape, op);
}

Shape H5File::dataset_shape(const std::string& path) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, "cannot read dataset " + p};
  Hid dset = open_dataset(file, p, op);
  return read_shape(dset.get(), op);
}

void H5File::write_string(const std::string& path, const std::string& value, StringStorage storage) {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, "cannot write string " + p};
  if (value.find('\0') != std::string::npos) op.fail("the value contains a NUL character");
  if (storage == StringStorage::fixed) {
    Hid type = fixed_utf8(value.size(), op);
    Hid space = op.own(H5Screate(H5S_SCALAR), H5Sclose);
    // In the checksummed object header up to 16 KiB; longer ones contiguous (a scalar cannot be chunked).
    Hid dcpl = op.own(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    op.ok(H5Pset_obj_track_times(dcpl.get(), false));
    if (value.size() <= kCompactBytes) op.ok(H5Pset_layout(dcpl.get(), H5D_COMPACT));
    Hid dset = create_dataset(file, p, type.get(), space.get(), dcpl.get(), op);
    const std::string padded = value.empty() ? std::string(1, '\0') : value;
    op.ok(H5Dwrite(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, padded.data()));
    return;
  }
  Hid type = vlen_utf8(op);
  Hid space = op.own(H5Screate(H5S_SCALAR), H5Sclose);
  Hid dcpl = op.own(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);   // the heap reference in the object header
  op.ok(H5Pset_obj_track_times(dcpl.get(), false));
  op.ok(H5Pset_layout(dcpl.get(), H5D_COMPACT));
  Hid dset = create_dataset(file, p, type.get(), space.get(), dcpl.get(), op);
  const char* text = value.c_str();
  op.ok(H5Dwrite(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &text));
}

std::string H5File::read_string(const std::string& path, StringStorage accept) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, "cannot read string " + p};
  Hid dset = open_dataset(file, p, op);
  return read_string_value(dset.get(), false, op, accept == StringStorage::fixed);
}

bool H5File::has_attr(const std::string& path, const std::string& name) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, attr_what("look up", name, p)};
  Hid obj = open_object(file, p, op);
  return op.truth(H5Aexists(obj.get(), name.c_str()));
}

void H5File::set_attr(const std::string& path, const std::string& name, const std::string& value, StringStorage storage) {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, attr_what("write", name, p)};
  if (value.find('\0') != std::string::npos) op.fail("the value contains a NUL character");
  Hid obj = open_object(file, p, op);
  if (storage == StringStorage::fixed) {
    Hid type = fixed_utf8(value.size(), op);
    const std::string padded = value.empty() ? std::string(1, '\0') : value;
    write_attr(obj.get(), name, type.get(), type.get(), padded.data(), op);
    return;
  }
  Hid type = vlen_utf8(op);
  const char* text = value.c_str();
  write_attr(obj.get(), name, type.get(), type.get(), &text, op);
}

void H5File::set_attr(const std::string& path, const std::string& name, int64_t value) {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, attr_what("write", name, p)};
  Hid obj = open_object(file, p, op);
  write_attr(obj.get(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, op);
}

void H5File::set_attr(const std::string& path, const std::string& name, double value) {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, attr_what("write", name, p)};
  Hid obj = open_object(file, p, op);
  write_attr(obj.get(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, op);
}

std::string H5File::attr_string(const std::string& path, const std::string& name, StringStorage accept) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, attr_what("read", name, p)};
  Hid obj = open_object(file, p, op);
  Hid attr = open_attr(obj.get(), name, op);
  return read_string_value(attr.get(), true, op, accept == StringStorage::fixed);
}

int64_t H5File::attr_int(const std::string& path, const std::string& name) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, attr_what("read", name, p)};
  Hid obj = open_object(file, p, op);
  Hid attr = open_attr(obj.get(), name, op);
  return read_int_attr(attr.get(), op);
}

double H5File::attr_double(const std::string& path, const std::string& name) const {
  const hid_t file = fid();
  const std::string p = normalize(path);
  const Op op{filename_, attr_what("read", name, p)};
  Hid obj = open_object(file, p, op);
  Hid attr = open_attr(obj.get(), name, op);
  Hid type = op.own(H5Aget_type(attr.get()), H5Tclose);
  Hid space = op.own(H5Aget_space(attr.get()), H5Sclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) wrong_type(type.get(), "a number", op);
  require_single(space.get(), op);
  double value = 0;
  op.ok(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value));
  return value;
}

void H5File::flush(bool sync) {
  const hid_t file = fid();
  const Op op{filename_, "cannot flush file"};
  op.ok(H5Fflush(file, H5F_SCOPE_GLOBAL));
  if (!sync) return;
  Hid fapl = op.own(H5Fget_access_plist(file), H5Pclose);
  if (H5Pget_driver(fapl.get()) != H5FD_SEC2) op.fail("fsync needs HDF5's default (sec2) file driver");
  void* handle = nullptr;
  op.ok(H5Fget_vfd_handle(file, fapl.get(), &handle));
  if (handle == nullptr) op.fail("no file descriptor");
  if (::fsync(*static_cast<int*>(handle)) != 0) op.fail(std::string("fsync failed: ") + std::strerror(errno));
}

}  // namespace tg::io
