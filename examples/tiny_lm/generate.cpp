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

CachedDecoder::CachedDecoder(TinyLM& model) : model_(model), cache_(model.make_cache()) {}

std::vector<std::vector<double>> CachedDecoder::next_logits(const std::vector<std::vector<int64_t>>& context) {
  const char* op = "CachedDecoder";
  TG_CHECK(!context.empty() && !context[0].empty(), op, "the context must hold at least one row of at least one ",
           "token; got ", context.size(), " rows of length ", context.empty() ? 0 : context[0].size());
  const size_t rows = context.size();
  const int64_t len = static_cast<int64_t>(context[0].size()), block = model_.config().block_size;
  for (const auto& row : context)
    TG_CHECK(static_cast<int64_t>(row.size()) == len, op, "the rows must have equal lengths; got ", len, " and ",
             row.size());
  const bool first = window_.empty();
  if (!first) {
    const int64_t fed = window_start_ + static_cast<int64_t>(window_[0].size());
    TG_CHECK(rows == window_.size(), op, "the number of rows must stay ", window_.size(), "; got ", rows);
    TG_CHECK(len > fed, op, "the context must extend the ", fed, " tokens already fed; got length ", len);
    for (size_t r = 0; r < rows; ++r)
      TG_CHECK(std::equal(window_[r].begin(), window_[r].end(), context[r].begin() + window_start_), op, "row ", r,
               " differs from the tokens already fed at ", window_start_, "..", fed - 1);
  }
  if (first || len - window_start_ > block) {
    // (Re-)prime: the last block_size tokens at first (the uncached window), later the last
    // block_size / 2, at positions 0.. of an emptied cache.
    const int64_t keep = std::min(len, first ? block : std::max<int64_t>(1, block / 2));
    window_start_ = len - keep;
    window_.assign(rows, {});
    for (auto& layer : cache_.layers) layer.reset();
    reprimes_ += first ? 0 : 1;
  }
  // The tokens not fed yet, context[r][from .. len), as one step: (rows, S) -> logits (rows, S, V).
  const int64_t from = window_start_ + static_cast<int64_t>(window_[0].size()), S = len - from;
  Tensor tokens({static_cast<int64_t>(rows), S}, DType::Int64);
  for (size_t r = 0; r < rows; ++r) {
    std::copy(context[r].begin() + from, context[r].end(), tokens.data<int64_t>() + static_cast<int64_t>(r) * S);
    window_[r].insert(window_[r].end(), context[r].begin() + from, context[r].end());
  }
  Tensor logits = model_.forward_step(tokens, cache_).value();
  const int64_t V = logits.size(2);
  std::vector<std::vector<double>> out(rows, std::vector<double>(static_cast<size_t>(V)));
  for (size_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < V; ++v)
      out[r][static_cast<size_t>(v)] = logits.flat((static_cast<int64_t>(r) * S + S - 1) * V + v);
  return out;
}

std::vector<std::vector<int64_t>> greedy_complete(TinyLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                                  int64_t n) {
  if (prompts.empty() || n <= 0) return std::vector<std::vector<int64_t>>(prompts.size());
  std::vector<std::vector<int64_t>> context = prompts, added(prompts.size());
  CachedDecoder decoder(model);
  for (int64_t step = 0; step < n; ++step) {
    auto logits = decoder.next_logits(context);
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
  // Cached: the window scheme of generate.h; uncached: the last block_size tokens, recomputed.
  std::vector<std::vector<int64_t>> context{std::move(prompt)};
  CachedDecoder decoder(model);
  std::vector<int64_t> out;
  for (int64_t step = 0; step < n; ++step) {
    std::vector<double> z = use_cache ? std::move(decoder.next_logits(context)[0]) : last_logits(model, context)[0];
    const int64_t pick = pick_token(std::move(z), temperature, top_k, gen);
    context[0].push_back(pick);
    out.push_back(pick);
  }
  return out;
}

}  // namespace tg::tiny_lm
