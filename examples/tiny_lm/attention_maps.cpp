#include "examples/tiny_lm/attention_maps.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include "examples/common/heatmaps.h"
#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/shape.h"

namespace tg::tiny_lm {

std::vector<Tensor> attention_weights(TinyLM& model, const std::vector<int64_t>& tokens) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  TG_CHECK(T >= 1 && T <= model.config().block_size, "TinyLM", "attention maps need 1 to block_size=",
           model.config().block_size, " tokens; got ", T);
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  Tensor x_tokens({1, T}, DType::Int64);
  std::copy(tokens.begin(), tokens.end(), x_tokens.data<int64_t>());
  Var x = model.tok_emb->forward(x_tokens) + model.pos_emb->forward(Tensor::arange(T));   // (1, T, C)
  std::vector<Tensor> weights;
  for (size_t i = 0; i < model.layers->size(); ++i) {
    auto layer = std::static_pointer_cast<TransformerEncoderLayer>((*model.layers)[i]);
    // The attention's input inside TransformerEncoderLayer::forward: norm1(x) pre-norm, x post-norm.
    const Var h = layer->options().norm_first ? layer->norm1->forward(x) : x;
    auto out = layer->self_attn->forward(h, h, h, {.need_weights = true, .average_attn_weights = false, .is_causal = true});
    const Var& w = out.attn_weights;                                                  // (1, H, T, T)
    weights.push_back(reshape(w, {w.shape()[1], T, T}).value());                     // -> (H, T, T)
    x = layer->forward(x, {.is_causal = true});
  }
  model.train(was_training);
  return weights;
}

AttentionMapFiles write_attention_maps(TinyLM& model, const Vocabulary& vocab, const std::string& prompt,
                                       const std::string& output_dir) {
  const std::vector<Tensor> weights = attention_weights(model, vocab.encode(prompt));
  std::filesystem::create_directories(output_dir);
  AttentionMapFiles files;
  const int64_t T = static_cast<int64_t>(prompt.size());
  std::string shown;   // the title's prompt, newlines and spaces visible, at most 40 characters
  for (const std::string& c : examples::visible_labels(prompt.substr(0, 40))) shown += c;
  if (prompt.size() > 40) shown += "...";
  for (size_t layer = 0; layer < weights.size(); ++layer) {
    const Tensor w = weights[layer].to(DType::Float64);   // (H, T, T)
    examples::HeatmapGrid grid{.title = "layer " + std::to_string(layer) + " self-attention: " + shown,
                               .row_labels = examples::visible_labels(prompt),
                               .col_labels = examples::visible_labels(prompt),
                               .panels = {}};
    const double* v = w.data<double>();
    for (int64_t h = 0; h < w.shape()[0]; ++h) {
      std::vector<double> panel(v + h * T * T, v + (h + 1) * T * T);
      for (int64_t q = 0; q < T; ++q)
        for (int64_t k = q + 1; k < T; ++k) panel[q * T + k] = std::numeric_limits<double>::quiet_NaN();   // masked
      grid.panels.push_back(std::move(panel));
    }
    const std::string stem = output_dir + "/attn_layer" + std::to_string(layer);
    if (examples::write_heatmaps(grid, stem + ".png", stem + ".svg")) {
      files.written.push_back(stem + ".png");
      files.written.push_back(stem + ".svg");
    } else {
      files.pictures = false;
    }
    examples::write_heatmap_csv(grid, static_cast<int64_t>(layer), stem + ".csv");
    files.written.push_back(stem + ".csv");
  }
  return files;
}

}  // namespace tg::tiny_lm
