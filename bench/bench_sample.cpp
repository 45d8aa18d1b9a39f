// Sampling speed of the tiny-LM default configuration, with and without the KV cache: `tiny_lm
// sample`'s decoding (sample_tokens, temperature 0.8, top-k 200) of 256 new tokens after a one-token
// prompt, cached and uncached runs alternating; prints the median tokens/s of each path and the median
// of the per-round ratios. The model has the default configuration (4 layers, 4 heads, 128 wide, the
// built-in corpus's vocabulary) with nanoGPT's random initialisation, or the weights of a checkpoint.
//   bench_sample [--threads N] [--block-size B] [--tokens T] [--runs R] [--checkpoint FILE]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/generate.h"
#include "examples/tiny_lm/train.h"
#include "tapegrad/framework/runtime.h"

namespace {

using namespace tg::tiny_lm;

struct BenchOptions {
  int threads = 2, runs = 5;
  int64_t block_size = 64, tokens = 256;
  std::string checkpoint;
};

bool parse(int argc, char** argv, BenchOptions& b) {
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) return false;
    if (!std::strcmp(argv[i], "--threads") && std::atoi(argv[i + 1]) >= 1) b.threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--block-size")) b.block_size = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--tokens")) b.tokens = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs")) b.runs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--checkpoint")) b.checkpoint = argv[i + 1];
    else return false;
  }
  return b.threads > 0 && b.runs > 0 && b.block_size > 0 && b.tokens > 0;
}

std::unique_ptr<TinyLM> make_model(const BenchOptions& b) {
  if (!b.checkpoint.empty()) {
    Vocabulary vocab;
    return load_model(b.checkpoint, &vocab);
  }
  TrainOptions o;
  o.block_size = b.block_size;
  const Corpus corpus = training_corpus(o);
  auto model = std::make_unique<TinyLM>(model_config(o, corpus.vocab.size()), tg::Generator(o.seed));
  model->init_weights(tg::Generator(o.seed + 1));
  return model;
}

// Tokens/s of one decoding run of `tokens` new tokens after a one-token prompt.
double tokens_per_s(TinyLM& model, const BenchOptions& b, bool use_cache, uint64_t seed) {
  tg::Generator gen(seed);
  const auto t0 = std::chrono::steady_clock::now();
  const auto out = sample_tokens(model, {0}, b.tokens, 0.8, 200, gen, use_cache);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(out.size()) / s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions b;
  if (!parse(argc, argv, b)) {
    std::fprintf(stderr, "usage: bench_sample [--threads N] [--block-size B] [--tokens T] [--runs R] [--checkpoint FILE]\n");
    return 2;
  }
  tg::set_num_threads(b.threads);
  std::printf("%s\n", tg::runtime_info().c_str());
  auto model = make_model(b);
  model->eval();
  const TinyLMConfig& c = model->config();
  std::printf("tiny-LM %lld layers, %lld heads, %lld wide, block_size %lld, vocab %lld, %s; %lld new tokens\n",
              static_cast<long long>(c.n_layer), static_cast<long long>(c.n_head), static_cast<long long>(c.n_embd),
              static_cast<long long>(c.block_size), static_cast<long long>(c.vocab_size),
              b.checkpoint.empty() ? "random init" : b.checkpoint.c_str(), static_cast<long long>(b.tokens));
  // Cached and uncached runs alternate (after one untimed warm-up of each), so that both see the same
  // load on a shared machine; the ratio is the median of the per-round ratios.
  tokens_per_s(*model, b, true, 1);
  tokens_per_s(*model, b, false, 1);
  std::vector<double> cached, uncached, ratio;
  for (int r = 0; r < b.runs; ++r) {
    cached.push_back(tokens_per_s(*model, b, true, 1337 + static_cast<uint64_t>(r)));
    uncached.push_back(tokens_per_s(*model, b, false, 1337 + static_cast<uint64_t>(r)));
    ratio.push_back(cached.back() / uncached.back());
  }
  std::printf("cached   %.0f tokens/s\nuncached %.0f tokens/s\nratio    %.2fx  (threads %d, medians of %d alternating runs)\n",
              median(cached), median(uncached), median(ratio), b.threads, b.runs);
}
