// Golden runner for kind "tiny_lm": the tiny causal language model, rebuilt from the case's
// config (its "architecture" entry names the modules and the parameter order, which must be ours).
#include "examples/tiny_lm/model.h"
#include "golden/golden_runners.h"

namespace tg::test {

std::vector<Compare> run_tiny_lm_case(const GoldenCase& c) {
  const nlohmann::json& cfg = c.config;
  require_known_keys(cfg,
                     {"architecture", "vocab_size", "d_model", "nhead", "num_layers", "dim_feedforward", "dropout",
                      "activation", "layer_norm_eps", "norm_first", "batch_first", "max_len", "seq_len", "batch_size",
                      "causal_mask_dtype", "training", "head_bias", "note"},
                     c.where());
  if (!config_flag(cfg, "batch_first", true))
    throw std::invalid_argument("tiny_lm cases must be batch_first (the model is); got batch_first=false in " + c.where());
  tiny_lm::TinyLMConfig mc{.vocab_size = cfg.at("vocab_size").get<int64_t>(),
                           .block_size = cfg.at("max_len").get<int64_t>(),
                           .n_layer = cfg.at("num_layers").get<int64_t>(),
                           .n_head = cfg.at("nhead").get<int64_t>(),
                           .n_embd = cfg.at("d_model").get<int64_t>(),
                           .dim_feedforward = cfg.at("dim_feedforward").get<int64_t>(),
                           .dropout = cfg.value("dropout", 0.0),
                           .activation = parse_activation(cfg.value("activation", std::string("gelu"))),
                           .layer_norm_eps = cfg.value("layer_norm_eps", 1e-5),
                           .norm_first = config_flag(cfg, "norm_first", true),
                           .head_bias = config_flag(cfg, "head_bias", c.params.count("head.bias") > 0)};
  Generator gen(0);
  tiny_lm::TinyLM model(mc, gen, c.dtype);
  std::vector<std::string> ours;
  for (const auto& [name, p] : model.named_parameters()) ours.push_back(name);
  if (ours != c.param_order) {
    std::string got;
    for (const auto& n : ours) got += n + " ";
    throw std::invalid_argument("parameter order differs from architecture.param_order in " + c.where() + "; ours: " + got);
  }
  model.load_state_dict(StateDict(c.params.begin(), c.params.end()));
  model.train(config_flag(cfg, "training", false));
  Var loss = model.loss(c.inputs.at("tokens"), c.inputs.at("targets"));
  loss.backward();
  return compare_case(c, {{"loss", loss.value()}}, {}, param_grads(c, model));
}

}  // namespace tg::test
