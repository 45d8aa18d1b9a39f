// AttentionCache's in-place buffers: many steps (past every capacity doubling, in steps of 1 and of 5)
// still equal the full causal attention, keys()/values() hold exactly the projected positions in
// batch-major order, earlier keys() snapshots are not disturbed by later appends, and max_length bounds
// the buffers without refusing a step that fits.
#include "support/test_support.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/layers/attention_cache.h"
#include "tapegrad/layers/multihead_attention.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

// The k (which = 1) or v (which = 2) projection of every position of x, batch-major (N, T, E) (packed weights).
Tensor projected(MultiheadAttention& mha, const Var& x, int64_t which, bool batch_first) {
  const int64_t E = mha.options().embed_dim;
  Var y = linear(x, narrow(mha.in_proj_weight(), 0, which * E, E), narrow(mha.in_proj_bias(), 0, which * E, E));
  return (batch_first ? y : permute(y, {1, 0, 2})).value();
}

}  // namespace

TEST_CASE("AttentionCache: 41 positions in steps of 1 and 5 grow the buffers and equal the full attention",
          "[cache]") {
  for (bool bf : {false, true})
    for (bool same : {true, false})
      for (int64_t N : {1, 3}) {
        INFO("batch_first=" << bf << " same input=" << same << " N=" << N);
        Generator gen(31);
        MultiheadAttention mha({.embed_dim = 8, .num_heads = 2, .batch_first = bf}, gen, DType::Float64);
        const int64_t T = 41;
        Var x = rand_var(bf ? Shape{N, T, 8} : Shape{T, N, 8}, 32, -1, 1, false);
        Var full = mha.forward(x, x, x, {.need_weights = false, .is_causal = true}).attn_output;
        AttentionCache cache = AttentionCache::self_attention();   // unbounded: grows 16 -> 32 -> 64
        Tensor snapshot;
        for (int64_t t = 0; t < T;) {
          const int64_t len = t >= 14 && t < 24 ? 5 : 1;   // 5-position steps across the first doubling
          Var xt = narrow(x, bf ? 1 : 0, t, len);
          // One Var for q, k, v takes the one-product projection; equal copies take one product each.
          Var kv = same ? xt : Var(xt.value().clone());
          Var y = mha.forward_step(xt, kv, kv, cache);
          REQUIRE(max_abs_diff(y.value(), narrow(full, bf ? 1 : 0, t, len).value()) < 1e-12);
          t += len;
          REQUIRE(cache.length() == t);
          if (t == 10) snapshot = cache.keys().clone();
          if (t == 10) REQUIRE(cache.keys().shape() == Shape{N, 10, 8});
        }
        REQUIRE(cache.batch_size() == N);
        REQUIRE(max_abs_diff(cache.keys(), projected(mha, x, 1, bf)) < 1e-12);
        REQUIRE(max_abs_diff(cache.values(), projected(mha, x, 2, bf)) < 1e-12);
        REQUIRE(narrow(Var(cache.keys()), 1, 0, 10).value().bit_equal(snapshot));
      }
}

TEST_CASE("AttentionCache: a bounded cache fills exactly to max_length and refuses one more position", "[cache]") {
  Generator gen(33);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 4, .batch_first = true}, gen, DType::Float32);
  Var x = rand_var({2, 21, 8}, 34, -1, 1, false, DType::Float32);
  Var full = mha.forward(x, x, x, {.need_weights = false, .is_causal = true}).attn_output;
  AttentionCache cache = AttentionCache::self_attention(20);
  for (int64_t t = 0; t < 20; ++t) {
    Var xt = narrow(x, 1, t, 1);
    REQUIRE(max_abs_diff(mha.forward_step(xt, xt, xt, cache).value(), narrow(full, 1, t, 1).value()) < 1e-5);
  }
  REQUIRE(cache.length() == 20);
  Var last = narrow(x, 1, 20, 1);
  REQUIRE_THROWS_WITH(mha.forward_step(last, last, last, cache),
                      Contains("the step would pass the cache's max_length=20; got cached=20"));
  REQUIRE(cache.length() == 20);
  cache.reset();
  REQUIRE(cache.empty());
  REQUIRE(cache.length() == 0);
  REQUIRE(!cache.keys().defined());
}

TEST_CASE("AttentionCache: copies step apart (one per beam hypothesis), before and after the buffers grow, and a "
          "keys() view keeps its positions", "[cache]") {
  // Cache a takes x; b, a copy taken after P positions, takes y from there on. Each step's output must be
  // the full causal attention's row of its own sequence: x, or x[0, P) then y. b steps first at every
  // position, so a then writes where the buffers it shares with b already hold b's row.
  const int64_t T = 24;
  for (int64_t N : {1, 3})
    for (int64_t max_length : {int64_t{0}, T})
      for (int64_t P : {1, 7, 16, 19}) {
        INFO("N=" << N << " max_length=" << max_length << " fork after P=" << P);
        Generator gen(35);
        MultiheadAttention mha({.embed_dim = 8, .num_heads = 2}, gen, DType::Float64);
        Var x = rand_var({T, N, 8}, 36, -1, 1, false), y = rand_var({T, N, 8}, 37, -1, 1, false);
        Var xb = concat({narrow(x, 0, 0, P), narrow(y, 0, P, T - P)}, 0);
        const auto full = [&](const Var& s) {
          return mha.forward(s, s, s, {.need_weights = false, .is_causal = true}).attn_output.value();
        };
        const Tensor full_a = full(x), full_b = full(xb);
        const auto row = [](const Tensor& t, int64_t i) { return narrow(Var(t), 0, i, 1).value(); };
        const auto step = [&](AttentionCache& c, const Var& s, int64_t i) {
          Var st = narrow(s, 0, i, 1);
          return mha.forward_step(st, st, st, c).value();
        };
        AttentionCache a = AttentionCache::self_attention(max_length);
        for (int64_t t = 0; t < P; ++t) step(a, x, t);
        AttentionCache b = a;
        for (int64_t t = P; t < T; ++t) {
          REQUIRE(max_abs_diff(step(b, xb, t), row(full_b, t)) < 1e-12);
          REQUIRE(max_abs_diff(step(a, x, t), row(full_a, t)) < 1e-12);
        }
        REQUIRE(max_abs_diff(a.keys(), projected(mha, x, 1, false)) < 1e-12);
        REQUIRE(max_abs_diff(b.keys(), projected(mha, xb, 1, false)) < 1e-12);
      }
  // A view of a fork's keys (N = 1) outlives the fork: the original, stepping past the fork point, must not
  // write into it.
  Generator gen(38);
  MultiheadAttention mha({.embed_dim = 8, .num_heads = 2}, gen, DType::Float64);
  Var x = rand_var({4, 1, 8}, 39, -1, 1, false), y = rand_var({4, 1, 8}, 40, -1, 1, false);
  AttentionCache a = AttentionCache::self_attention();
  Var x0 = narrow(x, 0, 0, 2), y2 = narrow(y, 0, 2, 1), x2 = narrow(x, 0, 2, 1);
  mha.forward_step(x0, x0, x0, a);
  Tensor view, seen;
  {
    AttentionCache fork = a;
    mha.forward_step(y2, y2, y2, fork);
    view = fork.keys();
    seen = view.clone();
  }
  mha.forward_step(x2, x2, x2, a);
  REQUIRE(view.bit_equal(seen));
  REQUIRE(max_abs_diff(a.keys(), narrow(Var(projected(mha, x, 1, false)), 1, 0, 3).value()) < 1e-12);
}
