#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <thread>

#include "tapegrad/framework/io/hdf5_file.h"
#include "support/test_support.h"

using namespace tg;
using tg::io::H5File;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// A file in a directory private to this test process (ctest may run several test cases at once).
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / ("tapegrad_io_hdf5_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / name).string();
    std::filesystem::remove(path);
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    std::filesystem::remove(std::filesystem::path(path).parent_path(), ec);   // only once empty
  }
};

// The message of the std::runtime_error that f throws; fails the test if f throws nothing or another type.
std::string runtime_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected std::runtime_error, got another exception: " << e.what());
  }
  FAIL("expected std::runtime_error, nothing was thrown");
  return {};
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void overwrite(const std::string& path, size_t offset, size_t count) {
  std::fstream io(path, std::ios::binary | std::ios::in | std::ios::out);
  io.seekp(static_cast<std::streamoff>(offset));
  for (size_t i = 0; i < count; ++i) io.put(static_cast<char>(0xA5 ^ (i * 37)));
}

const std::string kGoldenMha = TAPEGRAD_SOURCE_DIR "/tests/golden/mha.h5";

// Every dtype in several shapes, including 0-d, empty, compact (small) and chunked (large) storage.
std::vector<std::pair<std::string, Tensor>> sample_tensors() {
  std::vector<std::pair<std::string, Tensor>> out;
  out.emplace_back("f32", tg::test::rand_tensor({2, 3}, 1, -1, 1, DType::Float32));
  out.emplace_back("f64", tg::test::rand_tensor({4}, 2));
  out.emplace_back("i64", Tensor::from_vector(std::vector<int64_t>{std::numeric_limits<int64_t>::max(), -5, 0,
                                                                   std::numeric_limits<int64_t>::min()},
                                              {2, 2}));
  out.emplace_back("bool", Tensor::from_bools({true, false, false, true, true}, {5}));
  out.emplace_back("f32_0d", Tensor::scalar(-2.5, DType::Float32));
  out.emplace_back("f64_0d", Tensor::scalar(1.0 / 3.0, DType::Float64));
  out.emplace_back("i64_0d", Tensor::scalar(-7, DType::Int64));
  out.emplace_back("bool_0d", Tensor::scalar(1, DType::Bool));
  out.emplace_back("f32_empty", Tensor::zeros({0}, DType::Float32));
  out.emplace_back("f64_empty", Tensor::zeros({2, 0, 3}, DType::Float64));
  out.emplace_back("i64_empty", Tensor::zeros({0, 4}, DType::Int64));
  out.emplace_back("bool_empty", Tensor::zeros({3, 0}, DType::Bool));
  out.emplace_back("f64_chunked", tg::test::rand_tensor({1500, 100}, 3));      // 1.2 MB: two chunks
  out.emplace_back("f32_chunked", tg::test::rand_tensor({3, 70, 50}, 4, -1, 1, DType::Float32));
  Tensor nonfinite = Tensor::from_vector(std::vector<double>{INFINITY, -INFINITY, NAN, -0.0}, {4});
  out.emplace_back("f64_nonfinite", nonfinite);
  return out;
}

}  // namespace

TEST_CASE("hdf5: every dtype round-trips bit-exactly, including 0-d and empty tensors", "[io]") {
  TempFile tmp("roundtrip.h5");
  const auto tensors = sample_tensors();
  {
    H5File f(tmp.path, H5File::Mode::truncate);
    for (const auto& [name, t] : tensors) f.write("/tensors/" + name, t);
    f.close();
  }
  H5File f(tmp.path, H5File::Mode::read);
  for (const auto& [name, t] : tensors) {
    INFO(name);
    Tensor back = f.read("tensors/" + name);
    REQUIRE(back.dtype() == t.dtype());
    REQUIRE(back.shape() == t.shape());
    REQUIRE(back.bit_equal(t));
    REQUIRE(f.dataset_shape("/tensors/" + name) == t.shape());
    REQUIRE(f.read("/tensors/" + name, t.dtype(), t.shape()).bit_equal(t));
  }
  REQUIRE(f.attr_int("/tensors/bool", "is_bool") == 1);
  REQUIRE_FALSE(f.has_attr("/tensors/f32", "is_bool"));
}

