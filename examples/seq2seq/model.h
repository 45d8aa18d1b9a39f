#pragma once
// The seq2seq model: tg::Transformer (encoder-decoder, batch_first) between token + learned positional
// embeddings and a linear output head.
//   memory = transformer.encoder(src_emb(src) + src_pos(arange(S)), src_key_padding_mask = src_pad)
//   out    = transformer.decoder(tgt_emb(tgt) + tgt_pos(arange(T)), memory, causal tgt mask,
//                                tgt_key_padding_mask = tgt_pad, memory_key_padding_mask = src_pad)
//   logits = head(out)                                    (B, T, vocab_size)
// Parameter names: src_emb.weight, tgt_emb.weight, src_pos.weight, tgt_pos.weight, transformer.*,
// head.* (PyTorch's state_dict keys for the same nn.Module tree).
#include <cstdint>
#include <memory>
#include <string>

#include "tapegrad/layers/embedding.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/module.h"
#include "tapegrad/layers/transformer.h"

namespace tg::seq2seq {

struct Seq2SeqConfig {
  int64_t vocab_size;
  int64_t max_src_len = 32;          // rows of src_pos
  int64_t max_tgt_len = 16;          // rows of tgt_pos (BOS + target + room)
  int64_t d_model = 64;
  int64_t nhead = 4;
  int64_t num_encoder_layers = 2;
  int64_t num_decoder_layers = 2;
  int64_t dim_feedforward = 256;
  double dropout = 0.0;
  bool norm_first = true;
  // Throws std::invalid_argument "[Seq2Seq] <field> must be ...; got <field>=<value>".
  void validate() const;
};

std::string config_to_json(const Seq2SeqConfig& c);
Seq2SeqConfig config_from_json(const std::string& json);   // throws nlohmann::json errors on bad text

class Seq2Seq : public Module {
 public:
  // Embeddings and head drawn from gen with PyTorch's default initialisers (the transformer: nn.Transformer's
  // xavier pass); dropout masks come from gen's stream (the layers keep handles).
  explicit Seq2Seq(Seq2SeqConfig config, Generator gen = default_generator(), DType dtype = DType::Float32);

  // Teacher forcing: src (B, S), tgt_in (B, T) int64; src_pad (B, S), tgt_pad (B, T) bool (true = padding;
  // tgt_pad may be undefined). Returns logits (B, T, vocab_size). Throws std::invalid_argument for a
  // length past max_src_len / max_tgt_len or tokens of the wrong dtype/rank.
  Var forward(const Tensor& src, const Tensor& src_pad, const Tensor& tgt_in, const Tensor& tgt_pad = Tensor());
  // Mean cross-entropy against tgt_out (B, T) int64, kPad ignored (PyTorch's ignore_index), with
  // label_smoothing as torch.nn.functional.cross_entropy's.
  Var loss(const Tensor& src, const Tensor& src_pad, const Tensor& tgt_in, const Tensor& tgt_out,
           const Tensor& tgt_pad = Tensor(), double label_smoothing = 0.0);

  // The encoder's output memory (B, S, d_model) for decoding.
  Var encode(const Tensor& src, const Tensor& src_pad);
  // The decoder on a whole target prefix (uncached): tgt (B, T) -> logits (B, T, vocab_size).
  Var decode(const Tensor& tgt, const Var& memory, const Tensor& src_pad);
  // One cached decoding step (inference, no tape): tokens (B, 1) at position cache.length() ->
  // logits (B, 1, vocab_size); the memory's cross-attention keys/values are projected into the cache
  // on the first step only. Equals decode()'s last row. Throws std::invalid_argument past max_tgt_len.
  Var decode_step(const Tensor& tokens, const Var& memory, const Tensor& src_pad, TransformerDecoder::Cache& cache);
  TransformerDecoder::Cache make_cache() const { return transformer->decoder->make_cache(config_.max_tgt_len); }

  // The encoder's input: src_emb(src) + src_pos(arange(S)), (B, S, d_model). Throws as forward for src.
  Var embed_source(const Tensor& src);
  // The decoder's input for target positions start .. start + T - 1: tgt_emb(tgt) + tgt_pos(positions),
  // (B, T, d_model). Throws std::invalid_argument past max_tgt_len.
  Var embed_target(const Tensor& tgt, int64_t start);

  const Seq2SeqConfig& config() const { return config_; }

  std::shared_ptr<Embedding> src_emb, tgt_emb, src_pos, tgt_pos;
  std::shared_ptr<Transformer> transformer;
  std::shared_ptr<Linear> head;

 private:
  Seq2SeqConfig config_;
};

}  // namespace tg::seq2seq
