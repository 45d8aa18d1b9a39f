#pragma once
// Data for the tiny language model: a byte-level vocabulary, corpora split 90/10 into train and
// validation as nanoGPT does, a random-window batch sampler with a savable random stream, and the
// built-in arithmetic corpus (no download needed; its learning is measured by exact-match accuracy).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tensor.h"

namespace tg::tiny_lm {

// The sorted distinct bytes of a text; token i is the i-th byte.
class Vocabulary {
 public:
  Vocabulary() = default;
  static Vocabulary from_text(const std::string& text);
  const std::string& chars() const { return chars_; }   // what checkpoints store
  int64_t size() const { return static_cast<int64_t>(chars_.size()); }
  // Throws std::invalid_argument naming the first byte not in the vocabulary and its offset.
  std::vector<int64_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int64_t>& tokens) const;

 private:
  std::string chars_;
  int16_t index_[256] = {};
};

struct Corpus {
  std::string name;            // the file, or "built-in arithmetic"
  Vocabulary vocab;
  std::vector<int64_t> train;  // first 90% of the tokens
  std::vector<int64_t> val;    // last 10%
};

// The bytes of a regular file, read through one descriptor (one version of the file, also when another
// is renamed over it meanwhile; a FIFO is refused without blocking in open). Throws std::runtime_error
// "<path>: cannot read the <what>: <the OS's reason>" (or "not a regular file": a device such as
// /dev/zero would never end).
std::string read_regular_file(const std::string& path, const std::string& what);
// read_regular_file(path, "data file").
std::string read_text_file(const std::string& path);

// Reads a text file; throws std::runtime_error naming the file when it cannot be read or is too short.
Corpus load_corpus(const std::string& path);

// "a+b=c" facts, zero-padded to a fixed width ("07+45=052\n"), in a seeded random order, for
// a, b in [0, 99]; the validation tenth holds facts the model never trains on.
Corpus arithmetic_corpus(uint64_t seed = 0);
constexpr int64_t kFactWidth = 10;      // "07+45=052\n"
constexpr int64_t kFactPrompt = 6;      // "07+45="

// Random windows of block_size + 1 tokens: x = window[:-1], y = window[1:] (nanoGPT's get_batch).
// Its only state is its random stream, which checkpoints save.
class BatchSampler {
 public:
  BatchSampler(const std::vector<int64_t>* data, int64_t batch_size, int64_t block_size, uint64_t seed);
  std::pair<Tensor, Tensor> next();   // int64 (B, T) each; = batch(draw_starts(batch_size))

  // Gradient accumulation: the window starts of `micro_batches` consecutive micro-batches
  // (micro_batches * batch_size draws; micro-batch m owns starts [m * B, (m + 1) * B)), so a process
  // that computes only micro-batch m draws them all and keeps its own: the stream advances alike
  // everywhere, and one micro-batch equals next().
  std::vector<uint64_t> draw_starts(int64_t micro_batches);
  // The (B, T) int64 inputs and targets of micro-batch m of `starts` (from draw_starts).
  std::pair<Tensor, Tensor> batch(const std::vector<uint64_t>& starts, int64_t m) const;
  Generator& generator() { return gen_; }
  const Generator& generator() const { return gen_; }

 private:
  const std::vector<int64_t>* data_;
  int64_t batch_size_, block_size_;
  Generator gen_;
};

}  // namespace tg::tiny_lm
