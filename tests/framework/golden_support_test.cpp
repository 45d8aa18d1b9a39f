#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "tapegrad/framework/io/hdf5_file.h"
#include "support/golden_support.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const std::string kGolden = TAPEGRAD_SOURCE_DIR "/tests/golden/";
const std::set<std::string> kKinds = {"mha", "encoder_layer", "tiny_lm", "decoder_layer", "transformer"};

bool golden_dir_is_default() {
  return fs::weakly_canonical(golden_dir()) == fs::weakly_canonical(TAPEGRAD_GOLDEN_DEFAULT);
}

const GoldenCase& find_case(const std::vector<GoldenCase>& cases, const std::string& name) {
  for (const GoldenCase& c : cases)
    if (c.name == name) return c;
  FAIL("no case " << name);
  return cases.front();
}

// A directory private to this test process (ctest may run several test cases at once).
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("tapegrad_golden_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

template <class E> std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return {};
}

// A minimal golden file with one float64 case, then changed by edit before closing.
void write_case_file(const std::string& path, const std::function<void(io::H5File&)>& edit) {
  io::H5File f(path, io::H5File::Mode::truncate);
  f.write("/case/params/w", Tensor::ones({2}, DType::Float64));
  f.write("/case/inputs/x", Tensor::ones({2}, DType::Float64));
  f.write("/case/outputs/output", Tensor::ones({2}, DType::Float64));
  f.write("/case/grad_output", Tensor::ones({2}, DType::Float64));
  f.write("/case/grads/inputs/x", Tensor::ones({2}, DType::Float64));
  f.write("/case/grads/params/w", Tensor::ones({2}, DType::Float64));
  f.set_attr("/case", "kind", "mha");
  f.set_attr("/case", "dtype", "float64");
  f.set_attr("/case", "config", R"({"embed_dim": 2})");
  edit(f);
}

// A small synthetic case for the tally tests.
GoldenCase synthetic_case(const std::string& name) {
  GoldenCase c;
  c.file = "mha.h5";
  c.name = name;
  c.kind = "mha";
  c.dtype = DType::Float64;
  c.outputs["output"] = Tensor::from_vector(std::vector<double>{1.0, -3.0}, {2});
  c.grad_inputs["query"] = Tensor::from_vector(std::vector<double>{0.5}, {1});
  c.grad_params["w"] = Tensor::from_vector(std::vector<double>{2.0, 0.0, -1.0}, {3});
  return c;
}

}  // namespace

TEST_CASE("golden: every case of every file loads with a float dtype, a known kind and all grads", "[golden]") {
  const std::vector<std::string> files = golden_files(golden_dir());
  REQUIRE_FALSE(files.empty());
  std::map<std::string, int> counts, f64_counts;
  for (const std::string& file : files) {
    for (const GoldenCase& c : load_golden_cases(file)) {
      INFO(c.where());
      REQUIRE(c.file == fs::path(file).filename().string());
      REQUIRE(kKinds.count(c.kind) == 1);
      REQUIRE((c.dtype == DType::Float32 || c.dtype == DType::Float64));
      REQUIRE(c.config.is_object());
      REQUIRE_FALSE(c.params.empty());
      REQUIRE_FALSE(c.inputs.empty());
      REQUIRE_FALSE(c.outputs.empty());
      REQUIRE(c.param_order.size() == c.params.size());
      REQUIRE(c.grad_params.size() == c.params.size());
      for (const auto& [name, p] : c.params) REQUIRE(c.grad_params.at(name).shape() == p.shape());
      for (const auto& [name, g] : c.grad_inputs) {
        REQUIRE(c.inputs.at(name).shape() == g.shape());
        REQUIRE(c.inputs.at(name).dtype() == c.dtype);
      }
      for (const auto& [name, flag] : c.input_is_bool) REQUIRE((c.inputs.at(name).dtype() == DType::Bool) == flag);
      if (c.kind == "tiny_lm") {
        REQUIRE_FALSE(c.grad_output.defined());
        REQUIRE(c.outputs.at("loss").dim() == 0);
      } else {
        REQUIRE(c.grad_output.shape() == c.outputs.at("output").shape());
      }
      ++counts[c.file];
      if (c.dtype == DType::Float64) ++f64_counts[c.file];
    }
  }
  if (!golden_dir_is_default()) return;   // TAPEGRAD_GOLDEN_DIR points elsewhere: counts are not ours to know
  REQUIRE(counts == std::map<std::string, int>{{"decoder_layer.h5", 16}, {"encoder_layer.h5", 12}, {"mha.h5", 60},
                                               {"tiny_lm.h5", 4}, {"transformer.h5", 8}});
  REQUIRE(f64_counts == std::map<std::string, int>{{"decoder_layer.h5", 10}, {"encoder_layer.h5", 8}, {"mha.h5", 31},
                                                   {"tiny_lm.h5", 2}, {"transformer.h5", 4}});
}

