// Golden runner for kind "decoder_layer": torch.nn.TransformerDecoderLayer cases.
#include "golden/golden_runners.h"
#include "tapegrad/layers/transformer_decoder_layer.h"

namespace tg::test {

std::vector<Compare> run_decoder_layer_case(const GoldenCase& c) {
  const nlohmann::json& cfg = c.config;
  require_known_keys(cfg,
                     {"d_model", "nhead", "dim_feedforward", "dropout", "activation", "layer_norm_eps", "batch_first",
                      "norm_first", "bias", "training", "unbatched", "tgt_len", "memory_len", "batch_size", "tgt_mask",
                      "memory_mask", "tgt_key_padding_mask", "memory_key_padding_mask", "tgt_is_causal",
                      "memory_is_causal", "note"},
                     c.where());
  const auto o = with_shared_transformer_options(
      TransformerDecoderLayerOptions{.d_model = cfg.at("d_model").get<int64_t>(),
          .nhead = cfg.at("nhead").get<int64_t>()},
      cfg);
  const auto layer = module_from_case<TransformerDecoderLayer>(o, c);
  std::map<std::string, Var> in;
  for (const char* name : {"tgt", "memory", "tgt_mask", "memory_mask", "tgt_key_padding_mask", "memory_key_padding_mask"})
    in[name] = golden_input(c, name);
  Var out = layer->forward(in["tgt"], in["memory"],
                          {.tgt_mask = in["tgt_mask"], .memory_mask = in["memory_mask"],
                           .tgt_key_padding_mask = in["tgt_key_padding_mask"],
                           .memory_key_padding_mask = in["memory_key_padding_mask"],
                           .tgt_is_causal = config_flag(cfg, "tgt_is_causal", false),
                           .memory_is_causal = config_flag(cfg, "memory_is_causal", false)});
  out.backward(c.grad_output);
  std::map<std::string, Tensor> grads;
  for (const auto& [name, v] : in)
    if (c.grad_inputs.count(name)) grads[name] = v.grad();
  return compare_case(c, {{"output", out.value()}}, grads, param_grads(c, *layer));
}

}  // namespace tg::test
