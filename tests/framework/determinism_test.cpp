// Bitwise determinism across thread counts: the same inputs give the same bits with 1 and 2 threads.
#include <thread>

#include "examples/tiny_lm/model.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/layers/transformer_decoder.h"
#include "tapegrad/optim/adam.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

namespace {

// Forward + backward of a small MLP with softmax, layer_norm and sum, large enough that every
// kernel splits its work into several chunks; returns the loss, output and every gradient.
std::vector<Tensor> mlp_step(int threads) {
  set_num_threads(threads);
  Var x(rand_tensor({256, 96}, 1, -1, 1, DType::Float32), true);
  Var w1(rand_tensor({192, 96}, 2, -0.1, 0.1, DType::Float32), true), b1(rand_tensor({192}, 3, -0.1, 0.1, DType::Float32), true);
  Var w2(rand_tensor({64, 192}, 4, -0.1, 0.1, DType::Float32), true);
  Var g(rand_tensor({192}, 5, 0.5, 1.5, DType::Float32), true), be(rand_tensor({192}, 6, -0.5, 0.5, DType::Float32), true);
  Var h = layer_norm(gelu(linear(x, w1, b1)), {192}, g, be);
  Var p = softmax(linear(h, w2), -1);
  Var loss = sum(p * p) + mean(h);
  loss.backward();
  return {loss.value(), p.value(), x.grad(), w1.grad(), b1.grad(), w2.grad(), g.grad(), be.grad()};
}

// One tiny-LM training step (forward, backward, AdamW update) at the example's default width.
std::vector<Tensor> lm_step(int threads) {
  set_num_threads(threads);
  Generator gen(7);
  tiny_lm::TinyLM model({.vocab_size = 65, .block_size = 64, .n_layer = 2, .n_head = 4, .n_embd = 128}, gen);
  optim::AdamW opt(model.named_parameters(), {.lr = 1e-3});
  Tensor tokens({12, 64}, DType::Int64), targets({12, 64}, DType::Int64);
  for (int64_t i = 0; i < tokens.numel(); ++i) {
    tokens.set_flat(i, static_cast<double>((i * 7) % 65));
    targets.set_flat(i, static_cast<double>((i * 11 + 3) % 65));
  }
  Var loss = model.loss(tokens, targets);
  loss.backward();
  opt.step();
  std::vector<Tensor> out{loss.value()};
  for (const auto& [name, p] : model.named_parameters()) out.push_back(p.value());
  return out;
}

// One decoder training step (forward + backward of a 2-layer TransformerDecoder with causal and
// memory padding masks, dropout on) followed by cached decoding steps; outputs and every gradient.
std::vector<Tensor> decoder_run(uint64_t seed = 9) {
  Generator gen(seed);
  TransformerDecoder dec({.d_model = 64, .nhead = 4, .dim_feedforward = 128, .dropout = 0.1, .batch_first = true}, 2,
                         true, gen);
  Var tgt(rand_tensor({6, 24, 64}, 1, -1, 1, DType::Float32), true);
  Var mem(rand_tensor({6, 32, 64}, 2, -1, 1, DType::Float32), true);
  Tensor kpm = Tensor::zeros({6, 32}, DType::Bool);
  for (int64_t n = 0; n < 6; ++n) kpm.set({n, 31 - n}, 1.0);
  Var y = dec.forward(tgt, mem, {.memory_key_padding_mask = Var(kpm), .tgt_is_causal = true});
  Var loss = mean(y * y);
  loss.backward();
  std::vector<Tensor> out{loss.value(), y.value(), tgt.grad(), mem.grad()};
  for (const auto& [name, p] : dec.named_parameters()) out.push_back(p.grad());
  TransformerDecoder::Cache cache = dec.make_cache();
  for (int64_t t = 0; t < 4; ++t) {
    Var step(rand_tensor({6, 1, 64}, 10 + t, -1, 1, DType::Float32));
    out.push_back(dec.forward_step(step, Var(mem.value()), cache, {.memory_key_padding_mask = Var(kpm)}).value());
  }
  return out;
}

std::vector<Tensor> decoder_step(int threads) {
  set_num_threads(threads);
  return decoder_run();
}

}  // namespace

TEST_CASE("determinism: a TransformerDecoder training step and cached decoding steps are bitwise equal with 1 and 2 threads", "[determinism]") {
  require_same_bits_across_threads(decoder_step);
}

TEST_CASE("determinism: MLP, softmax, layer_norm and sum forward + backward are bitwise equal with 1 and 2 threads", "[determinism]") {
  require_same_bits_across_threads(mlp_step);
}

TEST_CASE("determinism: a tiny-LM training step is bitwise equal with 1 and 2 threads", "[determinism]") {
  require_same_bits_across_threads(lm_step);
}

TEST_CASE("determinism: two user threads training at once get the bits each gets alone", "[determinism]") {
  // Users train two models on two threads of their own (hyper-parameter sweeps): kernels, the TBB pool,
  // the allocator's cache and GEMM scratch are shared, each model's random stream is its own.
  set_num_threads(2);
  const std::vector<Tensor> alone_a = decoder_run(9), alone_b = decoder_run(10);
  std::vector<Tensor> a, b;
  std::thread other([&] { b = decoder_run(10); });
  a = decoder_run(9);
  other.join();
  require_bit_equal(a, alone_a);
  require_bit_equal(b, alone_b);
}
