#pragma once
// Runners for the golden parity test: each rebuilds one recorded case from its config and params,
// runs forward and backward, and returns the comparisons of every recorded output and gradient.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/layers/module.h"
#include "tapegrad/layers/transformer_encoder_layer.h"
#include "support/golden_support.h"

namespace tg::test {

using GoldenRunner = std::function<std::vector<Compare>(const GoldenCase&)>;

std::vector<Compare> run_mha_case(const GoldenCase& c);
std::vector<Compare> run_encoder_layer_case(const GoldenCase& c);
std::vector<Compare> run_tiny_lm_case(const GoldenCase& c);
std::vector<Compare> run_decoder_layer_case(const GoldenCase& c);
std::vector<Compare> run_transformer_case(const GoldenCase& c);

// The worst errors of one golden file, per case dtype, over every tensor compared (outputs, attention weights,
// input and parameter gradients), for the issue notes: abs = max |actual - expected|; rel = that tensor's abs
// divided by its max |expected| (finite entries). A recorded tensor that is all zeros (e.g. the query grad of a
// one-key attention) has no relative error and counts in abs only. Comparisons without a finite error
// (failed: NaN, wrong shape, not computed) are left out; they fail their case anyway.
class GoldenErrors {
 public:
  void record(const GoldenCase& c, const std::vector<Compare>& comparisons);
  // One line per dtype with compared tensors, float64 first:
  // "golden decoder_layer.h5 float64: worst abs 3.1e-15 rel 2.0e-13".
  std::vector<std::string> lines(const std::string& file) const;

 private:
  struct Worst {
    double abs = 0, rel = 0;
    bool any = false;
  };
  Worst f64_, f32_;
};

// kind -> runner. A case of a kind not listed here fails; it is never skipped.
const std::map<std::string, GoldenRunner>& golden_runners();

// Helpers shared by the runners.
bool config_flag(const nlohmann::json& c, const char* key, bool fallback);
std::optional<int64_t> config_opt_int(const nlohmann::json& c, const char* key);
// The recorded input `name` as a Var (requires grad when a gradient was recorded for it), or an
// undefined Var when the case has no such input.
Var golden_input(const GoldenCase& c, const std::string& name);
// Gradients of every parameter of m that has a recorded gradient (zeros where backward never reached it).
std::map<std::string, Tensor> param_grads(const GoldenCase& c, const Module& m);

// o with the fields every transformer config shares besides d_model and nhead read from cfg, with PyTorch's
// defaults (dim_feedforward 2048, dropout 0.1, relu, layer_norm_eps 1e-5, batch_first and norm_first false, bias true).
template <class Options> Options with_shared_transformer_options(Options o, const nlohmann::json& cfg) {
  o.dim_feedforward = cfg.value("dim_feedforward", int64_t{2048});
  o.dropout = cfg.value("dropout", 0.1);
  o.activation = parse_activation(cfg.value("activation", std::string("relu")));
  o.layer_norm_eps = cfg.value("layer_norm_eps", 1e-5);
  o.batch_first = config_flag(cfg, "batch_first", false);
  o.norm_first = config_flag(cfg, "norm_first", false);
  o.bias = config_flag(cfg, "bias", true);
  return o;
}

// The module of a case: built from options (its initial draws are overwritten by the case's params), in the
// training mode the case was recorded in.
template <class M, class Options> std::unique_ptr<M> module_from_case(const Options& o, const GoldenCase& c) {
  auto m = std::make_unique<M>(o, Generator(0), c.dtype);
  m->load_state_dict(StateDict(c.params.begin(), c.params.end()));
  m->train(config_flag(c.config, "training", false));
  return m;
}

}  // namespace tg::test
