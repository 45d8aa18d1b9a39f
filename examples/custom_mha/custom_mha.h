#pragma once
// How to write your own model with tapegrad: the multi-head attention that tutorials teach, from
// basic ops, in one short file. Compare with layers/multihead_attention.h, the library's
// PyTorch-compatible layer (which runs a fused kernel); both give the same numbers when their
// weights are the same (tests/examples/custom_mha_test.cpp shows it).
#include <cmath>
#include <memory>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/module.h"

namespace tg::examples {

class CustomMultiHeadAttention : public Module {
 public:
  CustomMultiHeadAttention(int64_t d_model, int64_t num_heads, Generator gen = default_generator(),
                           DType dtype = DType::Float32)
      : d_model_(d_model), num_heads_(num_heads), d_k_(d_model / num_heads) {
    TG_CHECK(d_model % num_heads == 0, "CustomMultiHeadAttention", "d_model must be divisible by num_heads; got d_model=",
             d_model, ", num_heads=", num_heads);
    auto linear = [&](const char* name) {
      return register_module(name, std::make_shared<Linear>(LinearOptions{.in_features = d_model, .out_features = d_model}, gen, dtype));
    };
    W_q = linear("W_q");
    W_k = linear("W_k");
    W_v = linear("W_v");
    W_o = linear("W_o");
  }

  // q, k, v: (B, T, d_model). mask: optional bool tensor broadcastable to (B, num_heads, Tq, Tk),
  // where false (0) means "blocked", as in the tutorials. Returns (B, Tq, d_model).
  Var forward(const Var& q, const Var& k, const Var& v, const Tensor& mask = Tensor()) {
    Var Q = split_heads(W_q->forward(q)), K = split_heads(W_k->forward(k)), V = split_heads(W_v->forward(v));
    Var scores = matmul(Q, transpose(K, -2, -1)) / std::sqrt(static_cast<double>(d_k_));   // (B, H, Tq, Tk)
    if (mask.defined()) scores = masked_fill(scores, blocked(mask), -1e9);
    Var attention = softmax(scores, -1);
    return W_o->forward(combine_heads(matmul(attention, V)));
  }

  std::shared_ptr<Linear> W_q, W_k, W_v, W_o;

 private:
  // (B, T, d_model) -> (B, H, T, d_k)
  Var split_heads(const Var& x) const {
    return transpose(reshape(x, {x.size(0), x.size(1), num_heads_, d_k_}), 1, 2);
  }
  // (B, H, T, d_k) -> (B, T, d_model)
  Var combine_heads(const Var& x) const {
    return reshape(transpose(x, 1, 2), {x.size(0), x.size(2), d_model_});
  }
  // The tutorial's `mask == 0`.
  static Tensor blocked(const Tensor& mask) {
    Tensor b(mask.shape(), DType::Bool);
    for (int64_t i = 0; i < mask.numel(); ++i) b.set_flat(i, mask.flat(i) == 0.0);
    return b;
  }

  int64_t d_model_, num_heads_, d_k_;
};

}  // namespace tg::examples
