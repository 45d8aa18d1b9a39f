#include "examples/seq2seq/model.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "examples/seq2seq/data.h"
#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/ops/shape.h"

namespace tg::seq2seq {
namespace {

constexpr int64_t kMaxSize = 1 << 16;   // any width, length or vocabulary
constexpr int64_t kMaxLayers = 64;

void check_tokens(const Tensor& t, const char* name, int64_t max_len, const char* limit) {
  TG_CHECK(t.defined() && t.dim() == 2 && t.dtype() == DType::Int64 && t.size(1) > 0, "Seq2Seq", name,
           " must be int64 (B, L) with L >= 1; got ", name, "=", describe(t));
  TG_CHECK(t.size(1) <= max_len, "Seq2Seq", name, " length ", t.size(1), " exceeds ", limit, "=", max_len);
}

}  // namespace

void Seq2SeqConfig::validate() const {
  const char* op = "Seq2Seq";
  auto in_range = [&](const char* field, int64_t v, int64_t lo, int64_t hi) {
    TG_CHECK(v >= lo && v <= hi, op, field, " must be in [", lo, ", ", hi, "]; got ", field, "=", v);
  };
  in_range("vocab_size", vocab_size, 4, kMaxSize);
  in_range("max_src_len", max_src_len, 1, kMaxSize);
  in_range("max_tgt_len", max_tgt_len, 1, kMaxSize);
  in_range("d_model", d_model, 1, kMaxSize);
  in_range("nhead", nhead, 1, d_model);
  TG_CHECK(d_model % nhead == 0, op, "d_model must be a multiple of nhead; got d_model=", d_model, ", nhead=", nhead);
  in_range("num_encoder_layers", num_encoder_layers, 1, kMaxLayers);
  in_range("num_decoder_layers", num_decoder_layers, 1, kMaxLayers);
  in_range("dim_feedforward", dim_feedforward, 1, kMaxSize);
  TG_CHECK(dropout >= 0.0 && dropout < 1.0, op, "dropout must be in [0, 1); got dropout=", dropout);
}

std::string config_to_json(const Seq2SeqConfig& c) {
  return nlohmann::json{{"vocab_size", c.vocab_size}, {"max_src_len", c.max_src_len}, {"max_tgt_len", c.max_tgt_len},
                        {"d_model", c.d_model}, {"nhead", c.nhead}, {"num_encoder_layers", c.num_encoder_layers},
                        {"num_decoder_layers", c.num_decoder_layers}, {"dim_feedforward", c.dim_feedforward},
                        {"dropout", c.dropout}, {"norm_first", c.norm_first}}
      .dump();
}

Seq2SeqConfig config_from_json(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  return {.vocab_size = j.at("vocab_size"), .max_src_len = j.at("max_src_len"), .max_tgt_len = j.at("max_tgt_len"),
          .d_model = j.at("d_model"), .nhead = j.at("nhead"), .num_encoder_layers = j.at("num_encoder_layers"),
          .num_decoder_layers = j.at("num_decoder_layers"), .dim_feedforward = j.at("dim_feedforward"),
          .dropout = j.at("dropout"), .norm_first = j.at("norm_first")};
}

Seq2Seq::Seq2Seq(Seq2SeqConfig c, Generator gen, DType dtype) : config_((c.validate(), c)) {
  auto embedding = [&](int64_t rows) {
    return std::make_shared<Embedding>(EmbeddingOptions{.num_embeddings = rows, .embedding_dim = c.d_model}, gen, dtype);
  };
  src_emb = register_module("src_emb", embedding(c.vocab_size));
  tgt_emb = register_module("tgt_emb", embedding(c.vocab_size));
  src_pos = register_module("src_pos", embedding(c.max_src_len));
  tgt_pos = register_module("tgt_pos", embedding(c.max_tgt_len));
  transformer = register_module("transformer", std::make_shared<Transformer>(
      TransformerOptions{.d_model = c.d_model, .nhead = c.nhead, .num_encoder_layers = c.num_encoder_layers,
                         .num_decoder_layers = c.num_decoder_layers, .dim_feedforward = c.dim_feedforward,
                         .dropout = c.dropout, .batch_first = true, .norm_first = c.norm_first},
      gen, dtype));
  head = register_module("head", std::make_shared<Linear>(
      LinearOptions{.in_features = c.d_model, .out_features = c.vocab_size}, gen, dtype));
}

Var Seq2Seq::embed_target(const Tensor& tgt, int64_t start) {
  const int64_t T = tgt.size(1);
  TG_CHECK(start + T <= config_.max_tgt_len, "Seq2Seq", "target positions ", start, "..", start + T - 1,
           " exceed max_tgt_len=", config_.max_tgt_len);
  Tensor positions = Tensor::arange(static_cast<double>(start), static_cast<double>(start + T), 1.0, DType::Int64);
  return tgt_emb->forward(tgt) + tgt_pos->forward(positions);   // (B, T, E) + (T, E)
}

Var Seq2Seq::embed_source(const Tensor& src) {
  check_tokens(src, "src", config_.max_src_len, "max_src_len");
  return src_emb->forward(src) + src_pos->forward(Tensor::arange(src.size(1)));   // (B, S, E) + (S, E)
}

Var Seq2Seq::encode(const Tensor& src, const Tensor& src_pad) {
  return transformer->encoder->forward(embed_source(src), {.src_key_padding_mask = Var(src_pad)});
}

Var Seq2Seq::forward(const Tensor& src, const Tensor& src_pad, const Tensor& tgt_in, const Tensor& tgt_pad) {
  check_tokens(src, "src", config_.max_src_len, "max_src_len");
  check_tokens(tgt_in, "tgt_in", config_.max_tgt_len, "max_tgt_len");
  Var x = embed_source(src);                                                        // (B, S, E)
  Var y = embed_target(tgt_in, 0);                                                  // (B, T, E)
  Var out = transformer->forward(x, y, {.src_key_padding_mask = Var(src_pad),
                                        .tgt_key_padding_mask = tgt_pad.defined() ? Var(tgt_pad) : Var(),
                                        .memory_key_padding_mask = Var(src_pad), .tgt_is_causal = true});
  return head->forward(out);
}

Var Seq2Seq::loss(const Tensor& src, const Tensor& src_pad, const Tensor& tgt_in, const Tensor& tgt_out,
                  const Tensor& tgt_pad, double label_smoothing) {
  TG_CHECK(tgt_out.shape() == tgt_in.shape(), "Seq2Seq", "tgt_out must have tgt_in's shape; got tgt_in=",
           to_string(tgt_in.shape()), ", tgt_out=", to_string(tgt_out.shape()));
  Var logits = forward(src, src_pad, tgt_in, tgt_pad);
  const int64_t n = tgt_in.numel();
  return cross_entropy(reshape(logits, {n, config_.vocab_size}), tgt_out.reshape({n}), kPad, Reduction::mean,
                       label_smoothing);
}

Var Seq2Seq::decode(const Tensor& tgt, const Var& memory, const Tensor& src_pad) {
  check_tokens(tgt, "tgt", config_.max_tgt_len, "max_tgt_len");
  Var out = transformer->decoder->forward(embed_target(tgt, 0), memory,
                                          {.memory_key_padding_mask = Var(src_pad), .tgt_is_causal = true});
  return head->forward(out);
}

Var Seq2Seq::decode_step(const Tensor& tokens, const Var& memory, const Tensor& src_pad,
                         TransformerDecoder::Cache& cache) {
  check_tokens(tokens, "tokens", config_.max_tgt_len, "max_tgt_len");
  NoGradGuard no_grad;
  Var y = embed_target(tokens, cache.length());
  Var out = transformer->decoder->forward_step(y, memory, cache, {.memory_key_padding_mask = Var(src_pad)});
  return head->forward(out);
}

}  // namespace tg::seq2seq
