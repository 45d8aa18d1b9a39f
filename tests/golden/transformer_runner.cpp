// Golden runner for kind "transformer": torch.nn.Transformer cases (final encoder and decoder norms).
#include "golden/golden_runners.h"
#include "tapegrad/layers/transformer.h"

namespace tg::test {

std::vector<Compare> run_transformer_case(const GoldenCase& c) {
  const nlohmann::json& cfg = c.config;
  require_known_keys(cfg,
                     {"d_model", "nhead", "num_encoder_layers", "num_decoder_layers", "dim_feedforward", "dropout",
                      "activation", "layer_norm_eps", "batch_first", "norm_first", "bias", "training", "unbatched",
                      "src_len", "tgt_len", "batch_size", "src_mask", "tgt_mask", "memory_mask", "src_key_padding_mask",
                      "tgt_key_padding_mask", "memory_key_padding_mask", "memory_key_padding_mask_is_src_key_padding_mask",
                      "src_is_causal", "tgt_is_causal", "memory_is_causal", "note"},
                     c.where());
  const auto o = with_shared_transformer_options(
      TransformerOptions{.d_model = cfg.value("d_model", int64_t{512}),
          .nhead = cfg.value("nhead", int64_t{8}),
          .num_encoder_layers = cfg.value("num_encoder_layers", int64_t{6}),
          .num_decoder_layers = cfg.value("num_decoder_layers", int64_t{6})},
      cfg);
  const auto model = module_from_case<Transformer>(o, c);
  std::map<std::string, Var> in;
  for (const char* name : {"src", "tgt", "src_mask", "tgt_mask", "memory_mask", "src_key_padding_mask",
                           "tgt_key_padding_mask", "memory_key_padding_mask"})
    in[name] = golden_input(c, name);
  // The recording passes src_key_padding_mask itself as memory_key_padding_mask when the config says so.
  if (config_flag(cfg, "memory_key_padding_mask_is_src_key_padding_mask", false) &&
      !in["memory_key_padding_mask"].defined())
    in["memory_key_padding_mask"] = in["src_key_padding_mask"];
  Var out = model->forward(in["src"], in["tgt"],
                          {.src_mask = in["src_mask"], .tgt_mask = in["tgt_mask"], .memory_mask = in["memory_mask"],
                           .src_key_padding_mask = in["src_key_padding_mask"],
                           .tgt_key_padding_mask = in["tgt_key_padding_mask"],
                           .memory_key_padding_mask = in["memory_key_padding_mask"],
                           .src_is_causal = config_flag(cfg, "src_is_causal", false),
                           .tgt_is_causal = config_flag(cfg, "tgt_is_causal", false),
                           .memory_is_causal = config_flag(cfg, "memory_is_causal", false)});
  out.backward(c.grad_output);
  std::map<std::string, Tensor> grads;
  for (const auto& [name, v] : in)
    if (c.grad_inputs.count(name)) grads[name] = v.grad();
  return compare_case(c, {{"output", out.value()}}, grads, param_grads(c, *model));
}

}  // namespace tg::test
