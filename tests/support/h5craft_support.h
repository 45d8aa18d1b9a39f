#pragma once
// Crafting hostile HDF5 files for the checkpoint tests: edits an existing file in place through the
// HDF5 C API (things tapegrad's own writer never produces). Every function throws std::runtime_error
// when HDF5 refuses. Dataset replacements keep the old dataset's "digest" attribute, so a reader must
// notice the change by content, not by a missing attribute.
#include <cstdint>
#include <string>
#include <vector>

namespace tg::test {

enum class CraftType { f32, f64, i32, i64, u8, string };

// Replaces dataset `dset` by one of `type` and `dims` (filled with `fill` bytes unless huge: then
// chunked and never written, so the file stays small while declaring a huge size).
void craft_replace_dataset(const std::string& file, const std::string& dset, CraftType type,
                           const std::vector<uint64_t>& dims, bool huge = false);
// Replaces dataset `dset` by a float32 dataset of `n` elements whose raw data lives in `external_file`.
void craft_external_storage(const std::string& file, const std::string& dset, const std::string& external_file, uint64_t n);
// Replaces dataset `dset` by a virtual float32 dataset of `n` elements mapped from source_file:source_dset.
void craft_virtual(const std::string& file, const std::string& dset, const std::string& source_file,
                   const std::string& source_dset, uint64_t n);
// Replaces link `link` by a soft link to `target` / an external link to other_file:object.
void craft_soft_link(const std::string& file, const std::string& link, const std::string& target);
void craft_external_link(const std::string& file, const std::string& link, const std::string& other_file,
                         const std::string& object);
void craft_delete(const std::string& file, const std::string& link);
// Replaces the scalar string dataset `dset` by one holding `value` (keeping its digest attribute),
// fixed-length as tapegrad writes it, or variable-length (in the global heap).
void craft_string(const std::string& file, const std::string& dset, const std::string& value, bool variable = false);
void craft_int_attr(const std::string& file, const std::string& object, const std::string& name, int64_t value);
void craft_string_attr(const std::string& file, const std::string& object, const std::string& name, const std::string& value);
void craft_delete_attr(const std::string& file, const std::string& object, const std::string& name);
// Datasets of the file (full paths, sorted).
std::vector<std::string> craft_list_datasets(const std::string& file);
// A plain float32 file holding dataset `dset` of n elements (a source for virtual datasets).
void craft_source_file(const std::string& file, const std::string& dset, uint64_t n);

}  // namespace tg::test
