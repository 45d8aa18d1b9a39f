#include "examples/tiny_lm/generate.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "tapegrad/framework/check.h"

namespace tg::tiny_lm {
namespace {

// Logits of the last position for each row of `context` (rows of equal length), as doubles.
std::vector<std::vector<double>> last_logits(TinyLM& model, const std::vector<std::vector<int64_t>>& context) {
  const int64_t rows = static_cast<int64_t>(context.size());
  const int64_t T = std::min<int64_t>(static_cast<int64_t>(context[0].size()), model.config().block_size);
  Tensor tokens({rows, T}, DType::Int64);
  for (int64_t r = 0; r < rows; ++r) {
    const auto& c = context[static_cast<size_t>(r)];
    std::copy(c.end() - T, c.end(), tokens.data<int64_t>() + r * T);
  }
  NoGradGuard no_grad;
  Tensor logits = model.forward(tokens).value();   // (rows, T, V)
  const int64_t V = logits.size(2);
  std::vector<std::vector<double>> out(static_cast<size_t>(rows), std::vector<double>(static_cast<size_t>(V)));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < V; ++v) out[static_cast<size_t>(r)][static_cast<size_t>(v)] = logits.flat((r * T + T - 1) * V + v);
  return out;
}

// Feeds the tokens of `context` past the cache's length as one step (the whole prompt at first, then the
// one new token) and returns the logits of the last position; context.size() <= block_size.
std::vector<double> cached_last_logits(TinyLM& model, TinyLM::Cache& cache, const std::vector<int64_t>& context) {
  const int64_t start = cache.length(), S = static_cast<int64_t>(context.size()) - start;
  Tensor tokens({1, S}, DType::Int64);
  std::copy(context.begin() + start, context.end(), tokens.data<int64_t>());
  Tensor logits = model.forward_step(tokens, cache).value();   // (1, S, V)
  const int64_t V = logits.size(2);
  std::vector<double> out(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) out[static_cast<size_t>(v)] = logits.flat((S - 1) * V + v);
  return out;
}

// One token drawn from softmax(z / temperature) restricted to the top_k largest (top_k = 0: all).
int64_t pick_token(std::vector<double> z, double temperature, int64_t top_k, Generator& gen) {
  // Shift by the largest logit before dividing: with a tiny temperature z / temperature overflows to
  // inf and inf - inf would be NaN; (z - max) / temperature is <= 0 and exp() stays defined.
  const double top = *std::max_element(z.begin(), z.end());
  for (double& v : z) v = (v - top) / temperature;
  if (top_k > 0 && top_k < static_cast<int64_t>(z.size())) {
    std::vector<double> sorted = z;
    std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(), std::greater<>());
    const double kth = sorted[static_cast<size_t>(top_k - 1)];
    for (double& v : z)
      if (v < kth) v = -INFINITY;
  }
  const double mx = *std::max_element(z.begin(), z.end());
  double total = 0;
  for (double& v : z) total += (v = std::exp(v - mx));
  double u = gen.next_double() * total, acc = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    acc += z[i];
    if (u < acc && z[i] > 0) return static_cast<int64_t>(i);
  }
  return static_cast<int64_t>(z.size()) - 1;
}

}  // namespace

std::vector<std::vector<int64_t>> greedy_complete(TinyLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                                  int64_t n) {
  if (prompts.empty()) return {};
  std::vector<std::vector<int64_t>> context = prompts, added(prompts.size());
  for (int64_t step = 0; step < n; ++step) {
    auto logits = last_logits(model, context);
    for (size_t r = 0; r < context.size(); ++r) {
      int64_t best = std::max_element(logits[r].begin(), logits[r].end()) - logits[r].begin();
      context[r].push_back(best);
      added[r].push_back(best);
    }
  }
  return added;
}

std::vector<int64_t> sample_tokens(TinyLM& model, std::vector<int64_t> prompt, int64_t n, double temperature,
                                   int64_t top_k, Generator& gen, bool use_cache) {
  TG_CHECK(std::isfinite(temperature) && temperature > 0, "sample", "temperature must be finite and positive; got temperature=",
           temperature);
  TG_CHECK(n >= 0, "sample", "the number of tokens must be >= 0; got n=", n);
  TG_CHECK(top_k >= 0, "sample", "top_k must be >= 0 (0: all tokens); got top_k=", top_k);
  TG_CHECK(!prompt.empty(), "sample", "the prompt must not be empty");
  // While the context fits in block_size the cached positions 0.. are the ones the full forward uses;
  // past it the window (and every position) shifts each step, so those steps recompute the window.
  TinyLM::Cache cache = model.make_cache();
  std::vector<int64_t> out;
  for (int64_t step = 0; step < n; ++step) {
    const bool fits = static_cast<int64_t>(prompt.size()) <= model.config().block_size;
    std::vector<double> z =
        use_cache && fits ? cached_last_logits(model, cache, prompt) : last_logits(model, {prompt})[0];
    const int64_t pick = pick_token(std::move(z), temperature, top_k, gen);
    prompt.push_back(pick);
    out.push_back(pick);
  }
  return out;
}

}  // namespace tg::tiny_lm
