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
