#pragma once
// Text generation with the tiny language model (no cache: each step runs the last block_size tokens).
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
std::vector<int64_t> sample_tokens(TinyLM& model, std::vector<int64_t> prompt, int64_t n, double temperature,
                                   int64_t top_k, Generator& gen);

}  // namespace tg::tiny_lm
