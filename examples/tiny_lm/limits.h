#pragma once
// What tiny_lm accepts: the size limits of a model configuration and of a run, the memory a run is
// estimated to need, and the error type of a bad command line (tiny_lm exits with status 2 on it).
// The limits exist so that no flag and no checkpoint /config can overflow a size computation, make
// the program build layers for minutes, or ask for more memory than the machine has.
#include <cstdint>
#include <string>

#include "examples/common/cli.h"
#include "examples/tiny_lm/model.h"

namespace tg::tiny_lm {

constexpr int64_t kMaxParameters = int64_t{1} << 31;   // parameters of a model (8 GiB of float32 weights)
constexpr int64_t kMaxLayers = 1024;                    // n_layer
constexpr int64_t kMaxWidth = int64_t{1} << 16;         // n_embd and block_size
constexpr int64_t kMaxFeedForward = int64_t{1} << 20;   // dim_feedforward
constexpr int64_t kMaxVocabSize = int64_t{1} << 20;     // vocab_size (tiny_lm's byte vocabulary has <= 256)
constexpr int64_t kMaxBatchSize = int64_t{1} << 20;     // sequences per batch (train and eval)
constexpr int64_t kMaxThreads = 1024;                   // --threads
constexpr int64_t kMaxSampleTokens = int64_t{1} << 20;  // sample --tokens

// The command-line checks of examples/common/cli.h (UsageError: tiny_lm exits with 2), by their
// tiny_lm names.
using tg::examples::parse_seed;
using tg::examples::require_flag;
using tg::examples::require_in_range;
using tg::examples::require_min_lr;
using tg::examples::UsageError;

// The exact number of parameters TinyLM(config) registers, computed in floating point so that no
// configuration can overflow it (equals tg::parameter_count(TinyLM(config)) whenever the model can be
// built).
double parameter_count(const TinyLMConfig& config);

// Estimated peak bytes of a float32 training run: weights, gradients and both AdamW moments, plus
// the activations kept for backward of a batch of batch_size x block_size tokens. An estimate meant
// to catch impossible runs before anything is allocated, not an exact figure.
double training_bytes(const TinyLMConfig& config, int64_t batch_size);

// Estimated peak bytes of evaluating a batch of batch_size x block_size tokens without gradients.
double inference_bytes(const TinyLMConfig& config, int64_t batch_size);

// The memory this process may use: physical memory, or the cgroup limit when that is lower.
double memory_limit_bytes();

// "12.3 GiB".
std::string format_gib(double bytes);

// A count held in a double, in full digits ("2147483904", "4.61169e+24" past 2^63).
std::string format_count(double n);

}  // namespace tg::tiny_lm