TEST_CASE("golden: uint8 masks load as Bool, float masks keep the case dtype, tokens are int64", "[golden]") {
  const std::vector<GoldenCase> mha = load_golden_cases(kGolden + "mha.h5");
  const GoldenCase& both = find_case(mha, "mha_036_am2d_bool_kpm_bool_f64");
  REQUIRE(both.input_is_bool.at("attn_mask"));
  REQUIRE(both.inputs.at("attn_mask").dtype() == DType::Bool);
  REQUIRE(both.inputs.at("attn_mask").shape() == Shape{3, 3});
  REQUIRE(both.inputs.at("attn_mask").to_vector() == std::vector<double>{1, 0, 0, 0, 1, 1, 1, 0, 0});
  REQUIRE(both.inputs.at("key_padding_mask").to_vector() == std::vector<double>{0, 0, 0});
  const GoldenCase& kpm = find_case(mha, "mha_034_kpm_float_f64");
  REQUIRE_FALSE(kpm.input_is_bool.at("key_padding_mask"));
  REQUIRE(kpm.inputs.at("key_padding_mask").dtype() == DType::Float64);
  REQUIRE(kpm.inputs.at("key_padding_mask").at({0, 1}) == -INFINITY);
  const GoldenCase& basic = find_case(mha, "mha_000_self_basic_f64");
  REQUIRE(basic.config.at("embed_dim") == 8);
  REQUIRE(basic.param_order ==
          std::vector<std::string>{"in_proj_bias", "in_proj_weight", "out_proj.bias", "out_proj.weight"});
  REQUIRE(basic.input_is_bool.empty());
  const GoldenCase& f32 = find_case(mha, "mha_001_self_basic_f32");
  REQUIRE(f32.dtype == DType::Float32);
  REQUIRE(f32.params.at("out_proj.bias").at({7}) == static_cast<double>(-0.18652157485485077f));

  const std::vector<GoldenCase> lm = load_golden_cases(kGolden + "tiny_lm.h5");
  const GoldenCase& lm0 = find_case(lm, "lm_000_1layer_f64");
  REQUIRE(lm0.kind == "tiny_lm");
  REQUIRE(lm0.inputs.at("tokens").dtype() == DType::Int64);
  REQUIRE(lm0.inputs.at("targets").shape() == Shape{2, 3});
  REQUIRE(lm0.outputs.at("loss").dtype() == DType::Float64);
  REQUIRE(lm0.param_order.front() == "tok_emb.weight");   // the file's architecture.param_order
  REQUIRE(lm0.param_order.back() == "head.bias");

  const std::vector<GoldenCase> enc = load_golden_cases(kGolden + "encoder_layer.h5");
  const GoldenCase& enc0 = find_case(enc, "enc_000_relu_post_seq");
  REQUIRE(enc0.inputs.at("src_mask").dtype() == DType::Float64);
  REQUIRE_FALSE(enc0.input_is_bool.at("src_mask"));
}

