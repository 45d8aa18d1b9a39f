#include "golden/golden_runners.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

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

namespace {

// The recorded tensor a comparison named `what` ("outputs/output", "grads/params/norm1.weight") was checked
// against, or nullptr.
const Tensor* recorded(const GoldenCase& c, const std::string& what) {
  for (const auto& [prefix, group] : {std::pair<std::string, const std::map<std::string, Tensor>*>{"outputs/", &c.outputs},
                                      {"grads/inputs/", &c.grad_inputs}, {"grads/params/", &c.grad_params}}) {
    if (what.rfind(prefix, 0) != 0) continue;
    auto it = group->find(what.substr(prefix.size()));
    return it == group->end() ? nullptr : &it->second;
  }
  return nullptr;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", v);
  return buf;
}

}  // namespace

void GoldenErrors::record(const GoldenCase& c, const std::vector<Compare>& comparisons) {
  Worst& w = c.dtype == DType::Float32 ? f32_ : f64_;
  for (const Compare& cmp : comparisons) {
    const Tensor* expected = recorded(c, cmp.what);
    if (!expected || !std::isfinite(cmp.max_err)) continue;
    double peak = 0;
    for (int64_t i = 0; i < expected->numel(); ++i)
      if (std::isfinite(expected->flat(i))) peak = std::max(peak, std::abs(expected->flat(i)));
    w.abs = std::max(w.abs, cmp.max_err);
    if (peak > 0) w.rel = std::max(w.rel, cmp.max_err / peak);
    w.any = true;
  }
}

std::vector<std::string> GoldenErrors::lines(const std::string& file) const {
  std::vector<std::string> out;
  for (const auto& [name, w] : {std::pair<const char*, const Worst&>{"float64", f64_}, {"float32", f32_}})
    if (w.any) out.push_back("golden " + file + " " + name + ": worst abs " + sci(w.abs) + " rel " + sci(w.rel));
  return out;
}

}  // namespace tg::test
