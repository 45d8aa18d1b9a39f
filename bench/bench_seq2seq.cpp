// Training steps of the seq2seq example's default configuration (the model, AdamW groups, schedule,
// clipping, label smoothing and batch of `seq2seq train`), timed per step: prints the median ms/step
// and tokens/s (source + target tokens, padding excluded, of the timed batches).
//   bench_seq2seq [--threads N] [--iters K]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "examples/seq2seq/training_state.h"
#include "tapegrad/framework/runtime.h"

int main(int argc, char** argv) {
  using namespace tg::seq2seq;
  TrainOptions o;
  int iters = 40;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads") && std::atoi(argv[i + 1]) >= 1) o.threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench_seq2seq [--threads N] [--iters K]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || o.threads < 1 || iters < 1) {
    std::fprintf(stderr, "usage: bench_seq2seq [--threads N] [--iters K]  (N, K >= 1)\n");
    return 2;
  }
  tg::set_num_threads(o.threads);
  std::printf("%s\n", tg::runtime_info().c_str());
  TrainingState s(o);
  // Warm-up: at least 5 steps and 0.5 s, then `iters` timed steps (batches drawn outside the timing).
  std::vector<double> ms;
  double tokens = 0;
  const auto warm_start = std::chrono::steady_clock::now();
  for (int it = 0;; ++it) {
    const bool warm = it >= 5 && std::chrono::steady_clock::now() - warm_start > std::chrono::milliseconds(500);
    if (warm && static_cast<int>(ms.size()) == iters) break;
    std::vector<Example> examples;
    for (int64_t i = 0; i < o.batch_size; ++i) examples.push_back(draw_train_example(s.data_gen));
    const Batch b = make_batch(examples);
    const auto t0 = std::chrono::steady_clock::now();
    s.train_step(b);
    if (!warm) continue;
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    for (const Example& e : examples) tokens += static_cast<double>(e.source.size() + e.target.size() + 1);
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double med = sorted[sorted.size() / 2];
  const double tokens_per_step = tokens / static_cast<double>(ms.size());
  std::printf("seq2seq d_model %lld, nhead %lld, %lld+%lld layers, ff %lld, batch %lld, %lld parameters\n",
              static_cast<long long>(o.d_model), static_cast<long long>(o.nhead),
              static_cast<long long>(o.num_encoder_layers), static_cast<long long>(o.num_decoder_layers),
              static_cast<long long>(o.dim_feedforward), static_cast<long long>(o.batch_size),
              static_cast<long long>(tg::parameter_count(s.model)));
  std::printf("%.2f ms/step  %.0f tokens/s  (%.0f tokens/step, threads %d, median of %d)\n", med,
              tokens_per_step / med * 1e3, tokens_per_step, o.threads, iters);
}