TEST_CASE("golden: a malformed golden file is reported with the file, case and reason", "[golden]") {
  TempDir dir("malformed");
  const std::string path = (dir.path / "bad.h5").string();
  write_case_file(path, [](io::H5File&) {});
  REQUIRE(load_golden_cases(path).size() == 1);
  write_case_file(path, [](io::H5File& f) { f.set_attr("/case", "dtype", "float16"); });
  REQUIRE(error_of<std::runtime_error>([&] { load_golden_cases(path); }) ==
          "bad.h5/case: attribute dtype is 'float16', expected float32 or float64");
  write_case_file(path, [](io::H5File& f) { f.set_attr("/case", "config", "{\"a\": "); });
  REQUIRE_THAT(error_of<std::runtime_error>([&] { load_golden_cases(path); }),
               Contains("bad.h5/case: attribute config is not valid JSON: "));
  write_case_file(path, [](io::H5File& f) { f.set_attr("/case", "config", "[1, 2]"); });
  REQUIRE(error_of<std::runtime_error>([&] { load_golden_cases(path); }) ==
          "bad.h5/case: attribute config is not a JSON object");
  write_case_file(path, [](io::H5File& f) { f.write("/case/outputs/w32", Tensor::ones({1}, DType::Float32)); });
  REQUIRE(error_of<std::runtime_error>([&] { load_golden_cases(path); }) ==
          "bad.h5/case: /case/outputs/w32 is float32 but the case dtype is float64");
  write_case_file(path, [](io::H5File& f) {
    f.write("/case/inputs/mask", Tensor::ones({1}, DType::Float64));
    f.set_attr("/case/inputs/mask", "is_bool", 1);
  });
  REQUIRE(error_of<std::runtime_error>([&] { load_golden_cases(path); }) ==
          "bad.h5/case: /case/inputs/mask is float64 but its is_bool is 1");
  write_case_file(path, [](io::H5File& f) {
    f.set_attr("/case", "config", R"({"architecture": {"param_order": ["v"]}})");
  });
  REQUIRE(error_of<std::runtime_error>([&] { load_golden_cases(path); }) ==
          "bad.h5/case: architecture.param_order lists v but the params are w");
  {
    io::H5File f(path, io::H5File::Mode::truncate);
    f.create_group("/case");
  }
  REQUIRE(error_of<std::runtime_error>([&] { load_golden_cases(path); }) ==
          path + ": cannot read attribute 'kind' of /case: no such attribute");
}

TEST_CASE("golden: golden_files lists the .h5 files of a directory, sorted", "[golden]") {
  TempDir dir("files");
  for (const char* name : {"b.h5", "a.h5", "notes.txt", "a.h5.bak"}) std::ofstream(dir.path / name) << "x";
  fs::create_directories(dir.path / "c.h5");
  REQUIRE(golden_files(dir.path.string()) ==
          std::vector<std::string>{(dir.path / "a.h5").string(), (dir.path / "b.h5").string()});
  const std::string missing = (dir.path / "nope").string();
  REQUIRE(error_of<std::runtime_error>([&] { golden_files(missing); }) ==
          "golden directory " + missing + " does not exist");
  if (golden_dir_is_default())
    REQUIRE(golden_files(golden_dir()) ==
            std::vector<std::string>{kGolden + "decoder_layer.h5", kGolden + "encoder_layer.h5", kGolden + "mha.h5",
                                     kGolden + "tiny_lm.h5", kGolden + "transformer.h5"});
}

TEST_CASE("golden: require_known_keys fails on a config key the test does not know", "[golden]") {
  const std::vector<GoldenCase> mha = load_golden_cases(kGolden + "mha.h5");
  const GoldenCase& c = find_case(mha, "mha_003_self_bf_noweights_f32");
  std::set<std::string> known;
  for (const auto& item : c.config.items()) known.insert(item.key());
  REQUIRE_NOTHROW(require_known_keys(c.config, known, c.where()));
  nlohmann::json extended = c.config;
  extended["foo"] = 1;
  REQUIRE(error_of<std::invalid_argument>([&] { require_known_keys(extended, known, c.where()); }) ==
          "unknown config key 'foo' in mha.h5/mha_003_self_bf_noweights_f32");
  known.erase("unbatched");
  REQUIRE(error_of<std::invalid_argument>([&] { require_known_keys(c.config, known, c.where()); }) ==
          "unknown config key 'unbatched' in mha.h5/mha_003_self_bf_noweights_f32");
  REQUIRE(error_of<std::invalid_argument>([&] { require_known_keys(nlohmann::json::array(), known, "x.h5/y"); }) ==
          "config in x.h5/y is not a JSON object");
}

