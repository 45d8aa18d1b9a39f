// MultiheadAttention: parameters and initialisation as PyTorch's, fused (need_weights=false) vs
// composite (need_weights=true) paths, tapegrad's documented improvements over PyTorch, dropout.
#include <cmath>
#include <limits>

#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/multihead_attention.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<std::pair<std::string, Shape>> layout(const Module& m) {
  std::vector<std::pair<std::string, Shape>> out;
  for (const auto& [name, t] : m.state_dict()) out.emplace_back(name, t.shape());
  return out;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.to_vector()) m = std::max(m, std::abs(x));
  return m;
}
}  // namespace

TEST_CASE("MultiheadAttention: parameter names, shapes and order equal PyTorch's state_dict", "[mha]") {
  Generator gen(1);
  MultiheadAttention packed({.embed_dim = 8, .num_heads = 2, .add_bias_kv = true}, gen);
  REQUIRE(packed.packed());
  REQUIRE(layout(packed) == std::vector<std::pair<std::string, Shape>>{{"in_proj_weight", {24, 8}}, {"in_proj_bias", {24}},
                                                                      {"bias_k", {1, 1, 8}}, {"bias_v", {1, 1, 8}},
                                                                      {"out_proj.weight", {8, 8}}, {"out_proj.bias", {8}}});
  MultiheadAttention sep({.embed_dim = 8, .num_heads = 2, .kdim = 5, .vdim = 7}, gen);
  REQUIRE(!sep.packed());
  REQUIRE(layout(sep) == std::vector<std::pair<std::string, Shape>>{{"q_proj_weight", {8, 8}}, {"k_proj_weight", {8, 5}},
                                                                   {"v_proj_weight", {8, 7}}, {"in_proj_bias", {24}},
                                                                   {"out_proj.weight", {8, 8}}, {"out_proj.bias", {8}}});
  MultiheadAttention nobias({.embed_dim = 8, .num_heads = 2, .bias = false}, gen);
  REQUIRE(layout(nobias) == std::vector<std::pair<std::string, Shape>>{{"in_proj_weight", {24, 8}}, {"out_proj.weight", {8, 8}}});
  MultiheadAttention q3({.embed_dim = 8, .num_heads = 2, .qdim = 3}, gen);
  REQUIRE(layout(q3)[0] == std::pair<std::string, Shape>{"q_proj_weight", {8, 3}});
  // kdim = vdim = embed_dim given explicitly is still the packed layout, as in PyTorch.
  REQUIRE(MultiheadAttention({.embed_dim = 8, .num_heads = 2, .kdim = 8, .vdim = 8}, gen).packed());
}

TEST_CASE("MultiheadAttention: initialisation follows PyTorch's distributions", "[mha]") {
  Generator gen(2);
  const int64_t E = 64;
  MultiheadAttention mha({.embed_dim = E, .num_heads = 4, .add_bias_kv = true}, gen, DType::Float64);
  double xavier = std::sqrt(6.0 / (E + 3 * E));   // one (3E, E) matrix, not per chunk
  REQUIRE(max_abs(mha.in_proj_weight().value()) <= xavier);
  REQUIRE(max_abs(mha.in_proj_weight().value()) > 0.95 * xavier);
  REQUIRE(max_abs(mha.out_proj->weight().value()) <= 1.0 / std::sqrt(double(E)));
  REQUIRE(max_abs(mha.out_proj->weight().value()) > 0.9 / std::sqrt(double(E)));
  REQUIRE(max_abs(mha.in_proj_bias().value()) == 0.0);
  REQUIRE(max_abs(mha.out_proj->bias().value()) == 0.0);
  // bias_k ~ xavier_normal on (1, 1, E): std = 1/sqrt(E).
  Tensor bk = mha.bias_k().value();
  double var = 0;
  for (double x : bk.to_vector()) var += x * x / double(E);
  REQUIRE(std::sqrt(var) == Approx(1.0 / std::sqrt(double(E))).epsilon(0.3));
  MultiheadAttention sep({.embed_dim = 8, .num_heads = 2, .kdim = 24}, gen, DType::Float64);
  REQUIRE(max_abs(sep.q_proj_weight().value()) <= std::sqrt(6.0 / 16));
  REQUIRE(max_abs(sep.k_proj_weight().value()) <= std::sqrt(6.0 / 32));
  Generator a(7), b(7);
  MultiheadAttention m1({.embed_dim = 8, .num_heads = 2}, a), m2({.embed_dim = 8, .num_heads = 2}, b);
  REQUIRE(m1.in_proj_weight().value().bit_equal(m2.in_proj_weight().value()));
}

