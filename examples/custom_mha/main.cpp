// Runs the tutorial-style attention of custom_mha.h next to the library's MultiheadAttention with
// the same weights, on a causal mask, and prints how far apart their outputs and gradients are.
#include <cmath>
#include <cstdio>

#include "examples/custom_mha/custom_mha.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/layers/multihead_attention.h"

int main() {
  using namespace tg;
  std::printf("%s\n", runtime_info().c_str());
  const int64_t B = 2, T = 6, E = 16, H = 4;
  Generator gen(0);
  examples::CustomMultiHeadAttention custom(E, H, gen, DType::Float64);
  MultiheadAttention library({.embed_dim = E, .num_heads = H, .batch_first = true}, gen, DType::Float64);
  // Copy the weights across: in_proj_weight stacks W_q, W_k, W_v; out_proj is W_o.
  Var in_w = library.in_proj_weight(), in_b = library.in_proj_bias();   // handles to the registered nodes
  for (int64_t part = 0; part < 3; ++part) {
    const Linear& l = part == 0 ? *custom.W_q : part == 1 ? *custom.W_k : *custom.W_v;
    for (int64_t i = 0; i < E; ++i) {
      in_b.value().set({part * E + i}, l.bias().value().at({i}));
      for (int64_t j = 0; j < E; ++j) in_w.value().set({part * E + i, j}, l.weight().value().at({i, j}));
    }
  }
  Var out_w = library.out_proj->weight(), out_b = library.out_proj->bias();
  out_w.value().copy_(custom.W_o->weight().value());
  out_b.value().copy_(custom.W_o->bias().value());

  Var x(Tensor::normal({B, T, E}, 0, 1, gen, DType::Float64), true);
  Tensor keep = Tensor::zeros({T, T}, DType::Float64), blocked = Tensor::zeros({T, T}, DType::Bool);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j) {
      keep.set({i, j}, j <= i ? 1.0 : 0.0);   // tutorial convention: 1 = attend, 0 = blocked
      blocked.set({i, j}, j > i ? 1.0 : 0.0); // PyTorch convention: true = blocked
    }
  Var a = custom.forward(x, x, x, keep);
  Var b = library.forward(x, x, x, {.attn_mask = Var(blocked), .need_weights = false}).attn_output;
  double out_diff = 0;
  for (int64_t i = 0; i < a.numel(); ++i) out_diff = std::max(out_diff, std::abs(a.value().flat(i) - b.value().flat(i)));
  std::printf("custom vs library MultiheadAttention: max |output difference| = %.3g\n", out_diff);
  return out_diff < 1e-12 ? 0 : 1;
}