TEST_CASE("golden: compare_to_golden applies 1e-9 (f64) and 1e-4 (f32) relative to max(1, max|expected|)", "[golden]") {
  const Tensor e64 = Tensor::from_vector(std::vector<double>{0.5, -2.0}, {2});
  auto shifted = [&](double d) { return Tensor::from_vector(std::vector<double>{0.5, -2.0 + d}, {2}); };
  Compare inside = compare_to_golden("out", shifted(1.9e-9), e64, DType::Float64);
  REQUIRE(inside.ok);
  REQUIRE(inside.scale == 2.0);
  REQUIRE(std::abs(inside.max_err - 1.9e-9) < 1e-15);
  REQUIRE(inside.message == "out: max error 1.9e-09 <= 1e-09 * 2");
  Compare outside = compare_to_golden("out", shifted(2.1e-9), e64, DType::Float64);
  REQUIRE_FALSE(outside.ok);
  REQUIRE_THAT(outside.message, Contains("out: max error 2.1e-09 at [1] (got -1.9999999979") &&
                                    Contains("expected -2) exceeds 1e-09 * 2"));

  const Tensor small = Tensor::from_vector(std::vector<double>{0.25, 0.0, -0.1, 0.2}, {2, 2});   // scale floor 1
  Tensor a = small.clone();
  a.set({1, 1}, 0.2 + 0.9e-9);
  REQUIRE(compare_to_golden("w", a, small, DType::Float64).ok);
  a.set({1, 1}, 0.2 + 1.1e-9);
  Compare floor = compare_to_golden("w", a, small, DType::Float64);
  REQUIRE_FALSE(floor.ok);
  REQUIRE(floor.scale == 1.0);
  REQUIRE_THAT(floor.message, Contains("at [1, 1]"));

  const Tensor e32 = Tensor::from_vector(std::vector<float>{4.0f, 1.0f}, {2});
  REQUIRE(compare_to_golden("y", Tensor::from_vector(std::vector<float>{4.00039f, 1.0f}, {2}), e32, DType::Float32).ok);
  REQUIRE_FALSE(
      compare_to_golden("y", Tensor::from_vector(std::vector<float>{4.00041f, 1.0f}, {2}), e32, DType::Float32).ok);
  REQUIRE_FALSE(
      compare_to_golden("y", Tensor::from_vector(std::vector<float>{4.0f, 0.9995f}, {2}), e32, DType::Float32).ok);
}