TEST_CASE("MultiheadAttention: fused path (need_weights=false) equals the composite path in output and gradients", "[mha]") {
  struct Config { MultiheadAttentionOptions o; bool kpm, mask, unbatched; };
  std::vector<Config> configs = {
      {{.embed_dim = 12, .num_heads = 3}, false, false, false},
      {{.embed_dim = 12, .num_heads = 3, .batch_first = true}, true, true, false},
      {{.embed_dim = 12, .num_heads = 2, .add_bias_kv = true, .add_zero_attn = true}, true, true, false},
      {{.embed_dim = 12, .num_heads = 4, .kdim = 5, .vdim = 7}, false, true, false},
      {{.embed_dim = 12, .num_heads = 3}, true, true, true},
  };
  for (const Config& c : configs) {
    Generator gen(3);
    MultiheadAttention mha(c.o, gen, DType::Float64);
    const bool bf = c.o.batch_first && !c.unbatched;
    auto shape = [&](int64_t T, int64_t F) { return c.unbatched ? Shape{T, F} : bf ? Shape{2, T, F} : Shape{T, 2, F}; };
    Var q = rand_var(shape(3, 12), 1), k = rand_var(shape(4, c.o.kdim.value_or(12)), 2), v = rand_var(shape(4, c.o.vdim.value_or(12)), 3);
    Tensor kpm_t = Tensor::zeros(c.unbatched ? Shape{4} : Shape{2, 4}, DType::Bool);
    kpm_t.set_flat(1, 1.0);
    Var kpm = c.kpm ? Var(kpm_t) : Var();
    Var am = c.mask ? rand_var({3, 4}, 4) : Var();
    std::vector<Tensor> results[2];
    for (int need = 0; need < 2; ++need) {
      for (Var x : {q, k, v, am}) if (x.defined()) x.zero_grad();
      mha.zero_grad();
      auto out = mha.forward(q, k, v, kpm, need == 1, am);
      REQUIRE(out.attn_weights.defined() == (need == 1));
      out.attn_output.backward(rand_tensor(out.attn_output.shape(), 5));
      results[need] = {out.attn_output.value(), q.grad(), k.grad(), v.grad()};
      if (am.defined()) results[need].push_back(am.grad());
      for (auto& [n, p] : mha.named_parameters()) results[need].push_back(p.grad());
    }
    for (size_t i = 0; i < results[0].size(); ++i) REQUIRE(max_abs_diff(results[0][i], results[1][i]) < 1e-12);
  }
}

TEST_CASE("MultiheadAttention: weights are batch-major, averaged or per head, and rows sum to 1", "[mha]") {
  Generator gen(4);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2, .add_zero_attn = true, .batch_first = true}, gen, DType::Float64);
  Var q = rand_var({2, 3, 8}, 1), kv = rand_var({2, 5, 8}, 2);
  auto avg = mha.forward(q, kv, kv);
  REQUIRE(avg.attn_weights.shape() == Shape{2, 3, 6});   // S' = S + 1 (zero attention)
  auto per = mha.forward(q, kv, kv, {.average_attn_weights = false});
  REQUIRE(per.attn_weights.shape() == Shape{2, 2, 3, 6});
  REQUIRE(max_abs_diff(mean(per.attn_weights, {1}).value(), avg.attn_weights.value()) < 1e-15);
  Tensor rows = sum(avg.attn_weights, {-1}).value();
  REQUIRE(max_abs_diff(rows, Tensor::ones(rows.shape(), DType::Float64)) < 1e-14);
  auto unb = mha.forward(rand_var({3, 8}, 3), rand_var({5, 8}, 4), rand_var({5, 8}, 5), {.average_attn_weights = false});
  REQUIRE(unb.attn_output.shape() == Shape{3, 8});
  REQUIRE(unb.attn_weights.shape() == Shape{2, 3, 6});
}

TEST_CASE("MultiheadAttention beyond PyTorch: (N, L, S), (1, L, S) and (N, H, L, S) masks broadcast over heads", "[mha]") {
  Generator gen(5);
  const int64_t N = 2, H = 3, L = 3, S = 4;
  MultiheadAttention mha({.embed_dim = 6, .num_heads = H}, gen, DType::Float64);
  Var q = rand_var({L, N, 6}, 1), k = rand_var({S, N, 6}, 2), v = rand_var({S, N, 6}, 3);
  Tensor m = rand_tensor({N, L, S}, 4, -3, 1);
  Tensor rep({N * H, L, S}, DType::Float64);   // PyTorch's layout: repeat_interleave over heads
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < S; ++j) rep.set({n * H + h, i, j}, m.at({n, i, j}));
  Tensor ref = mha.forward(q, k, v, {.attn_mask = Var(rep)}).attn_output.value();
  REQUIRE(max_abs_diff(mha.forward(q, k, v, {.attn_mask = Var(m)}).attn_output.value(), ref) < 1e-15);
  REQUIRE(max_abs_diff(mha.forward(q, k, v, {.attn_mask = Var(rep.reshape({N, H, L, S})), .need_weights = false}).attn_output.value(), ref) < 1e-14);
  Tensor one = m.rows(0, 1).clone();   // (1, L, S): the same mask for every batch element
  Tensor tiled({N, L, S}, DType::Float64);
  for (int64_t i = 0; i < tiled.numel(); ++i) tiled.set_flat(i, one.flat(i % (L * S)));
  REQUIRE(max_abs_diff(mha.forward(q, k, v, {.attn_mask = Var(one)}).attn_output.value(),
                       mha.forward(q, k, v, {.attn_mask = Var(tiled)}).attn_output.value()) < 1e-15);
}

