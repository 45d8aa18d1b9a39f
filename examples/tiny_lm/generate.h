#pragma once
// Text generation with the tiny language model: greedy completion and sampling, decoding with the KV
// cache (TinyLM::forward_step) by default.
//
// Context past block_size. The uncached path conditions each step on the last block_size tokens at
// positions 0.. (a sliding window, recomputed every step). A sliding window cannot be cached: every
// token's position changes at each step. The cached path instead keeps a window that starts at a fixed
// token: when the next token would not fit (the cache holds block_size positions), the cache is
// re-primed with the last block_size / 2 tokens of the context (at least one; positions restart at 0)
// in one forward_step, and decoding continues cached. So past block_size each step sees between
// block_size / 2 and block_size tokens of context, and one step in block_size / 2 costs a
// block_size / 2-token forward. Within block_size both paths condition on the same tokens.
#include <cstdint>
#include <vector>

#include "examples/tiny_lm/model.h"
#include "tapegrad/framework/random.h"

namespace tg::tiny_lm {

// The cached decoding state of equal-length rows of context: one TinyLM::Cache and the window it holds.
// next_logits(context) returns the next-token logits of each row given the context so far; each call's
// rows must extend the previous call's (usually by the one token picked after it). The logits equal
// model.forward() of context[r][window_start() .. end) at its last position (to rounding).
class CachedDecoder {
 public:
  explicit CachedDecoder(TinyLM& model);   // keeps a reference: model must outlive the decoder

  // context: rows of equal, non-zero length -> logits [rows][vocab_size]. Throws std::invalid_argument
  // when the rows are empty or of unequal length, their count differs from the first call's, or the
  // context does not extend the tokens already fed (shorter, or different in the cached window).
  std::vector<std::vector<double>> next_logits(const std::vector<std::vector<int64_t>>& context);

  // Context index of the first token of the window the last logits conditioned on (position 0).
  int64_t window_start() const { return window_start_; }
  int64_t reprimes() const { return reprimes_; }   // times the cache was emptied and refilled

 private:
  TinyLM& model_;
  TinyLM::Cache cache_;
  std::vector<std::vector<int64_t>> window_;   // per row: the tokens fed to the cache, context[start..)
  int64_t window_start_ = 0, reprimes_ = 0;
};

// Greedy completion of equal-length prompts as one batch: the n new tokens of each prompt. Decodes
// with a CachedDecoder (the window scheme above past block_size).
std::vector<std::vector<int64_t>> greedy_complete(TinyLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                                  int64_t n);

// n tokens sampled after `prompt` from softmax(logits / temperature), restricted to the top_k most
// likely tokens when top_k > 0; draws come from gen (seeded: the same seed gives the same text).
// Throws std::invalid_argument for a temperature that is not finite and positive, n < 0, top_k < 0 or
// an empty prompt.
// use_cache (default): a CachedDecoder, re-primed past block_size as described above. use_cache =
// false: the sliding window of the last block_size tokens, recomputed every step. Both condition on
// the same tokens, and so draw the same text for a seed (up to rounding in the logits), while
// prompt + n <= block_size; past it their contexts, and texts, differ.
std::vector<int64_t> sample_tokens(TinyLM& model, std::vector<int64_t> prompt, int64_t n, double temperature,
                                   int64_t top_k, Generator& gen, bool use_cache = true);

}  // namespace tg::tiny_lm