TEST_CASE("golden: compare_to_golden fails on NaN, infinities that differ, shape and dtype mismatches", "[golden]") {
  const Tensor e = Tensor::from_vector(std::vector<double>{-INFINITY, 1.0}, {2});
  REQUIRE(compare_to_golden("m", e.clone(), e, DType::Float64).ok);
  Compare inf_vs_finite = compare_to_golden("m", Tensor::from_vector(std::vector<double>{-1e300, 1.0}, {2}), e,
                                            DType::Float64);
  REQUIRE_FALSE(inf_vs_finite.ok);
  REQUIRE(inf_vs_finite.max_err == INFINITY);
  Compare nan_actual = compare_to_golden("m", Tensor::from_vector(std::vector<double>{-INFINITY, NAN}, {2}), e,
                                         DType::Float64);
  REQUIRE_FALSE(nan_actual.ok);
  REQUIRE_THAT(nan_actual.message, Contains("at [1] (got nan, expected 1)"));
  const Tensor nan_expected = Tensor::from_vector(std::vector<double>{NAN, 1.0}, {2});
  REQUIRE_FALSE(compare_to_golden("m", nan_expected.clone(), nan_expected, DType::Float64).ok);
  REQUIRE(compare_to_golden("m", Tensor::zeros({2}, DType::Float64), Tensor::zeros({1, 2}, DType::Float64),
                            DType::Float64)
              .message == "m: shape [2], expected [1, 2]");
  REQUIRE(compare_to_golden("m", Tensor::zeros({2}, DType::Float64), Tensor::zeros({2}, DType::Float32),
                            DType::Float32)
              .message == "m: dtype float64, expected float32");
  REQUIRE(compare_to_golden("m", Tensor(), e, DType::Float64).message == "m: was not computed (undefined tensor)");
  REQUIRE(compare_to_golden("m", Tensor::zeros({0}), Tensor::zeros({0}), DType::Float32).ok);
  REQUIRE(error_of<std::invalid_argument>([&] { compare_to_golden("m", e, e, DType::Int64); }) ==
          "[compare_to_golden] case_dtype must be float32 or float64; got int64");
}

TEST_CASE("golden: the tally counts cases, requires every recorded tensor compared, prints one line", "[golden]") {
  GoldenTally tally;
  const GoldenCase c = synthetic_case("mha_a");
  const std::map<std::string, Tensor> out = {{"output", c.outputs.at("output").clone()}};
  const std::map<std::string, Tensor> gin = {{"query", c.grad_inputs.at("query").clone()}};
  std::map<std::string, Tensor> gpar = {{"w", c.grad_params.at("w").clone()}};
  tally.record(c, compare_case(c, out, gin, gpar));   // exact: passes

  gpar.at("w").set({0}, 2.0 + 3e-9);                   // scale 2: error 3e-9 > 2e-9
  tally.record(synthetic_case("mha_b"), compare_case(c, out, gin, gpar));
  tally.record(synthetic_case("mha_c"), compare_case(c, out, {}, {{"w", c.grad_params.at("w")}, {"v", Tensor()}}));
  tally.record(synthetic_case("mha_d"), {compare_to_golden("outputs/output", out.at("output"), c.outputs.at("output"),
                                                           DType::Float64)});
  tally.record(synthetic_case("mha_e"), {});
  tally.record_failure(synthetic_case("mha_f"), "[mha] num_heads must divide embed_dim; got 3");

  REQUIRE(tally.passed() == 1);
  REQUIRE(tally.total() == 6);
  REQUIRE(tally.summary_line("mha.h5") == "golden mha.h5: 1/6 cases passed");
  REQUIRE(std::abs(tally.worst_error(DType::Float64) - 1.5e-9) < 1e-15);   // 3e-9 / scale 2
  REQUIRE(tally.worst_error(DType::Float32) == 0.0);
  const std::string report = tally.failure_report();
  INFO(report);
  REQUIRE_THAT(report, Contains("mha.h5/mha_b: grads/params/w: max error 3e-09 at [0]"));
  REQUIRE_THAT(report, Contains("mha.h5/mha_c: grads/inputs/query: was not computed; "
                                "grads/params/v: has no recorded value"));
  REQUIRE_THAT(report, Contains("mha.h5/mha_d: not compared: grads/inputs/query, grads/params/w\n"));
  REQUIRE_THAT(report, Contains("mha.h5/mha_e: nothing was compared; not compared: outputs/output, grads/inputs/query, "
                                "grads/params/w\n"));
  REQUIRE_THAT(report, Contains("mha.h5/mha_f: [mha] num_heads must divide embed_dim; got 3"));
  REQUIRE_THAT(report, !Contains("mha_a"));
  GoldenTally clean;
  clean.record(c, compare_case(c, out, gin, {{"w", c.grad_params.at("w")}}));
  REQUIRE(clean.summary_line("mha.h5") == "golden mha.h5: 1/1 cases passed");
  REQUIRE(clean.failure_report().empty());
}
