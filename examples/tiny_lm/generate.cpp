#include "examples/tiny_lm/generate.h"

#include <algorithm>
#include <cmath>

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
                                   int64_t top_k, Generator& gen) {
  TG_CHECK(std::isfinite(temperature) && temperature > 0, "sample", "temperature must be finite and positive; got temperature=",
           temperature);
  TG_CHECK(n >= 0, "sample", "the number of tokens must be >= 0; got n=", n);
  TG_CHECK(top_k >= 0, "sample", "top_k must be >= 0 (0: all tokens); got top_k=", top_k);
  TG_CHECK(!prompt.empty(), "sample", "the prompt must not be empty");
  std::vector<int64_t> out;
  for (int64_t step = 0; step < n; ++step) {
    std::vector<double> z = last_logits(model, {prompt})[0];
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
    int64_t pick = static_cast<int64_t>(z.size()) - 1;
    for (size_t i = 0; i < z.size(); ++i) {
      acc += z[i];
      if (u < acc && z[i] > 0) {
        pick = static_cast<int64_t>(i);
        break;
      }
    }
    prompt.push_back(pick);
    out.push_back(pick);
  }
  return out;
}

}  // namespace tg::tiny_lm
