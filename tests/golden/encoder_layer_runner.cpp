// Golden runner for kind "encoder_layer": torch.nn.TransformerEncoderLayer cases.
#include "golden/golden_runners.h"
#include "tapegrad/layers/transformer_encoder_layer.h"

namespace tg::test {

std::vector<Compare> run_encoder_layer_case(const GoldenCase& c) {
  const nlohmann::json& cfg = c.config;
  require_known_keys(cfg,
                     {"d_model", "nhead", "dim_feedforward", "dropout", "activation", "layer_norm_eps", "batch_first",
                      "norm_first", "bias", "training", "unbatched", "seq_len", "batch_size", "src_mask",
                      "src_key_padding_mask", "is_causal", "note"},
                     c.where());
  const auto o = with_shared_transformer_options(
      TransformerEncoderLayerOptions{.d_model = cfg.at("d_model").get<int64_t>(),
          .nhead = cfg.at("nhead").get<int64_t>()},
      cfg);
  const auto layer = module_from_case<TransformerEncoderLayer>(o, c);
  Var src = golden_input(c, "src"), mask = golden_input(c, "src_mask"), kpm = golden_input(c, "src_key_padding_mask");
  Var out = layer->forward(src, {.src_mask = mask, .src_key_padding_mask = kpm,
                                .is_causal = config_flag(cfg, "is_causal", false)});
  out.backward(c.grad_output);
  std::map<std::string, Tensor> grads;
  for (const auto& [name, v] : std::map<std::string, Var>{{"src", src}, {"src_mask", mask}, {"src_key_padding_mask", kpm}})
    if (c.grad_inputs.count(name)) grads[name] = v.grad();
  return compare_case(c, {{"output", out.value()}}, grads, param_grads(c, *layer));
}

}  // namespace tg::test
