// Training iterations of the tiny-LM default configuration (the model, AdamW groups, schedule,
// clipping and batch of `tiny_lm train`), timed per iteration: prints the median ms/iter,
// tokens/s and peak resident memory, then the useful GFLOP/s of a step (causal-aware, bench/flops.h)
// and its fraction of the sgemm peak measured in the same run — after the training steps and after
// reading the peak memory, so that the peak's 2048^2 matrices (48 MB) do not count as the step's memory.
//   bench_train [--threads N] [--iters K] [--data FILE] [--precision f32|bf16] [--no-peak]
//   (default data: the built-in corpus; --precision bf16: autocast as tiny_lm train --precision bf16, and
//   the bf16 GEMM peak measured after the sgemm peak adds "% of the bf16 peak"; --no-peak: skip both peaks,
//   for profiling;
//   the PyTorch peer uses ../shared/data/tinyshakespeare.txt)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "bench/flops.h"
#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/train.h"
#include "tapegrad/framework/runtime.h"

int main(int argc, char** argv) {
  using namespace tg::tiny_lm;
  TrainOptions o;
  int iters = 60;
  bool measure_peak = true;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--no-peak")) measure_peak = false;
    else if (has_value && !std::strcmp(argv[i], "--threads") && std::atoi(argv[i + 1]) >= 1)
      o.threads = std::atoi(argv[++i]);
    else if (has_value && !std::strcmp(argv[i], "--iters") && std::atoi(argv[i + 1]) >= 1) iters = std::atoi(argv[++i]);
    else if (has_value && !std::strcmp(argv[i], "--data")) o.data = argv[++i];
    else if (has_value && !std::strcmp(argv[i], "--precision")) o.precision = tg::parse_precision(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: bench_train [--threads N] [--iters K] [--data FILE] [--precision f32|bf16] [--no-peak]\n");
      return 2;
    }
  }
  tg::set_num_threads(o.threads);
  std::printf("%s\n", tg::runtime_info().c_str());
  const Corpus corpus = training_corpus(o);
  const TinyLMConfig config = model_config(o, corpus.vocab.size());
  TrainingState s(config, o, corpus);
  // Warm-up: at least 5 steps and 0.5 s (thread pool, allocator cache and CPU clocks settle), then
  // `iters` timed steps.
  std::vector<double> ms;
  const auto warm_start = std::chrono::steady_clock::now();
  for (int it = 0;; ++it) {
    const bool warm = it >= 5 && std::chrono::steady_clock::now() - warm_start > std::chrono::milliseconds(500);
    if (warm && static_cast<int>(ms.size()) == iters) break;
    auto t0 = std::chrono::steady_clock::now();
    s.train_iteration(o.grad_clip);   // includes drawing the batch's windows (12 random numbers)
    if (warm) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("tiny-LM %lld layers, %lld heads, %lld wide, context %lld, batch %lld, %lld parameters, data %s\n",
              static_cast<long long>(o.n_layer), static_cast<long long>(o.n_head), static_cast<long long>(o.n_embd),
              static_cast<long long>(o.block_size), static_cast<long long>(o.batch_size),
              static_cast<long long>(parameter_count(s.model)), corpus.name.c_str());
  // The best step beside the median: on a machine shared with others the gap between them shows how
  // much the run was disturbed.
  std::printf("%.2f ms/iter  %.0f tokens/s  peak memory %.1f MB  (threads %d, median of %d, best %.2f ms, precision %s)\n",
              med, static_cast<double>(o.batch_size * o.block_size) / med * 1e3, ru.ru_maxrss / 1024.0, o.threads, iters,
              ms.front(), tg::to_string(o.precision).c_str());
  const tg::bench::GemmPeak peak = tg::bench::sgemm_peak_for_run(measure_peak);
  const tg::bench::GemmPeak bf16_peak =
      tg::bench::bf16_peak_for_run(measure_peak && o.precision == tg::Precision::bf16);
  // A step is the forward and backward of the model on one batch (AdamW and clipping not counted).
  const double step_flops = tg::bench::forward_backward_flops(tg::bench::transformer_forward_flops(
      config.n_layer, o.batch_size, o.block_size, config.n_embd, config.ff(), config.vocab_size, true));
  std::printf("useful %.3f GFLOP/step: %s\n", step_flops / 1e9,
              tg::bench::rate_text(step_flops, med, peak, bf16_peak).c_str());
}
