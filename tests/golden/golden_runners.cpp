#include "golden/golden_runners.h"

namespace tg::test {

const std::map<std::string, GoldenRunner>& golden_runners() {
  static const std::map<std::string, GoldenRunner> runners = {
      {"mha", run_mha_case}, {"encoder_layer", run_encoder_layer_case}, {"tiny_lm", run_tiny_lm_case},
      {"decoder_layer", run_decoder_layer_case}, {"transformer", run_transformer_case}};
  return runners;
}

bool config_flag(const nlohmann::json& c, const char* key, bool fallback) {
  return c.contains(key) && !c[key].is_null() ? c[key].get<bool>() : fallback;
}

std::optional<int64_t> config_opt_int(const nlohmann::json& c, const char* key) {
  if (!c.contains(key) || c[key].is_null()) return std::nullopt;
  return c[key].get<int64_t>();
}

Var golden_input(const GoldenCase& c, const std::string& name) {
  auto it = c.inputs.find(name);
  if (it == c.inputs.end()) return Var();
  return Var(it->second, c.grad_inputs.count(name) > 0);
}

std::map<std::string, Tensor> param_grads(const GoldenCase& c, const Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, p] : m.named_parameters()) {
    if (!c.grad_params.count(name)) continue;
    out[name] = p.grad().defined() ? p.grad() : Tensor::zeros(p.shape(), p.dtype());
  }
  return out;
}

}  // namespace tg::test
