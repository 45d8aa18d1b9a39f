#pragma once
// What tiny_lm accepts: the size limits of a model configuration and of a run, the memory a run is
// estimated to need, and the error type of a bad command line (tiny_lm exits with status 2 on it).
// The limits exist so that no flag and no checkpoint /config can overflow a size computation, make
// the program build layers for minutes, or ask for more memory than the machine has.
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

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

// A command-line value that tiny_lm refuses, e.g.
// "[tiny_lm train] --batch-size must be in [1, 1048576]; got --batch-size=0". tiny_lm exits with 2.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Throws UsageError "[command] <flag> must be <rule>; got <flag>=<value>" unless ok.
template <class T>
void require_flag(bool ok, const char* command, const char* flag, const std::string& rule, const T& value) {
  if (ok) return;
  std::ostringstream os;
  os << '[' << command << "] " << flag << " must be " << rule << "; got " << flag << '=' << value;
  throw UsageError(os.str());
}

// Checks an integer flag against [lo, hi] (inclusive), naming the flag (the rule reads ">= lo" when hi
// is INT64_MAX).
void require_in_range(const char* command, const char* flag, int64_t value, int64_t lo, int64_t hi);

// Parses a seed strictly: decimal digits only, in [0, 2^64 - 1] (a negative number, a sign, spaces or
// trailing characters throw UsageError naming the flag).
uint64_t parse_seed(const std::string& text, const char* command, const char* flag);

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