TEST_CASE("hdf5: the same content gives byte-identical files (no timestamps)", "[io]") {
  TempFile a("same_a.h5"), b("same_b.h5");
  for (const std::string& path : {a.path, b.path}) {
    if (path == b.path) std::this_thread::sleep_for(std::chrono::milliseconds(1100));   // HDF5 times have 1 s steps
    H5File f(path, H5File::Mode::truncate);
    for (const auto& [name, t] : sample_tensors()) f.write("/g/" + name, t);
    f.write_string("/text", "hello");
    f.set_attr("/g", "kind", "mha");
    f.close();
  }
  const std::vector<char> bytes_a = file_bytes(a.path), bytes_b = file_bytes(b.path);
  const auto diff = std::mismatch(bytes_a.begin(), bytes_a.end(), bytes_b.begin(), bytes_b.end());
  INFO("sizes " << bytes_a.size() << " and " << bytes_b.size() << ", first difference at byte "
                << (diff.first - bytes_a.begin()));
  REQUIRE(bytes_a.size() > 1000000);
  const bool identical = bytes_a == bytes_b;   // not REQUIRE(a == b): Catch would print megabytes
  REQUIRE(identical);
}

TEST_CASE("hdf5: strings round-trip as UTF-8 and a NUL character is rejected", "[io]") {
  TempFile tmp("strings.h5");
  const std::string json = R"({"embed_dim": 16, "note": "caf\u00e9"})";
  {
    H5File f(tmp.path, H5File::Mode::truncate);
    f.write_string("/meta/config", json);
    f.write_string("/meta/utf8", "h\xc3\xa9llo \xe2\x88\x91");
    f.write_string("/meta/empty", "");
    REQUIRE(runtime_error_of([&] { f.write_string("/meta/nul", std::string("a\0b", 3)); }) ==
            tmp.path + ": cannot write string /meta/nul: the value contains a NUL character");
    REQUIRE(runtime_error_of([&] { f.write_string("/meta/config", "again"); }) ==
            tmp.path + ": cannot write string /meta/config: it already exists");
  }
  H5File f(tmp.path, H5File::Mode::read);
  REQUIRE(f.read_string("/meta/config") == json);
  REQUIRE(f.read_string("meta/utf8") == "h\xc3\xa9llo \xe2\x88\x91");
  REQUIRE(f.read_string("/meta/empty").empty());
  REQUIRE(runtime_error_of([&] { f.read("/meta/config"); }) ==
          tmp.path + ": cannot read dataset /meta/config: it has type string, which is not a tensor type");
}

TEST_CASE("hdf5: fixed-length strings round-trip and fixed-only readers refuse variable-length ones", "[io]") {
  TempFile tmp("fixed_strings.h5");
  const std::string long_text(20000, 'x');   // beyond the 16 KiB compact limit: stored contiguous
  {
    H5File f(tmp.path, H5File::Mode::truncate);
    f.write_string("/fixed", "h\xc3\xa9llo", H5File::StringStorage::fixed);
    f.write_string("/empty", "", H5File::StringStorage::fixed);
    f.write_string("/long", long_text, H5File::StringStorage::fixed);
    f.write_string("/variable", "heap");
    f.set_attr("/", "fixed", "tapegrad", H5File::StringStorage::fixed);
    f.set_attr("/", "variable", "tapegrad");
  }
  H5File f(tmp.path, H5File::Mode::read);
  constexpr auto fixed = H5File::StringStorage::fixed;
  REQUIRE(f.read_string("/fixed", fixed) == "h\xc3\xa9llo");
  REQUIRE(f.read_string("/fixed") == "h\xc3\xa9llo");
  REQUIRE(f.read_string("/empty", fixed).empty());
  REQUIRE(f.read_string("/long", fixed) == long_text);
  REQUIRE(f.attr_string("/", "fixed", fixed) == "tapegrad");
  REQUIRE(f.read_string("/variable") == "heap");
  REQUIRE(runtime_error_of([&] { f.read_string("/variable", fixed); }) ==
          tmp.path + ": cannot read string /variable: it is a variable-length string, expected a fixed-length one");
  REQUIRE(runtime_error_of([&] { f.attr_string("/", "variable", fixed); }) ==
          tmp.path + ": cannot read attribute 'variable' of /: it is a variable-length string, expected a fixed-length one");
}

