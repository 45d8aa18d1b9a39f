#pragma once
// Text generation with the tiny language model. greedy_complete recomputes the last block_size tokens
// each step; sample_tokens decodes with the KV cache (TinyLM::forward_step) by default.
#include <cstdint>
#include <vector>

#include "examples/tiny_lm/model.h"
#include "tapegrad/framework/random.h"

namespace tg::tiny_lm {

// Greedy completion of equal-length prompts as one batch: the n new tokens of each prompt.
std::vector<std::vector<int64_t>> greedy_complete(TinyLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                                  int64_t n);

// n tokens sampled after `prompt` from softmax(logits / temperature), restricted to the top_k most
// likely tokens when top_k > 0; draws come from gen (seeded: the same seed gives the same text).
// Throws std::invalid_argument for a temperature that is not finite and positive, n < 0, top_k < 0 or
// an empty prompt.
// Each step conditions on the last block_size tokens at positions 0.. (as forward() does). With
// use_cache the prompt primes a TinyLM::Cache and each new token is one cached step, while the context
// fits in block_size; once it is longer the window shifts every step (new positions for every token),
// so those steps recompute the window uncached (same tokens, the uncached speed). use_cache = false
// recomputes every step; both give the same tokens for the same seed (up to rounding in the logits).
std::vector<int64_t> sample_tokens(TinyLM& model, std::vector<int64_t> prompt, int64_t n, double temperature,
                                   int64_t top_k, Generator& gen, bool use_cache = true);

}  // namespace tg::tiny_lm