TEST_CASE("MultiheadAttention beyond PyTorch: is_causal without a mask builds the causal mask", "[mha]") {
  Generator gen(6);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2, .batch_first = true}, gen, DType::Float64);
  Var x = rand_var({2, 5, 8}, 1);
  Var explicit_mask(causal_mask(5, 5, DType::Float64));
  for (bool need : {false, true}) {
    Tensor a = mha.forward(x, x, x, {.need_weights = need, .is_causal = true}).attn_output.value();
    Tensor b = mha.forward(x, x, x, {.attn_mask = explicit_mask, .need_weights = need}).attn_output.value();
    REQUIRE(max_abs_diff(a, b) < 1e-14);
    REQUIRE(max_abs_diff(a, mha.forward(x, x, x, {.need_weights = need}).attn_output.value()) > 1e-3);
  }
  // With a mask, the mask is used as given (is_causal is only a hint).
  Var none(Tensor::zeros({5, 5}, DType::Float64));
  REQUIRE(max_abs_diff(mha.forward(x, x, x, {.attn_mask = none, .need_weights = false, .is_causal = true}).attn_output.value(),
                       mha.forward(x, x, x).attn_output.value()) < 1e-14);
}

TEST_CASE("MultiheadAttention beyond PyTorch: fully masked rows give out_proj.bias, zero weights, finite grads", "[mha][grad]") {
  Generator gen(7);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2}, gen, DType::Float64);
  Var(mha.out_proj->bias()).value().copy_(rand_tensor({8}, 9));
  Var q = rand_var({3, 2, 8}, 1), k = rand_var({4, 2, 8}, 2), v = rand_var({4, 2, 8}, 3);
  Tensor kpm = Tensor::zeros({2, 4}, DType::Bool);
  for (int64_t j = 0; j < 4; ++j) kpm.set({1, j}, 1.0);          // batch 1: all padding
  Tensor am = Tensor::zeros({3, 4}, DType::Float64);
  for (int64_t j = 0; j < 4; ++j) am.set({0, j}, -kInf);         // query 0: every key blocked
  for (bool need : {false, true}) {
    mha.zero_grad();
    auto out = mha.forward(q, k, v, Var(kpm), need, Var(am));
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t c = 0; c < 8; ++c) {
        REQUIRE(out.attn_output.value().at({i, 1, c}) == mha.out_proj->bias().value().at({c}));
        REQUIRE(out.attn_output.value().at({0, 0, c}) == mha.out_proj->bias().value().at({c}));
      }
    if (need)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 4; ++j) REQUIRE(out.attn_weights.value().at({1, i, j}) == 0.0);
    out.attn_output.backward(rand_tensor(out.attn_output.shape(), 4));
    for (auto& [n, p] : mha.named_parameters())
      for (double g : p.grad().to_vector()) REQUIRE(std::isfinite(g));
  }
}

TEST_CASE("MultiheadAttention: dropout acts on the weights in training mode only", "[mha]") {
  Generator gen(8);
  MultiheadAttention mha({.embed_dim = 16, .num_heads = 4, .dropout = 0.3, .batch_first = true}, gen, DType::Float64);
  Var x = rand_var({8, 32, 16}, 1);
  mha.eval();
  auto ev = mha.forward(x, x, x);
  auto ev2 = mha.forward(x, x, x);
  REQUIRE(ev.attn_output.value().bit_equal(ev2.attn_output.value()));
  mha.train();
  auto tr = mha.forward(x, x, x, {.average_attn_weights = false});
  REQUIRE(max_abs_diff(tr.attn_output.value(), ev.attn_output.value()) > 1e-3);
  // Post-dropout weights: a fraction p of exact zeros, the rest scaled by 1/(1-p), so the mean is kept.
  std::vector<double> w = tr.attn_weights.value().to_vector();
  double zeros = 0, mean_w = 0;
  for (double x : w) {
    zeros += x == 0.0;
    mean_w += x / double(w.size());
  }
  REQUIRE(zeros / double(w.size()) == Approx(0.3).margin(0.02));
  REQUIRE(mean_w == Approx(1.0 / 32).epsilon(0.03));
  // need_weights=false (fused kernel) draws the same masks from the same stream position.
  GeneratorState s = gen.state();
  Tensor fused = mha.forward(x, x, x, {.need_weights = false}).attn_output.value();
  gen.set_state(s);
  Tensor composite = mha.forward(x, x, x, {.need_weights = true}).attn_output.value();
  REQUIRE(max_abs_diff(fused, composite) < 1e-13);
}
