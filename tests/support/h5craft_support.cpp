#include "support/h5craft_support.h"

#include <hdf5.h>

#include <algorithm>
#include <stdexcept>

namespace tg::test {
namespace {

void ok(herr_t status, const std::string& what) {
  if (status < 0) throw std::runtime_error("h5craft: " + what + " failed");
}

hid_t check(hid_t id, const std::string& what) {
  if (id < 0) throw std::runtime_error("h5craft: " + what + " failed");
  return id;
}

// Opens file read-write, runs f(fid), closes.
template <class F> void edit(const std::string& file, F&& f) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t fid = check(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "open " + file);
  try {
    f(fid);
  } catch (...) {
    H5Fclose(fid);
    throw;
  }
  ok(H5Fclose(fid), "close " + file);
}

hid_t type_of(CraftType t) {
  switch (t) {
    case CraftType::f32: return H5Tcopy(H5T_IEEE_F32LE);
    case CraftType::f64: return H5Tcopy(H5T_IEEE_F64LE);
    case CraftType::i32: return H5Tcopy(H5T_STD_I32LE);
    case CraftType::i64: return H5Tcopy(H5T_STD_I64LE);
    case CraftType::u8: return H5Tcopy(H5T_STD_U8LE);
    case CraftType::string: {
      hid_t s = H5Tcopy(H5T_C_S1);
      H5Tset_size(s, 8);
      return s;
    }
  }
  return -1;
}

// Reads the digest attribute of dset (0 when absent), then unlinks it.
int64_t take(hid_t fid, const std::string& dset) {
  int64_t digest = 0;
  if (H5Lexists(fid, dset.c_str(), H5P_DEFAULT) > 0 && H5Aexists_by_name(fid, dset.c_str(), "digest", H5P_DEFAULT) > 0) {
    hid_t a = check(H5Aopen_by_name(fid, dset.c_str(), "digest", H5P_DEFAULT, H5P_DEFAULT), "open digest");
    H5Aread(a, H5T_NATIVE_INT64, &digest);
    H5Aclose(a);
  }
  if (H5Lexists(fid, dset.c_str(), H5P_DEFAULT) > 0) ok(H5Ldelete(fid, dset.c_str(), H5P_DEFAULT), "delete " + dset);
  return digest;
}

void put_digest(hid_t obj, int64_t digest) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = check(H5Acreate2(obj, "digest", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), "digest attr");
  H5Awrite(a, H5T_NATIVE_INT64, &digest);
  H5Aclose(a);
  H5Sclose(space);
}

// Creates dset with dcpl and the kept digest, writing `data` when given.
void create(hid_t fid, const std::string& dset, hid_t type, const std::vector<uint64_t>& dims, hid_t dcpl, int64_t digest,
            const void* data) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t id = check(H5Dcreate2(fid, dset.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT), "create " + dset);
  if (data) H5Dwrite(id, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  put_digest(id, digest);
  H5Dclose(id);
  H5Pclose(lcpl);
  H5Sclose(space);
}

herr_t collect(hid_t, const char* name, const H5O_info_t* info, void* out) {
  if (info->type == H5O_TYPE_DATASET) {
    std::string p(1, '/');
    p.append(name);
    static_cast<std::vector<std::string>*>(out)->push_back(p);
  }
  return 0;
}

}  // namespace

void craft_replace_dataset(const std::string& file, const std::string& dset, CraftType t, const std::vector<uint64_t>& dims,
                           bool huge) {
  edit(file, [&](hid_t fid) {
    const int64_t digest = take(fid, dset);
    hid_t type = type_of(t);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    uint64_t n = 1;
    for (uint64_t d : dims) n *= huge ? 1 : d;
    std::vector<unsigned char> data(huge ? 0 : n * H5Tget_size(type), 0x41);
    if (huge) {
      std::vector<hsize_t> chunk(dims.size(), 1);
      ok(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), "chunk");
    }
    create(fid, dset, type, dims, dcpl, digest, huge || data.empty() ? nullptr : data.data());
    H5Pclose(dcpl);
    H5Tclose(type);
  });
}

void craft_external_storage(const std::string& file, const std::string& dset, const std::string& external_file, uint64_t n) {
  edit(file, [&](hid_t fid) {
    const int64_t digest = take(fid, dset);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    ok(H5Pset_external(dcpl, external_file.c_str(), 0, n * 4), "external");
    create(fid, dset, H5T_IEEE_F32LE, {n}, dcpl, digest, nullptr);
    H5Pclose(dcpl);
  });
}

