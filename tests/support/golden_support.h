#pragma once
// Golden cases recorded from PyTorch (format: tests/golden/README.md): loading every case of a file,
// strict config-key checks, the README's tolerance rule, and a per-file tally for parity tests.
//
// A parity test for one kind of case looks like:
//   for (const std::string& file : golden_files(golden_dir())) {
//     GoldenTally tally;
//     for (const GoldenCase& c : load_golden_cases(file)) {
//       if (c.kind != "mha") continue;
//       try {
//         require_known_keys(c.config, {"embed_dim", ...}, c.where());
//         ... run the module, backward with c.grad_output ...
//         tally.record(c, compare_case(c, {{"output", y}}, {{"query", gq}}, {{"in_proj_weight", gw}}));
//       } catch (const std::exception& e) { tally.record_failure(c, e.what()); }
//     }
//     if (tally.total() == 0) continue;
//     std::cout << tally.summary_line(file_name) << std::endl;   // "golden mha.h5: 60/60 cases passed"
//     INFO(tally.failure_report());
//     CHECK(tally.passed() == tally.total());
//   }
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tapegrad/framework/tensor.h"

namespace tg::test {

// One recorded case (one top-level group of a golden file).
struct GoldenCase {
  std::string file;   // file name without its directory, e.g. "mha.h5"
  std::string name;   // the case's group, e.g. "mha_003_self_bf_noweights_f32"
  std::string kind;   // "mha" | "encoder_layer" | "tiny_lm"
  DType dtype = DType::Float64;   // Float32 or Float64: the dtype of every float dataset of the case
  nlohmann::json config;          // the parsed `config` attribute (a JSON object)
  // Keyed by dataset name (state_dict names for params). Bool masks (uint8 with is_bool = 1) are Bool
  // tensors, float masks keep the case dtype, tokens/targets are Int64, a scalar loss is 0-d.
  std::map<std::string, Tensor> params, inputs, outputs, grad_inputs, grad_params;
  std::vector<std::string> param_order;   // config.architecture.param_order when given, else sorted names
  Tensor grad_output;                     // the upstream gradient; undefined when the file has none (tiny_lm)
  std::map<std::string, bool> input_is_bool;   // value of each input's is_bool attribute, where present

  std::string where() const { return file + "/" + name; }   // "mha.h5/mha_003_self_bf_noweights_f32"
};

// Every *.h5 file directly in dir, as full paths sorted by name; throws std::runtime_error when dir is
// not a directory.
std::vector<std::string> golden_files(const std::string& dir);

// Every case of a golden file, sorted by case name. Throws std::runtime_error naming the file (and
// case) when the file cannot be read or does not follow the README: a missing attribute or group, a
// dtype other than float32/float64, a config that is not a JSON object, a float dataset whose dtype
// differs from the case dtype, or a param_order that does not list exactly the params.
std::vector<GoldenCase> load_golden_cases(const std::string& file);

// Throws std::invalid_argument "unknown config key 'foo' in mha.h5/mha_003_x" for the first key of
// config (a JSON object) not in known, or "config in <where> is not a JSON object". A parity test calls
// it so that an option it does not implement fails the case instead of being silently ignored.
void require_known_keys(const nlohmann::json& config, const std::set<std::string>& known, const std::string& where);

// Result of comparing one computed tensor with its recorded value.
struct Compare {
  bool ok = false;
  double max_err = 0;    // max |actual - expected| (infinity when a NaN or an infinity differs)
  double scale = 1;      // max(1, max |expected| over finite entries)
  std::string message;   // "outputs/output: max error 1.2e-12 <= 1e-09 * 2.5" or the reason it failed
  std::string what;      // the name it was called with, e.g. "grads/params/in_proj_weight"
};

// The README rule: float64 cases pass when max_err <= 1e-9 * scale, float32 cases when
// max_err <= 1e-4 * scale. Fails (ok = false, with a message) on an undefined actual tensor, a shape or
// dtype different from expected, or a NaN anywhere; an infinite expected entry must be matched exactly.
// Throws std::invalid_argument when case_dtype is not Float32 or Float64.
Compare compare_to_golden(const std::string& what, const Tensor& actual, const Tensor& expected, DType case_dtype);

// Compares every recorded tensor of c with the computed ones: outputs/<n> with outputs.at(n),
// grads/inputs/<n> with grad_inputs.at(n), grads/params/<n> with grad_params.at(n). A recorded tensor
// without a computed one gives a failed entry "... was not computed"; computed tensors that were not
// recorded give a failed entry "... has no recorded value".
std::vector<Compare> compare_case(const GoldenCase& c, const std::map<std::string, Tensor>& outputs,
                                  const std::map<std::string, Tensor>& grad_inputs,
                                  const std::map<std::string, Tensor>& grad_params);

// Counts passed cases of one golden file and keeps the failures with their reasons.
class GoldenTally {
 public:
  // A case passes when comparisons is non-empty and every entry is ok. Every recorded output and
  // gradient of c must appear among the comparisons (by `what`, as compare_case names them), else
  // the case fails with "not compared: grads/params/bias_k".
  void record(const GoldenCase& c, const std::vector<Compare>& comparisons);
  // A case that failed before anything could be compared (e.g. an exception); reason is kept.
  void record_failure(const GoldenCase& c, const std::string& reason);

  int passed() const { return passed_; }
  int total() const { return total_; }
  // Worst max_err / scale over all comparisons recorded for cases of dtype d (0 when none).
  double worst_error(DType d) const { return d == DType::Float32 ? worst_f32_ : worst_f64_; }
  // Exactly "golden mha.h5: 58/60 cases passed".
  std::string summary_line(const std::string& file) const;
  // One line per failing case, "mha.h5/mha_003_x: outputs/output: max error ...; ...", or "" when all passed.
  std::string failure_report() const;

 private:
  int passed_ = 0, total_ = 0;
  double worst_f32_ = 0, worst_f64_ = 0;
  std::vector<std::string> failures_;
};

}  // namespace tg::test
