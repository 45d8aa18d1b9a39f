// TinyLM's cached incremental decoding: forward_step logits equal the full forward's at every position
// (float64 and float32, tied and untied head, batch of 2), its misuse throws; CachedDecoder's logits equal an
// uncached forward of its window at every step, across re-primes; sample_tokens and greedy_complete with
// the cache: the uncached path's tokens within block_size, deterministic per seed past it, and greedy
// picks the argmax of each window's uncached forward.
#include "examples/tiny_lm/generate.h"
#include "support/test_support.h"
#include "tapegrad/framework/ops/shape.h"

using Catch::Matchers::Contains;
using namespace tg;
using namespace tg::test;
using namespace tg::tiny_lm;

namespace {

TinyLMConfig cache_config(bool tie) {
  return {.vocab_size = 13, .block_size = 9, .n_layer = 2, .n_head = 2, .n_embd = 8, .dim_feedforward = 12,
          .dropout = 0.2, .activation = Activation::gelu, .layer_norm_eps = 1e-5, .norm_first = true,
          .head_bias = true, .tie_weights = tie};
}

// (rows, T) int64 tokens, a fixed pattern different in each row.
Tensor token_grid(int64_t rows, int64_t T, int64_t vocab) {
  Tensor t({rows, T}, DType::Int64);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < T; ++i) t.data<int64_t>()[r * T + i] = (7 * i + 3 * r + i * i) % vocab;
  return t;
}

}  // namespace

TEST_CASE("TinyLM::forward_step: a primed prompt then single steps equal the full forward at each position",
          "[tiny_lm][cache]") {
  for (DType dt : {DType::Float64, DType::Float32})
    for (bool tie : {false, true}) {
      Generator gen(21);
      TinyLM model(cache_config(tie), gen, dt);
      model.init_weights(Generator(22));
      model.eval();
      const int64_t block = model.config().block_size;
      Tensor tokens = token_grid(2, block, model.config().vocab_size);
      Var full = model.forward(tokens);   // (2, block, V)
      const double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
      TinyLM::Cache cache = model.make_cache();
      int64_t t = 0;
      for (int64_t len : {3, 1, 2, 1, 1, 1}) {   // positions 0..8: prompt of 3, then steps
        model.train();   // the cached path never applies dropout, whatever the training flag
        Var y = model.forward_step(narrow(Var(tokens), 1, t, len).value(), cache);
        model.eval();
        REQUIRE(!y.requires_grad());
        REQUIRE(y.shape() == Shape{2, len, 13});
        REQUIRE(cache.length() == t + len);
        REQUIRE(max_abs_diff(y.value(), narrow(full, 1, t, len).value()) < tol);
        t += len;
      }
      REQUIRE(t == block);
    }
}

TEST_CASE("TinyLM::forward_step refuses positions past block_size, bad tokens and a foreign cache",
          "[tiny_lm][cache][errors]") {
  Generator gen(23);
  TinyLM model(cache_config(false), gen, DType::Float64);
  TinyLM::Cache cache = model.make_cache();
  REQUIRE(cache.layers.size() == 2);
  REQUIRE(cache.length() == 0);
  model.forward_step(token_grid(1, 8, 13), cache);
  REQUIRE_THROWS_WITH(model.forward_step(token_grid(1, 2, 13), cache),
                      Contains("[TinyLM] positions 8..9 exceed block_size=9; got cache length=8, step length=2"));
  REQUIRE(cache.length() == 8);
  REQUIRE_THROWS_WITH(model.forward_step(Tensor::zeros({1, 1}), cache), Contains("tokens_step must be int64 (B, S)"));
  REQUIRE_THROWS_WITH(model.forward_step(Tensor({1, 0}, DType::Int64), cache), Contains("with S >= 1"));
  TinyLM::Cache empty;
  REQUIRE_THROWS_WITH(model.forward_step(token_grid(1, 1, 13), empty),
                      Contains("the cache must come from make_cache(); got 0 layer caches for n_layer=2"));
}

