// H5File::image and H5File::check_self_contained: what a checkpoint writer and reader need beyond
// plain reads and writes (kept apart from hdf5_file.cpp, which is about datasets and attributes).
#include <hdf5.h>

#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "framework/io/hdf5_handles.h"
#include "tapegrad/framework/io/hdf5_file.h"

namespace tg::io {

using namespace detail;

namespace {

struct Walk {
  const std::string& file;
  uint64_t file_bytes;
  bool allow_larger;
  std::string error;   // set by the callback (HDF5's C frames are never unwound through)
};

// Logical size of a dataset in bytes, or UINT64_MAX when it does not fit into 63 bits.
uint64_t dataset_bytes(hid_t dset, const Op& op) {
  Hid space = op.own(H5Dget_space(dset), H5Sclose);
  Hid type = op.own(H5Dget_type(dset), H5Tclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) op.fail_hdf5();
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) op.fail_hdf5();
  uint64_t bytes = H5Tget_size(type.get());
  const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (hsize_t d : dims) {
    if (d != 0 && bytes > limit / d) return std::numeric_limits<uint64_t>::max();
    bytes *= d;
  }
  return bytes;
}

void check_dataset(hid_t dset, const std::string& p, const Walk& walk) {
  const Op op{walk.file, "dataset " + p};
  Hid dcpl = op.own(H5Dget_create_plist(dset), H5Pclose);
  const int external = H5Pget_external_count(dcpl.get());
  if (external < 0) op.fail_hdf5();
  if (external > 0) op.fail("it has external raw storage (data kept in another file), which a checkpoint may not use");
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout < 0) op.fail_hdf5();
  if (layout == H5D_VIRTUAL) op.fail("it is a virtual dataset (data mapped from other files), which a checkpoint may not use");
  const uint64_t bytes = dataset_bytes(dset, op);
  if (bytes == std::numeric_limits<uint64_t>::max()) op.fail("its shape has too many elements (the size overflows)");
  if (!walk.allow_larger && bytes > walk.file_bytes)
    op.fail("it declares " + std::to_string(bytes) + " bytes of data but the whole file has " +
            std::to_string(walk.file_bytes));
}

herr_t visit_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
  auto* walk = static_cast<Walk*>(data);
  std::string p(1, '/');
  p.append(name);
  try {
    if (info->type == H5L_TYPE_SOFT) throw std::runtime_error(walk->file + ": " + p + " is a soft link, which a checkpoint may not use");
    if (info->type != H5L_TYPE_HARD)
      throw std::runtime_error(walk->file + ": " + p + " is an external or user-defined link (to another file), which a checkpoint may not use");
    const Op op{walk->file, "cannot open " + p};
    Hid obj = op.own(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
    const H5I_type_t type = H5Iget_type(obj.get());
    if (type == H5I_DATASET) check_dataset(obj.get(), p, *walk);
    else if (type != H5I_GROUP) op.fail("it is neither a group nor a dataset");
    return 0;
  } catch (const std::exception& e) {
    walk->error = e.what();
    return -1;
  }
}

uint32_t rot(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

// Bob Jenkins' lookup3 hashlittle with initval 0: HDF5's metadata checksum.
uint32_t lookup3(const unsigned char* k, size_t length) {
  uint32_t a, b, c;
  a = b = c = 0xdeadbeef + static_cast<uint32_t>(length);
  auto word = [](const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); };
  for (; length > 12; length -= 12, k += 12) {
    a += word(k), b += word(k + 4), c += word(k + 8);
    a -= c, a ^= rot(c, 4), c += b, b -= a, b ^= rot(a, 6), a += c, c -= b, c ^= rot(b, 8), b += a;
    a -= c, a ^= rot(c, 16), c += b, b -= a, b ^= rot(a, 19), a += c, c -= b, c ^= rot(b, 4), b += a;
  }
  if (length == 0) return c;
  unsigned char tail[12] = {};
  std::memcpy(tail, k, length);
  a += word(tail), b += word(tail + 4), c += word(tail + 8);
  c ^= b, c -= rot(b, 14), a ^= c, a -= rot(c, 11), b ^= a, b -= rot(a, 25);
  c ^= b, c -= rot(b, 16), a ^= c, a -= rot(c, 4), b ^= a, b -= rot(a, 14);
  c ^= b, c -= rot(b, 24);
  return c;
}

// HDF5 1.10's H5Fget_file_image clears the "open for writing" flags of a version 2/3 superblock in
// the copy but leaves the checksum computed with them set, so the image would not open; recompute it.
void fix_superblock_checksum(std::vector<unsigned char>& image, const Op& op) {
  if (image.size() < 12 || (image[8] != 2 && image[8] != 3)) return;
  const size_t n = 12 + 4 * static_cast<size_t>(image[9]);   // signature..root header address
  if (image.size() < n + 4) op.fail("the image is shorter than its superblock");
  const uint32_t sum = lookup3(image.data(), n);
  for (int i = 0; i < 4; ++i) image[n + i] = static_cast<unsigned char>(sum >> (8 * i));
}

}  // namespace

std::vector<unsigned char> H5File::image() {
  const hid_t file = fid();
  const Op op{filename_, "cannot take the file image"};
  op.ok(H5Fflush(file, H5F_SCOPE_GLOBAL));
  const ssize_t size = H5Fget_file_image(file, nullptr, 0);
  if (size < 0) op.fail_hdf5();
  std::vector<unsigned char> out(static_cast<size_t>(size));
  if (size > 0 && H5Fget_file_image(file, out.data(), out.size()) != size) op.fail_hdf5();
  fix_superblock_checksum(out, op);
  return out;
}

void H5File::check_self_contained(bool allow_larger_than_file) const {
  const hid_t file = fid();
  const Op op{filename_, "cannot check the file's structure"};
  hsize_t size = 0;
  op.ok(H5Fget_filesize(file, &size));
  Walk walk{filename_, size, allow_larger_than_file, {}};
  Hid root = op.own(H5Gopen2(file, "/", H5P_DEFAULT), H5Gclose);
  if (H5Lvisit(root.get(), H5_INDEX_NAME, H5_ITER_INC, visit_link, &walk) < 0) {
    if (!walk.error.empty()) {
      H5Eclear2(H5E_DEFAULT);
      throw std::runtime_error(walk.error);
    }
    op.fail_hdf5();
  }
}

}  // namespace tg::io
