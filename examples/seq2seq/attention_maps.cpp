#include "examples/seq2seq/attention_maps.h"

#include <filesystem>
#include <limits>

#include "examples/common/heatmaps.h"
#include "examples/seq2seq/data.h"
#include "examples/seq2seq/decode.h"
#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/shape.h"

namespace tg::seq2seq {
namespace {

// (1, H, L, S) -> (H, L, S)
Tensor per_head(const Var& w) { return reshape(w, {w.shape()[1], w.shape()[2], w.shape()[3]}).value(); }

// need_weights = true, average_attn_weights = false: the per-head weights.
MultiheadAttentionForwardOptions per_head_weights(const Var& key_padding_mask, bool is_causal) {
  return {.key_padding_mask = key_padding_mask, .need_weights = true, .average_attn_weights = false, .is_causal = is_causal};
}

}  // namespace

AttentionWeights attention_weights(Seq2Seq& model, const std::vector<int64_t>& source, const std::vector<int64_t>& tgt_in) {
  TG_CHECK(!source.empty() && !tgt_in.empty(), "Seq2Seq", "attention maps need a source and a target input of at "
           "least one token; got source length ", source.size(), ", tgt_in length ", tgt_in.size());
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t S = static_cast<int64_t>(source.size()), T = static_cast<int64_t>(tgt_in.size());
  const Tensor src = Tensor::from_vector(source, {1, S}), tgt = Tensor::from_vector(tgt_in, {1, T});
  const Var src_pad(Tensor::zeros({1, S}, DType::Bool));   // a batch of one: no padding
  AttentionWeights out;
  // Encoder: the attention's input inside TransformerEncoderLayer::forward is norm1(x) pre-norm, x post-norm.
  Var x = model.embed_source(src);   // (1, S, E)
  TransformerEncoder& encoder = *model.transformer->encoder;
  for (size_t i = 0; i < encoder.layers->size(); ++i) {
    auto layer = std::static_pointer_cast<TransformerEncoderLayer>((*encoder.layers)[i]);
    const Var h = layer->options().norm_first ? layer->norm1->forward(x) : x;
    out.encoder.push_back(per_head(layer->self_attn->forward(h, h, h, per_head_weights(src_pad, false)).attn_weights));   // (H, S, S)
    x = layer->forward(x, {.src_key_padding_mask = src_pad});
  }
  const Var memory = model.encode(src, src_pad.value());   // (1, S, E), the final norm included
  // Decoder, as TransformerDecoderLayer::forward: the self-attention block, then the cross-attention's input.
  Var y = model.embed_target(tgt, 0);   // (1, T, E)
  TransformerDecoder& decoder = *model.transformer->decoder;
  for (size_t i = 0; i < decoder.layers->size(); ++i) {
    TransformerDecoderLayer& layer = static_cast<TransformerDecoderLayer&>(*(*decoder.layers)[i]);
    const bool pre = layer.options().norm_first;
    const Var h = pre ? layer.norm1->forward(y) : y;
    out.decoder.push_back(per_head(layer.self_attn->forward(h, h, h, per_head_weights(Var(), true)).attn_weights));   // (H, T, T)
    const Var sa = layer.self_attn->forward(h, h, h, {.need_weights = false, .is_causal = true}).attn_output;
    const Var mid = pre ? y + sa : layer.norm1->forward(y + sa);
    const Var q = pre ? layer.norm2->forward(mid) : mid;
    out.cross.push_back(per_head(layer.multihead_attn->forward(q, memory, memory, per_head_weights(src_pad, false)).attn_weights));   // (H, T, S)
    y = layer.forward(y, memory, {.memory_key_padding_mask = src_pad, .tgt_is_causal = true});
  }
  model.train(was_training);
  return out;
}

namespace {

// One HeatmapGrid per layer of `weights` ((H, rows, cols) each), NaN above the diagonal when causal,
// written as <stem><L>.{png,svg,csv}.
void write_maps(const std::vector<Tensor>& weights, const std::string& title, const std::vector<std::string>& rows,
                const std::vector<std::string>& cols, bool causal, const std::string& stem, AttentionMapFiles& files) {
  for (size_t layer = 0; layer < weights.size(); ++layer) {
    const Tensor w = weights[layer].to(DType::Float64);   // (H, R, C)
    const int64_t R = w.shape()[1], C = w.shape()[2];
    examples::HeatmapGrid grid{.title = "layer " + std::to_string(layer) + " " + title, .row_labels = rows,
                               .col_labels = cols, .panels = {}};
    const double* v = w.data<double>();
    for (int64_t h = 0; h < w.shape()[0]; ++h) {
      std::vector<double> panel(v + h * R * C, v + (h + 1) * R * C);
      if (causal)
        for (int64_t q = 0; q < R; ++q)
          for (int64_t k = q + 1; k < C; ++k) panel[q * C + k] = std::numeric_limits<double>::quiet_NaN();   // masked
      grid.panels.push_back(std::move(panel));
    }
    const std::string path = stem + std::to_string(layer);
    if (examples::write_heatmaps(grid, path + ".png", path + ".svg")) {
      files.written.push_back(path + ".png");
      files.written.push_back(path + ".svg");
    } else {
      files.pictures = false;
    }
    examples::write_heatmap_csv(grid, static_cast<int64_t>(layer), path + ".csv");
    files.written.push_back(path + ".csv");
  }
}

// A token as an axis label: "<s>" BOS, "</s>" EOS, "<pad>" PAD, else its character made visible.
std::string token_label(int64_t token) {
  if (token == kBos) return "<s>";
  if (token == kEos) return "</s>";
  if (token == kPad) return "<pad>";
  return examples::visible_labels(decode({token})).front();
}

}  // namespace

AttentionMapFiles write_attention_maps(Seq2Seq& model, const std::string& input, const std::string& output_dir) {
  const std::vector<int64_t> source = encode(input);
  const Decoded d = greedy_decode(model, make_source_batch({source}), model.config().max_tgt_len).front();
  // Decoder position t reads tgt_in[t] and produces the t-th output token (EOS at the last when finished).
  std::vector<int64_t> tgt_in{kBos};
  tgt_in.insert(tgt_in.end(), d.tokens.begin(), d.tokens.end());
  if (!d.finished) tgt_in.pop_back();   // stopped at max_len: the last token produced nothing
  const AttentionWeights w = attention_weights(model, source, tgt_in);
  AttentionMapFiles files;
  files.output = decode(d.tokens);
  // Labels from the tokens themselves (one per decoder position), not from the decoded text.
  std::vector<std::string> produced, read;
  for (int64_t token : d.tokens) produced.push_back(token_label(token));
  if (d.finished) produced.push_back(token_label(kEos));
  for (int64_t token : tgt_in) read.push_back(token_label(token));
  TG_CHECK(produced.size() == tgt_in.size() && read.size() == tgt_in.size(), "Seq2Seq", "attention map labels: ",
           produced.size(), " produced and ", read.size(), " read for ", tgt_in.size(), " decoder positions");
  const std::vector<std::string> src_labels = examples::visible_labels(input);
  std::string shown;   // the title's input and output, spaces visible
  for (const std::string& c : src_labels) shown += c;
  shown += " -> " + files.output;
  std::filesystem::create_directories(output_dir);
  const std::string dir = output_dir + "/";
  write_maps(w.cross, "cross-attention (rows: output produced, columns: source): " + shown, produced, src_labels,
             false, dir + "cross_attn_layer", files);
  write_maps(w.decoder, "decoder self-attention (rows: output produced, columns: decoder input): " + shown, produced,
             read, true, dir + "dec_attn_layer", files);
  write_maps(w.encoder, "encoder self-attention: " + shown, src_labels, src_labels, false, dir + "enc_attn_layer", files);
  return files;
}

}  // namespace tg::seq2seq