void craft_virtual(const std::string& file, const std::string& dset, const std::string& source_file,
                   const std::string& source_dset, uint64_t n) {
  edit(file, [&](hid_t fid) {
    const int64_t digest = take(fid, dset);
    hsize_t dims[1] = {n};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    ok(H5Pset_virtual(dcpl, space, source_file.c_str(), source_dset.c_str(), space), "virtual");
    create(fid, dset, H5T_IEEE_F32LE, {n}, dcpl, digest, nullptr);
    H5Pclose(dcpl);
    H5Sclose(space);
  });
}

void craft_soft_link(const std::string& file, const std::string& link, const std::string& target) {
  edit(file, [&](hid_t fid) {
    take(fid, link);
    ok(H5Lcreate_soft(target.c_str(), fid, link.c_str(), H5P_DEFAULT, H5P_DEFAULT), "soft link");
  });
}

void craft_external_link(const std::string& file, const std::string& link, const std::string& other_file,
                         const std::string& object) {
  edit(file, [&](hid_t fid) {
    take(fid, link);
    ok(H5Lcreate_external(other_file.c_str(), object.c_str(), fid, link.c_str(), H5P_DEFAULT, H5P_DEFAULT), "external link");
  });
}

void craft_delete(const std::string& file, const std::string& link) {
  edit(file, [&](hid_t fid) { ok(H5Ldelete(fid, link.c_str(), H5P_DEFAULT), "delete " + link); });
}

void craft_string(const std::string& file, const std::string& dset, const std::string& value, bool variable) {
  edit(file, [&](hid_t fid) {
    const int64_t digest = take(fid, dset);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, variable ? H5T_VARIABLE : std::max<size_t>(1, value.size()));
    if (!variable) H5Tset_strpad(type, H5T_STR_NULLPAD);
    H5Tset_cset(type, H5T_CSET_UTF8);
    const char* text = value.c_str();
    create(fid, dset, type, {}, H5P_DEFAULT, digest, variable ? static_cast<const void*>(&text) : value.data());
    H5Tclose(type);
  });
}

void craft_int_attr(const std::string& file, const std::string& object, const std::string& name, int64_t value) {
  edit(file, [&](hid_t fid) {
    if (H5Aexists_by_name(fid, object.c_str(), name.c_str(), H5P_DEFAULT) > 0)
      ok(H5Adelete_by_name(fid, object.c_str(), name.c_str(), H5P_DEFAULT), "delete attr");
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = check(H5Acreate_by_name(fid, object.c_str(), name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                                      H5P_DEFAULT), "attr " + name);
    H5Awrite(a, H5T_NATIVE_INT64, &value);
    H5Aclose(a);
    H5Sclose(space);
  });
}

void craft_string_attr(const std::string& file, const std::string& object, const std::string& name, const std::string& value) {
  edit(file, [&](hid_t fid) {
    if (H5Aexists_by_name(fid, object.c_str(), name.c_str(), H5P_DEFAULT) > 0)
      ok(H5Adelete_by_name(fid, object.c_str(), name.c_str(), H5P_DEFAULT), "delete attr");
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = check(H5Acreate_by_name(fid, object.c_str(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                    "attr " + name);
    const char* text = value.c_str();
    H5Awrite(a, type, &text);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
  });
}

void craft_delete_attr(const std::string& file, const std::string& object, const std::string& name) {
  edit(file, [&](hid_t fid) { ok(H5Adelete_by_name(fid, object.c_str(), name.c_str(), H5P_DEFAULT), "delete attr " + name); });
}

std::vector<std::string> craft_list_datasets(const std::string& file) {
  std::vector<std::string> out;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t fid = check(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open " + file);
  H5Ovisit(fid, H5_INDEX_NAME, H5_ITER_INC, collect, &out);
  H5Fclose(fid);
  std::sort(out.begin(), out.end());
  return out;
}

void craft_source_file(const std::string& file, const std::string& dset, uint64_t n) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t fid = check(H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "create " + file);
  std::vector<float> data(n, 7.0f);
  create(fid, dset, H5T_IEEE_F32LE, {n}, H5P_DEFAULT, 0, data.data());
  H5Fclose(fid);
}

}  // namespace tg::test