TEST_CASE("hdf5: an in-memory file's image opens as a file with the same content", "[io]") {
  TempFile tmp("image.h5");
  std::vector<unsigned char> image;
  {
    H5File f(tmp.path, H5File::Mode::memory);
    f.write("/w", Tensor::arange(10));
    f.set_attr("/", "step", int64_t{7});
    image = f.image();
    REQUIRE_FALSE(std::filesystem::exists(tmp.path));   // nothing touched the disk
  }
  std::ofstream(tmp.path, std::ios::binary).write(reinterpret_cast<const char*>(image.data()),
                                                    static_cast<std::streamsize>(image.size()));
  H5File f(tmp.path, H5File::Mode::read);
  REQUIRE(f.read("/w").bit_equal(Tensor::arange(10)));
  REQUIRE(f.attr_int("/", "step") == 7);
  f.check_self_contained();
}

TEST_CASE("hdf5: attributes of every type on the root, groups and datasets", "[io]") {
  TempFile tmp("attrs.h5");
  {
    H5File f(tmp.path, H5File::Mode::truncate);
    f.write("/w", Tensor::ones({2}, DType::Float64));
    f.create_group("/case");
    f.set_attr("/", "version", 3);
    f.set_attr("/case", "kind", "mha");
    f.set_attr("/case", "config", std::string(R"({"a": 1})"));
    f.set_attr("/case", "big", std::numeric_limits<int64_t>::min());
    f.set_attr("/w", "scale", 1e-300);
    f.set_attr("/w", "half", -0.5);
    f.set_attr("/case", "kind", "encoder_layer");   // replaces
    REQUIRE(runtime_error_of([&] { f.set_attr("/nope", "x", 1); }) ==
            tmp.path + ": cannot write attribute 'x' of /nope: no such group or dataset");
  }
  H5File f(tmp.path, H5File::Mode::read);
  REQUIRE(f.attr_int("/", "version") == 3);
  REQUIRE(f.attr_double("/", "version") == 3.0);
  REQUIRE(f.attr_string("case", "kind") == "encoder_layer");
  REQUIRE(f.attr_string("/case/", "config") == R"({"a": 1})");
  REQUIRE(f.attr_int("/case", "big") == std::numeric_limits<int64_t>::min());
  REQUIRE(f.attr_double("/w", "scale") == 1e-300);
  REQUIRE(f.attr_double("/w", "half") == -0.5);
  REQUIRE(f.has_attr("/w", "half"));
  REQUIRE_FALSE(f.has_attr("/w", "kind"));
  REQUIRE(runtime_error_of([&] { f.attr_int("/w", "half"); }) ==
          tmp.path + ": cannot read attribute 'half' of /w: it has type float64, expected an integer");
  REQUIRE(runtime_error_of([&] { f.attr_string("/case", "big"); }) ==
          tmp.path + ": cannot read attribute 'big' of /case: it has type int64, expected a string");
  REQUIRE(runtime_error_of([&] { f.attr_double("/case", "kind"); }) ==
          tmp.path + ": cannot read attribute 'kind' of /case: it has type string, expected a number");
  REQUIRE(runtime_error_of([&] { f.attr_string("/case", "missing"); }) ==
          tmp.path + ": cannot read attribute 'missing' of /case: no such attribute");
  REQUIRE(runtime_error_of([&] { f.has_attr("/case/x", "kind"); }) ==
          tmp.path + ": cannot look up attribute 'kind' of /case/x: no such group or dataset");
}

