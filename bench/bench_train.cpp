// Training iterations of the tiny-LM default configuration (the model, AdamW groups, schedule,
// clipping and batch of `tiny_lm train`), timed per iteration: prints the median ms/iter,
// tokens/s and peak resident memory.
//   bench_train [--threads N] [--iters K] [--data FILE] [--precision f32|bf16]   (default data: the built-in corpus;
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

#include "examples/tiny_lm/checkpointing.h"
#include "examples/tiny_lm/train.h"
#include "tapegrad/framework/runtime.h"

int main(int argc, char** argv) {
  using namespace tg::tiny_lm;
  TrainOptions o;
  int iters = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) o.threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--data")) o.data = argv[i + 1];
    else if (!std::strcmp(argv[i], "--precision")) o.precision = tg::parse_precision(argv[i + 1]);   // train_step's autocast
    else {
      std::fprintf(stderr, "usage: bench_train [--threads N] [--iters K] [--data FILE] [--precision f32|bf16]\n");
      return 2;
    }
  }
  tg::set_num_threads(o.threads);
  std::printf("%s\n", tg::runtime_info().c_str());
  const Corpus corpus = training_corpus(o);
  TrainingState s(model_config(o, corpus.vocab.size()), o, corpus);
  // Warm-up: at least 5 steps and 0.5 s (thread pool, allocator cache and CPU clocks settle), then
  // `iters` timed steps.
  std::vector<double> ms;
  const auto warm_start = std::chrono::steady_clock::now();
  for (int it = 0;; ++it) {
    const bool warm = it >= 5 && std::chrono::steady_clock::now() - warm_start > std::chrono::milliseconds(500);
    if (warm && static_cast<int>(ms.size()) == iters) break;
    auto [x, y] = s.train_batches.next();
    auto t0 = std::chrono::steady_clock::now();
    s.train_step(x, y, o.grad_clip);
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
  std::printf("%.2f ms/iter  %.0f tokens/s  peak memory %.1f MB  (threads %d, median of %d, precision %s)\n", med,
              static_cast<double>(o.batch_size * o.block_size) / med * 1e3, ru.ru_maxrss / 1024.0, o.threads, iters,
              tg::to_string(o.precision).c_str());
}
