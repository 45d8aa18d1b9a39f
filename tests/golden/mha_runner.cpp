// Golden runner for kind "mha": torch.nn.MultiheadAttention cases.
#include "tapegrad/framework/ops/elementwise.h"
#include "golden/golden_runners.h"
#include "tapegrad/layers/multihead_attention.h"

namespace tg::test {

std::vector<Compare> run_mha_case(const GoldenCase& c) {
  const nlohmann::json& cfg = c.config;
  require_known_keys(cfg,
                     {"embed_dim", "num_heads", "dropout", "bias", "add_bias_kv", "add_zero_attn", "kdim", "vdim",
                      "qdim", "batch_first", "need_weights", "average_attn_weights", "is_causal", "training",
                      "self_attention", "unbatched", "tgt_len", "src_len", "batch_size", "attn_mask",
                      "key_padding_mask", "note"},
                     c.where());
  MultiheadAttentionOptions o{.embed_dim = cfg.at("embed_dim").get<int64_t>(),
                              .num_heads = cfg.at("num_heads").get<int64_t>(),
                              .dropout = cfg.value("dropout", 0.0),
                              .bias = config_flag(cfg, "bias", true),
                              .add_bias_kv = config_flag(cfg, "add_bias_kv", false),
                              .add_zero_attn = config_flag(cfg, "add_zero_attn", false),
                              .kdim = config_opt_int(cfg, "kdim"),
                              .vdim = config_opt_int(cfg, "vdim"),
                              .batch_first = config_flag(cfg, "batch_first", false),
                              .qdim = config_opt_int(cfg, "qdim")};
  Generator gen(0);
  MultiheadAttention mha(o, gen, c.dtype);
  mha.load_state_dict(StateDict(c.params.begin(), c.params.end()));
  mha.train(config_flag(cfg, "training", false));

  // Self-attention cases store identical query/key/value: pass one tensor, whose gradient is the
  // sum of the three recorded ones.
  const bool self = config_flag(cfg, "self_attention", false);
  Var query = golden_input(c, "query");
  if (self && !c.grad_inputs.empty()) query.requires_grad_(true);
  Var key = self ? query : golden_input(c, "key");
  Var value = self ? query : golden_input(c, "value");
  Var kpm = golden_input(c, "key_padding_mask"), am = golden_input(c, "attn_mask");
  auto out = mha.forward(query, key, value,
                         {.attn_mask = am, .key_padding_mask = kpm, .need_weights = config_flag(cfg, "need_weights", true),
                          .average_attn_weights = config_flag(cfg, "average_attn_weights", true),
                          .is_causal = config_flag(cfg, "is_causal", false)});
  out.attn_output.backward(c.grad_output);

  std::map<std::string, Tensor> outputs{{"output", out.attn_output.value()}}, grads;
  if (out.attn_weights.defined()) outputs["attn_weights"] = out.attn_weights.value();
  std::vector<Compare> extra;
  if (self) {
    Tensor sum;
    for (const char* n : {"query", "key", "value"})
      if (c.grad_inputs.count(n)) sum = sum.defined() ? (Var(sum) + Var(c.grad_inputs.at(n))).value() : c.grad_inputs.at(n);
    for (const auto& [name, t] : c.grad_inputs) {
      if (name == "query" || name == "key" || name == "value") {
        Compare cmp = compare_to_golden("grads/inputs/" + name, query.grad(), sum, c.dtype);
        cmp.message += " (shared input: compared with query+key+value grads)";
        extra.push_back(cmp);
      } else {
        grads[name] = (name == "attn_mask" ? am : kpm).grad();
      }
    }
  } else {
    for (const auto& [name, v] : std::map<std::string, Var>{
             {"query", query}, {"key", key}, {"value", value}, {"attn_mask", am}, {"key_padding_mask", kpm}})
      if (c.grad_inputs.count(name)) grads[name] = v.grad();
  }
  GoldenCase rest = c;
  if (self)
    for (const char* n : {"query", "key", "value"}) rest.grad_inputs.erase(n);
  std::vector<Compare> result = compare_case(rest, outputs, grads, param_grads(c, mha));
  result.insert(result.end(), extra.begin(), extra.end());
  return result;
}

}  // namespace tg::test