TEST_CASE("hdf5: nested groups, sorted children and path handling", "[io]") {
  TempFile tmp("groups.h5");
  H5File f(tmp.path, H5File::Mode::truncate);
  f.create_group("a/b/c");
  f.create_group("/a/b");   // already there: no-op
  for (const char* name : {"zeta", "alpha", "Mid", "beta.weight"})
    f.write(std::string("/a/") + name, Tensor::zeros({1}));
  f.write("a//b/x/", Tensor::zeros({1}));
  REQUIRE(f.children("/") == std::vector<std::string>{"a"});
  REQUIRE(f.children("/a") == std::vector<std::string>{"Mid", "alpha", "b", "beta.weight", "zeta"});
  REQUIRE(f.children("a/b/") == std::vector<std::string>{"c", "x"});
  REQUIRE(f.children("/a/b/c").empty());
  REQUIRE(f.exists("/"));
  REQUIRE(f.is_group("/"));
  REQUIRE(f.exists("/a/b/x"));
  REQUIRE_FALSE(f.is_group("/a/b/x"));
  REQUIRE(f.is_group("a/b/c"));
  REQUIRE_FALSE(f.exists("/a/q"));
  REQUIRE_FALSE(f.exists("/a/b/x/deeper"));   // a dataset has no members
  REQUIRE_FALSE(f.exists("/nope/deeper"));
  REQUIRE_FALSE(f.is_group("/nope"));
  REQUIRE(runtime_error_of([&] { f.children("/a/zeta"); }) ==
          tmp.path + ": cannot list group /a/zeta: it is not a group");
  REQUIRE(runtime_error_of([&] { f.children("/q"); }) == tmp.path + ": cannot list group /q: no such group");
  REQUIRE(runtime_error_of([&] { f.create_group("/a/zeta/z"); }) ==
          tmp.path + ": cannot create group /a/zeta/z: /a/zeta is not a group");
  REQUIRE(runtime_error_of([&] { f.write("/a/zeta", Tensor::zeros({1})); }) ==
          tmp.path + ": cannot write dataset /a/zeta: it already exists");
  REQUIRE(runtime_error_of([&] { f.write("/a/zeta/w", Tensor::zeros({1})); }) ==
          tmp.path + ": cannot write dataset /a/zeta/w: /a/zeta is not a group");
  REQUIRE(runtime_error_of([&] { f.write("/", Tensor::zeros({1})); }) ==
          tmp.path + ": cannot write dataset /: the root is a group");
  REQUIRE(runtime_error_of([&] { f.write("/u", Tensor()); }) ==
          tmp.path + ": cannot write dataset /u: the tensor is undefined");
  REQUIRE(runtime_error_of([&] { f.read("/a/b"); }) ==
          tmp.path + ": cannot read dataset /a/b: it is not a dataset");
}

