#pragma once
// A small RAII wrapper over the HDF5 C API for tapegrad's state files (checkpoints, golden cases,
// fixtures). Paths are HDF5 paths ("/model/self_attn/in_proj_weight" or "params/out_proj.weight";
// relative paths are from the root, repeated or trailing '/' are ignored). Every error throws
// std::runtime_error naming the file and the dataset or attribute involved, e.g.
// "ckpt.h5: cannot read dataset /model/w: no such dataset", and never crashes: a missing, truncated
// or corrupted file is reported, not read. HDF5's own error printing is switched off.
//
// Files written here use the HDF5 1.8 file format (readable by h5py, h5dump and HDF5 >= 1.8), with
// checksums on all metadata and on the data: small datasets (<= 16 KiB) are stored inside their
// checksummed object header, larger ones in chunks with the Fletcher32 filter, so a corrupted byte
// is reported on read instead of silently loading garbage. No timestamps are stored, so writing the
// same content produces the same bytes. Datasets and attributes written by h5py (any layout) read fine.
// One H5File may be used from one thread at a time; distinct H5File objects may be used concurrently.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/framework/tensor.h"

namespace tg::io {

class H5File {
 public:
  // read: existing file, read-only; truncate: create or overwrite; memory: a new file that lives in
  // memory only (filename is used in messages only: HDF5 gets a name that cannot exist, so it never opens
  // or reads a file there), whose bytes image() returns: the file system is never touched, so a writer
  // can do its own IO with the OS's error reasons (see io/checkpoint.h).
  enum class Mode { read, truncate, memory };
  // Opens or creates the file; throws "<file>: cannot open file for reading: no such file" etc.
  H5File(const std::string& filename, Mode mode);
  ~H5File();   // closes the file, ignoring errors (call close() to see them)
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;

  const std::string& filename() const { return filename_; }

  // ---- structure ----
  bool exists(const std::string& path) const;               // a group or dataset at path ("/" exists)
  bool is_group(const std::string& path) const;             // false when path does not exist
  std::vector<std::string> children(const std::string& group) const;   // member names, sorted by name
  void create_group(const std::string& path);              // creates missing parents too; no-op if present

  // ---- datasets ----
  // Writes t at path (creating parent groups; throws if path already exists). Float32 -> IEEE f32,
  // Float64 -> f64, Int64 -> i64, Bool -> uint8 (1 = true) with attribute is_bool = 1.
  // A 0-d tensor is a scalar dataspace; zero-size tensors are allowed.
  void write(const std::string& path, const Tensor& t);
  // Reads a dataset: float types of <= 4 bytes -> Float32, wider floats -> Float64; uint8 and HDF5
  // bool-like enums -> Bool (nonzero = true) unless the dataset has attribute is_bool = 0; every other
  // integer type -> Int64 (a uint64 value above INT64_MAX throws). Other types (strings, compounds) throw.
  Tensor read(const std::string& path) const;
  // Reads and checks before reading the data: throws
  // "<file>: dataset <path> has float32[2, 3], expected float64[3, 2]".
  Tensor read(const std::string& path, DType expected_dtype, const Shape& expected_shape) const;
  Shape dataset_shape(const std::string& path) const;

  // A scalar variable-length UTF-8 string dataset (h5py: f[path].asstr()[()]); a value containing a NUL
  // character throws. read_string also reads fixed-length string datasets.
  // StringStorage::fixed writes a fixed-length UTF-8 string of exactly the value's bytes (NUL-padded)
  // stored with the dataset or attribute itself (up to 16 KiB in the checksummed object header,
  // longer dataset values contiguous, unchecksummed by HDF5: checkpoints add their own digest);
  // variable-length strings live in the global heap, which has no checksum (and a damaged heap can
  // hang HDF5 1.10's reader). Readers given StringStorage::fixed refuse variable-length strings before reading them:
  // "... it is a variable-length string, expected a fixed-length one".
  enum class StringStorage { variable, fixed };
  void write_string(const std::string& path, const std::string& value, StringStorage storage = StringStorage::variable);
  std::string read_string(const std::string& path, StringStorage accept = StringStorage::variable) const;

  // ---- attributes (on a group or dataset, which must exist; path "/" is the root) ----
  // set_attr replaces an existing attribute of the same name. Strings are variable-length UTF-8,
  // integers int64, doubles IEEE f64.
  bool has_attr(const std::string& path, const std::string& name) const;
  void set_attr(const std::string& path, const std::string& name, const std::string& value,
                StringStorage storage = StringStorage::variable);
  void set_attr(const std::string& path, const std::string& name, const char* value) {
    set_attr(path, name, std::string(value));
  }
  void set_attr(const std::string& path, const std::string& name, int64_t value);
  void set_attr(const std::string& path, const std::string& name, int value) {
    set_attr(path, name, static_cast<int64_t>(value));
  }
  void set_attr(const std::string& path, const std::string& name, double value);
  // Readers accept a single value (scalar or one-element dataspace). attr_string reads variable- and
  // fixed-length strings; attr_int reads any integer width or a bool enum; attr_double reads any float
  // or integer type. A wrong type throws "... has type float64, expected an integer".
  std::string attr_string(const std::string& path, const std::string& name,
                          StringStorage accept = StringStorage::variable) const;
  int64_t attr_int(const std::string& path, const std::string& name) const;
  double attr_double(const std::string& path, const std::string& name) const;

  // Flushes buffered data to the operating system (H5Fflush) and, with sync, to disk (fsync).
  void flush(bool sync = false);
  // The bytes of the whole file as it would be on disk (flushes first). Any mode.
  std::vector<unsigned char> image();
  // Refuses anything that could make a reader touch other files or allocate more than the file
  // holds: throws "<file>: /p is an external link (...)", "... a soft link ...", "dataset /p has
  // external raw storage ...", "dataset /p is a virtual dataset ...", "dataset /p declares 2^62 bytes
  // but the file has 1234" (data larger than the file, possible only with compression, which
  // tapegrad never writes; pass allow_larger_than_file for h5py files with filters).
  void check_self_contained(bool allow_larger_than_file = false) const;

  // Closes the file and reports errors; afterwards every other call throws "<file>: file is closed".
  void close();

 private:
  int64_t fid() const;   // the open file's hid_t; throws when closed
  int64_t id_ = -1;   // hid_t
  std::string filename_;
};

}  // namespace tg::io