namespace {

// The cache test model with larger weights than nanoGPT's 0.02, so that distributions are far from uniform.
void randomise(TinyLM& model, uint64_t seed) {
  Generator w(seed);
  for (auto& [name, p] : model.named_parameters())
    if (p.dim() == 2) p.value().copy_(Tensor::normal(p.shape(), 0.0, 0.5, w, p.dtype()));
  model.eval();
}

// forward() of context[r][start ..) for every row, at the last position: (rows, V) as doubles.
std::vector<std::vector<double>> window_logits(TinyLM& model, const std::vector<std::vector<int64_t>>& context,
                                               int64_t start) {
  const int64_t rows = static_cast<int64_t>(context.size()), T = static_cast<int64_t>(context[0].size()) - start;
  Tensor tokens({rows, T}, DType::Int64);
  for (int64_t r = 0; r < rows; ++r)
    std::copy(context[static_cast<size_t>(r)].begin() + start, context[static_cast<size_t>(r)].end(),
              tokens.data<int64_t>() + r * T);
  Tensor y = model.forward(tokens).value();   // (rows, T, V)
  const int64_t V = y.size(2);
  std::vector<std::vector<double>> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < V; ++v) out[static_cast<size_t>(r)].push_back(y.flat((r * T + T - 1) * V + v));
  return out;
}

double max_diff(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  double m = 0;
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t v = 0; v < a[r].size(); ++v) m = std::max(m, std::abs(a[r][v] - b[r][v]));
  return m;
}

}  // namespace

TEST_CASE("CachedDecoder: logits equal an uncached forward of the same window at every step, across re-primes",
          "[tiny_lm][cache]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    Generator gen(26);
    TinyLM model(cache_config(false), gen, dt);
    randomise(model, 27);
    const double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    // Two rows (as greedy_complete feeds them); block_size = 9: the window restarts with the last 4 tokens
    // whenever a tenth would be needed. Tokens appended in a fixed pattern, one per step.
    std::vector<std::vector<int64_t>> context{{3, 1, 4}, {2, 7, 1}};
    CachedDecoder decoder(model);
    std::vector<int64_t> starts;
    for (int64_t step = 0; step < 24; ++step) {
      auto cached = decoder.next_logits(context);
      const int64_t len = static_cast<int64_t>(context[0].size());
      REQUIRE(len - decoder.window_start() <= 9);
      REQUIRE(len - decoder.window_start() >= std::min<int64_t>(len, 4));
      REQUIRE(max_diff(cached, window_logits(model, context, decoder.window_start())) < tol);
      starts.push_back(decoder.window_start());
      for (size_t r = 0; r < 2; ++r) context[r].push_back((5 * step + 3 * static_cast<int64_t>(r) + 1) % 13);
    }
    // Lengths 3..26: the window starts at 0 up to length 9, then re-primes at lengths 10, 16, 22 (at
    // length - 4) and grows to 9 tokens in between.
    REQUIRE(decoder.reprimes() == 3);
    REQUIRE(starts[6] == 0);
    REQUIRE(starts[7] == 6);
    REQUIRE(starts[12] == 6);
    REQUIRE(starts[13] == 12);
    REQUIRE(starts[19] == 18);
    REQUIRE(starts[23] == 18);
  }
}

TEST_CASE("CachedDecoder: a prompt longer than block_size primes with its last block_size tokens", "[tiny_lm][cache]") {
  Generator gen(28);
  TinyLM model(cache_config(true), gen, DType::Float64);
  randomise(model, 29);
  std::vector<std::vector<int64_t>> context{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}};
  CachedDecoder decoder(model);
  auto first = decoder.next_logits(context);
  REQUIRE(decoder.window_start() == 3);
  REQUIRE(max_diff(first, window_logits(model, context, 3)) < 1e-12);
  context[0].push_back(5);   // 10 tokens past the start: re-prime with the last 4
  auto second = decoder.next_logits(context);
  REQUIRE(decoder.window_start() == 9);
  REQUIRE(decoder.reprimes() == 1);
  REQUIRE(max_diff(second, window_logits(model, context, 9)) < 1e-12);
}