TEST_CASE("hdf5: reads the golden mha.h5 written by h5py (string attrs, uint8 masks as bool)", "[io]") {
  H5File f(kGoldenMha, H5File::Mode::read);
  const std::vector<std::string> cases = f.children("/");
  REQUIRE(cases.size() == 60);
  REQUIRE(cases.front() == "mha_000_self_basic_f64");
  REQUIRE(f.attr_string("/mha_000_self_basic_f64", "kind") == "mha");
  REQUIRE(f.attr_string("/mha_001_self_basic_f32", "dtype") == "float32");
  REQUIRE_THAT(f.attr_string("/mha_000_self_basic_f64", "config"), StartsWith("{\"add_bias_kv\": false"));

  const std::string mask = "/mha_036_am2d_bool_kpm_bool_f64/inputs/attn_mask";
  REQUIRE(f.attr_int(mask, "is_bool") == 1);   // stored by h5py as a uint8 attribute
  Tensor m = f.read(mask, DType::Bool, {3, 3});
  REQUIRE(m.to_vector() == std::vector<double>{1, 0, 0, 0, 1, 1, 1, 0, 0});

  const std::string kpm = "/mha_034_kpm_float_f64/inputs/key_padding_mask";
  REQUIRE(f.attr_int(kpm, "is_bool") == 0);
  Tensor k = f.read(kpm);
  REQUIRE(k.dtype() == DType::Float64);
  REQUIRE(k.shape() == Shape{2, 4});
  REQUIRE(std::abs(k.at({0, 0}) + 0.00962067) < 1e-8);
  REQUIRE(k.at({0, 1}) == -INFINITY);

  Tensor bias = f.read("/mha_001_self_basic_f32/params/out_proj.bias", DType::Float32, {8});
  REQUIRE(bias.at({0}) == static_cast<double>(-0.15212073922157288f));
  REQUIRE(bias.at({7}) == static_cast<double>(-0.18652157485485077f));
}

TEST_CASE("hdf5: a missing file or dataset throws naming the file and the path", "[io]") {
  TempFile tmp("missing.h5");
  REQUIRE(runtime_error_of([&] { H5File f(tmp.path, H5File::Mode::read); }) ==
          tmp.path + ": cannot open file for reading: no such file");
  const std::string dir = std::filesystem::path(tmp.path).parent_path().string();
  REQUIRE(runtime_error_of([&] { H5File f(dir, H5File::Mode::read); }) ==
          dir + ": cannot open file for reading: it is a directory");
  // A FIFO (a checkpoint path someone replaced) blocked forever inside HDF5's open.
  TempFile fifo("fifo.h5");
  REQUIRE(::mkfifo(fifo.path.c_str(), 0600) == 0);
  REQUIRE(runtime_error_of([&] { H5File f(fifo.path, H5File::Mode::read); }) ==
          fifo.path + ": cannot open file for reading: not a regular file");
  REQUIRE(runtime_error_of([&] { H5File f("/dev/zero", H5File::Mode::read); }) ==
          "/dev/zero: cannot open file for reading: not a regular file");
  REQUIRE_THAT(runtime_error_of([&] { H5File f(dir + "/no/such/dir/x.h5", H5File::Mode::truncate); }),
               StartsWith(dir + "/no/such/dir/x.h5: cannot create file: "));
  H5File f(kGoldenMha, H5File::Mode::read);
  REQUIRE(runtime_error_of([&] { f.read("/model/w"); }) ==
          kGoldenMha + ": cannot read dataset /model/w: no such dataset");
  REQUIRE(runtime_error_of([&] { f.dataset_shape("mha_000_self_basic_f64/params/nope"); }) ==
          kGoldenMha + ": cannot read dataset /mha_000_self_basic_f64/params/nope: no such dataset");
  REQUIRE(runtime_error_of([&] { f.read_string("/x"); }) ==
          kGoldenMha + ": cannot read string /x: no such dataset");
}

TEST_CASE("hdf5: the checked read rejects a wrong dtype or shape before reading", "[io]") {
  H5File f(kGoldenMha, H5File::Mode::read);
  const std::string w = "/mha_000_self_basic_f64/params/in_proj_weight";
  REQUIRE(f.read(w, DType::Float64, {24, 8}).shape() == Shape{24, 8});
  REQUIRE(runtime_error_of([&] { f.read(w, DType::Float32, {24, 8}); }) ==
          kGoldenMha + ": dataset " + w + " has float64[24, 8], expected float32[24, 8]");
  REQUIRE(runtime_error_of([&] { f.read(w, DType::Float64, {8, 24}); }) ==
          kGoldenMha + ": dataset " + w + " has float64[24, 8], expected float64[8, 24]");
  REQUIRE(runtime_error_of([&] { f.read(w, DType::Float64, {}); }) ==
          kGoldenMha + ": dataset " + w + " has float64[24, 8], expected float64[]");
}

