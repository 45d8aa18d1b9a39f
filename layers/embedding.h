#pragma once
// Embedding: a lookup table of num_embeddings vectors of size embedding_dim (torch.nn.Embedding).
//
//   tg::Embedding emb({.num_embeddings = 100, .embedding_dim = 16, .padding_idx = 0});
//   tg::Var y = emb.forward(tokens);   // int64 tokens [*] -> y [*, 16]
//
// Parameter (state_dict key as PyTorch): weight() [num_embeddings, embedding_dim], read from the Module
// registry (replace it with set_parameter("weight", v), see layers/module.h). The Generator is only
// drawn from during construction / reset_parameters and is not kept.
// Initialisation as PyTorch 1.13: weight ~ N(0, 1), then the padding_idx row is set to zero.
// The padding row receives no gradient (it may still be changed by load_state_dict).
// Not supported: max_norm, norm_type, scale_grad_by_freq, sparse.
#include <cstdint>
#include <optional>

#include "tapegrad/framework/dtype.h"
#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tape.h"
#include "tapegrad/layers/module.h"

namespace tg {

struct EmbeddingOptions {
  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx = std::nullopt;   // negative counts from the end, as PyTorch
  // Throws std::invalid_argument naming the field, e.g.
  // "[Embedding] padding_idx must be within num_embeddings=10; got padding_idx=10".
  void validate() const;
};

class Embedding : public Module {
 public:
  // Throws std::invalid_argument for invalid options or a non-floating dtype. A negative padding_idx
  // is normalised (padding_idx + num_embeddings) and stored so in options(), as PyTorch does.
  explicit Embedding(EmbeddingOptions options, Generator gen = default_generator(), DType dtype = DType::Float32);

  // indices: int64 [*] (any rank, 0-d included) -> [*, embedding_dim] in the weight's dtype.
  // Throws std::invalid_argument, prefixed "[Embedding <path>]", for non-int64 indices or an index
  // outside [0, num_embeddings) (the message gives the index, its position and the indices' shape).
  Var forward(const Tensor& indices) const;

  // Redraws weight ~ N(0, 1) in place and zeroes the padding row, as PyTorch's reset_parameters().
  void reset_parameters(Generator gen = default_generator());

  const EmbeddingOptions& options() const { return options_; }

  const Var& weight() const { return *weight_; }   // [num_embeddings, embedding_dim]

 private:
  EmbeddingOptions options_;
  const Var* weight_ = nullptr;   // the registry entry (follows set_parameter)
};

}  // namespace tg
