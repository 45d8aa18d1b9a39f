#include "tapegrad/layers/embedding.h"

#include <stdexcept>
#include <string>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/layers/init.h"

namespace tg {
void EmbeddingOptions::validate() const {
  TG_CHECK(num_embeddings > 0, "Embedding", "num_embeddings must be positive; got num_embeddings=", num_embeddings);
  TG_CHECK(embedding_dim > 0, "Embedding", "embedding_dim must be positive; got embedding_dim=", embedding_dim);
  if (padding_idx)
    TG_CHECK(*padding_idx >= -num_embeddings && *padding_idx < num_embeddings, "Embedding",
             "padding_idx must be within num_embeddings=", num_embeddings, "; got padding_idx=", *padding_idx);
}

Embedding::Embedding(EmbeddingOptions options, Generator gen, DType dtype) : options_(options) {
  options_.validate();
  TG_CHECK(is_floating(dtype), "Embedding", "dtype must be float32 or float64; got dtype=", to_string(dtype));
  if (options_.padding_idx && *options_.padding_idx < 0) *options_.padding_idx += options_.num_embeddings;
  weight_ = &register_parameter("weight", Tensor::zeros({options_.num_embeddings, options_.embedding_dim}, dtype));
  reset_parameters(gen);
}

void Embedding::reset_parameters(Generator gen) {
  Var w = weight();   // a handle to the registered node, updated in place
  w.value().copy_(init::normal(w.shape(), 0.0, 1.0, gen, w.dtype()));
  if (options_.padding_idx) {
    Tensor row = w.value().rows(*options_.padding_idx, *options_.padding_idx + 1);   // a view
    row.zero_();
  }
}

Var Embedding::forward(const Tensor& indices) const {
  const std::string op = error_op("Embedding");
  TG_CHECK(indices.defined(), op.c_str(), "indices are undefined");
  TG_CHECK(indices.dtype() == DType::Int64, op.c_str(), "indices must be int64; got indices=", describe(indices));
  const int64_t* idx = indices.data<int64_t>();
  for (int64_t i = 0; i < indices.numel(); ++i)
    TG_CHECK(idx[i] >= 0 && idx[i] < options_.num_embeddings, op.c_str(), "index out of range [0, num_embeddings=",
             options_.num_embeddings, "); got index ", idx[i], " at flat position ", i, ", indices=",
             to_string(indices.shape()));
  try {
    return embedding(weight(), indices, options_.padding_idx);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[" + op + "] " + e.what());
  }
}

}  // namespace tg