TEST_CASE("hdf5: a truncated file is reported, not read", "[io]") {
  TempFile tmp("truncated.h5");
  {
    H5File f(tmp.path, H5File::Mode::truncate);
    f.write("/model/w", tg::test::rand_tensor({64, 64}, 5));
    f.write("/model/b", tg::test::rand_tensor({64}, 6));
  }
  std::filesystem::resize_file(tmp.path, std::filesystem::file_size(tmp.path) / 2);
  REQUIRE_THAT(runtime_error_of([&] { H5File f(tmp.path, H5File::Mode::read); }),
               StartsWith(tmp.path + ": cannot open file for reading: truncated file"));
}

TEST_CASE("hdf5: a corrupted superblock is reported", "[io]") {
  TempFile tmp("bad_superblock.h5");
  {
    H5File f(tmp.path, H5File::Mode::truncate);
    f.write("/w", tg::test::rand_tensor({8, 8}, 7));
  }
  overwrite(tmp.path, 0, 48);
  REQUIRE(runtime_error_of([&] { H5File f(tmp.path, H5File::Mode::read); }) ==
          tmp.path + ": cannot open file for reading: file signature not found");
}

TEST_CASE("hdf5: corrupted data or metadata in the middle of a file is reported", "[io]") {
  TempFile tmp("bad_middle.h5");
  auto write_file = [&](bool large) {
    H5File f(tmp.path, H5File::Mode::truncate);
    if (large) {   // chunked, Fletcher32-checksummed data
      f.write("/model/w", tg::test::rand_tensor({200, 100}, 8));
    } else {       // compact datasets inside checksummed object headers
      for (int i = 0; i < 6; ++i)
        f.write("/model/p" + std::to_string(i), tg::test::rand_tensor({8, 8}, 9 + i));
    }
  };
  auto read_all = [&] {
    H5File f(tmp.path, H5File::Mode::read);
    for (const std::string& name : f.children("/model")) f.read("/model/" + name);
  };
  SECTION("in the data of a large dataset") {
    write_file(true);
    overwrite(tmp.path, std::filesystem::file_size(tmp.path) / 2, 64);
    const std::string message = runtime_error_of(read_all);
    REQUIRE_THAT(message, StartsWith(tmp.path + ": cannot read dataset /model/w: "));
    REQUIRE_THAT(message, Contains("Fletcher32 checksum"));
  }
  SECTION("in the object headers of small datasets") {
    write_file(false);
    const size_t size = std::filesystem::file_size(tmp.path);
    overwrite(tmp.path, size / 2, 16);
    const std::string message = runtime_error_of(read_all);
    REQUIRE_THAT(message, StartsWith(tmp.path + ": cannot "));
    REQUIRE_THAT(message, Contains("checksum"));
  }
}

TEST_CASE("hdf5: flush with sync and close report errors, and a closed file throws", "[io]") {
  TempFile tmp("flush.h5");
  H5File f(tmp.path, H5File::Mode::truncate);
  f.write("/w", Tensor::full({3}, 2.0, DType::Float64));
  f.flush();
  f.flush(true);
  f.close();
  f.close();   // closing twice is harmless
  REQUIRE(runtime_error_of([&] { f.exists("/w"); }) == tmp.path + ": file is closed");
  REQUIRE(runtime_error_of([&] { f.write("/v", Tensor::zeros({1})); }) == tmp.path + ": file is closed");
  H5File g(tmp.path, H5File::Mode::read);
  REQUIRE(g.read("/w").to_vector() == std::vector<double>{2, 2, 2});
  g.flush(true);   // harmless on a read-only file
}