TEST_CASE("CachedDecoder refuses a context that does not extend what it fed", "[tiny_lm][cache][errors]") {
  Generator gen(30);
  TinyLM model(cache_config(false), gen, DType::Float64);
  CachedDecoder decoder(model);
  REQUIRE_THROWS_WITH(decoder.next_logits({}), Contains("[CachedDecoder] the context must hold at least one row"));
  REQUIRE_THROWS_WITH(decoder.next_logits({{1, 2}, {3}}), Contains("the rows must have equal lengths; got 2 and 1"));
  decoder.next_logits({{1, 2}, {3, 4}});
  REQUIRE_THROWS_WITH(decoder.next_logits({{1, 2}, {3, 4}}), Contains("must extend the 2 tokens already fed; got length 2"));
  REQUIRE_THROWS_WITH(decoder.next_logits({{1, 2, 5}}), Contains("the number of rows must stay 2; got 1"));
  REQUIRE_THROWS_WITH(decoder.next_logits({{1, 2, 5}, {3, 9, 5}}), Contains("row 1 differs from the tokens already fed at 0..1"));
  REQUIRE(decoder.next_logits({{1, 2, 5}, {3, 4, 5}}).size() == 2);
}

TEST_CASE("sample_tokens: the cached path draws the uncached path's tokens within block_size, is deterministic per seed "
          "past it", "[tiny_lm][cache]") {
  for (bool tie : {false, true}) {
    Generator gen(24);
    TinyLM model(cache_config(tie), gen, DType::Float64);
    randomise(model, 25);
    // Within block_size = 9 (prompt + n <= 9) both paths condition on the same tokens.
    for (const std::vector<int64_t>& prompt : {std::vector<int64_t>{4}, std::vector<int64_t>{1, 2, 3, 4, 5}})
      for (int64_t top_k : {0, 4}) {
        Generator a(7), b(7);
        const int64_t n = 9 - static_cast<int64_t>(prompt.size());
        const auto cached = sample_tokens(model, prompt, n, 1.0, top_k, a, true);
        REQUIRE(static_cast<int64_t>(cached.size()) == n);
        REQUIRE(cached == sample_tokens(model, prompt, n, 1.0, top_k, b, false));
      }
    // Past it (the last prompt is already longer than block_size): the same seed, the same text.
    const std::vector<std::vector<int64_t>> prompts{{4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}};
    for (const auto& prompt : prompts)
      for (int64_t top_k : {0, 4}) {
        Generator a(7), b(7), c(8);
        const auto cached = sample_tokens(model, prompt, 30, 1.0, top_k, a, true);
        REQUIRE(cached.size() == 30);
        REQUIRE(sample_tokens(model, prompt, 30, 1.0, top_k, b, true) == cached);
        // another seed draws another text: the comparison is not between constants
        REQUIRE(sample_tokens(model, prompt, 30, 1.0, top_k, c, true) != cached);
      }
  }
}

TEST_CASE("greedy_complete: the cached decoding picks the argmax of an uncached forward of each window",
          "[tiny_lm][cache]") {
  Generator gen(35);
  TinyLM model(cache_config(false), gen, DType::Float64);
  randomise(model, 36);
  const std::vector<std::vector<int64_t>> prompts{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}};
  const auto done = greedy_complete(model, prompts, 13);   // lengths 3..15: one re-prime at length 10
  REQUIRE(done.size() == 3);
  // Replay: the window of step s starts at 0 while the context fits, then at length 10 - 4 = 6.
  std::vector<std::vector<int64_t>> context = prompts;
  for (int64_t step = 0; step < 13; ++step) {
    const int64_t len = 3 + step, start = len <= 9 ? 0 : 6;
    auto z = window_logits(model, context, start);
    for (size_t r = 0; r < 3; ++r) {
      const int64_t best = std::max_element(z[r].begin(), z[r].end()) - z[r].begin();
      REQUIRE(done[r][static_cast<size_t>(step)] == best);
      context[r].push_back(best);
    }
  }
}