TEST_CASE("hdf5: datasets in h5py's types map to tensor dtypes (bool enums, narrow ints, float16)", "[io]") {
  const std::string path = TAPEGRAD_SOURCE_DIR "/tests/fixtures/h5py_types.h5";
  H5File f(path, H5File::Mode::read);
  Tensor b = f.read("/bool_enum");
  REQUIRE(b.dtype() == DType::Bool);
  REQUIRE(b.to_vector() == std::vector<double>{1, 0, 1});
  REQUIRE(f.read("/uint8_plain", DType::Bool, {3}).to_vector() == std::vector<double>{0, 1, 1});
  REQUIRE(f.read("/uint8_bytes", DType::Int64, {3}).to_vector() == std::vector<double>{0, 2, 255});
  REQUIRE(f.read("/int32", DType::Int64, {1, 2}).to_vector() == std::vector<double>{-3, 4});
  REQUIRE(f.read("/uint16", DType::Int64, {1}).to_vector() == std::vector<double>{65535});
  REQUIRE(f.read("/uint64_ok", DType::Int64, {1}).data<int64_t>()[0] == std::numeric_limits<int64_t>::max());
  REQUIRE(f.read("/float16", DType::Float32, {3}).to_vector() == std::vector<double>{0.5, -2.0, 65504.0});
  REQUIRE(f.read("/float64_0d", DType::Float64, {}).item() == 2.5);
  REQUIRE(f.read_string("/fixed_string") == "fixed");
  REQUIRE(f.read_string("/vlen_string") == "caf\xc3\xa9");
  REQUIRE(runtime_error_of([&] { f.read("/uint64_big"); }) ==
          path + ": cannot read dataset /uint64_big: a value does not fit into int64");
  REQUIRE(runtime_error_of([&] { f.read("/null_space"); }) ==
          path + ": cannot read dataset /null_space: it has an empty (null) dataspace");
  REQUIRE(runtime_error_of([&] { f.read("/compound"); }) ==
          path + ": cannot read dataset /compound: it has type compound, which is not a tensor type");
  REQUIRE(runtime_error_of([&] { f.read_string("/int32"); }) ==
          path + ": cannot read string /int32: it has type int32, expected a string");
}

TEST_CASE("hdf5: attributes in h5py's types read as int64, double and string", "[io]") {
  const std::string path = TAPEGRAD_SOURCE_DIR "/tests/fixtures/h5py_types.h5";
  H5File f(path, H5File::Mode::read);
  REQUIRE(f.attr_int("/attrs", "i8") == -7);
  REQUIRE(f.attr_int("/attrs", "u8") == 200);
  REQUIRE(f.attr_int("/attrs", "i16") == -30000);
  REQUIRE(f.attr_int("/attrs", "u32") == 4000000000);
  REQUIRE(f.attr_int("/attrs", "i64") == -(int64_t{1} << 62));
  REQUIRE(f.attr_int("/attrs", "bool") == 1);
  REQUIRE(f.attr_int("/attrs", "one_element") == 42);
  REQUIRE(f.attr_double("/attrs", "f32") == 0.25);
  REQUIRE(f.attr_double("/attrs", "f64") == -1e300);
  REQUIRE(f.attr_double("/attrs", "u32") == 4e9);
  REQUIRE(f.attr_string("/attrs", "fixed") == "ab");
  REQUIRE(f.attr_string("/attrs", "vlen") == "xyz");
  REQUIRE(f.attr_string("/attrs", "spacepad") == "pad");
  REQUIRE(runtime_error_of([&] { f.attr_int("/attrs", "u64_big"); }) ==
          path + ": cannot read attribute 'u64_big' of /attrs: value 9223372036854775813 does not fit into int64");
  REQUIRE(runtime_error_of([&] { f.attr_int("/attrs", "array"); }) ==
          path + ": cannot read attribute 'array' of /attrs: it holds 3 values, expected one");
  REQUIRE(runtime_error_of([&] { f.attr_double("/attrs", "bool"); }) ==
          path + ": cannot read attribute 'bool' of /attrs: it has type enum, expected a number");
}
