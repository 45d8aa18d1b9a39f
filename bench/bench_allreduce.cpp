// The gradient all-reduce of data-parallel training: tg::dist::GradientAverager over the parameters of the
// tiny-LM default configuration (those of `tiny_lm train`), timed per average(). Prints the gradient bytes,
// the buckets, the bytes each rank sends per step and the median time per average() (the slowest rank's),
// then the cost model of the README's table for 8-64 ranks on 10-100 Gbit/s links:
//   t(K) = 2 (K-1)/K * gradient_bytes / bandwidth + buckets * 2 (K-1) * latency
// (per bucket: an all-to-all and an all-gather, K-1 messages each per rank).
//   mpirun -np 2 [--mca btl vader,self | --mca btl tcp,self] bench_allreduce [--iters N] [--bucket-bytes B]
//          [--data FILE] [--latency-us L]          (as root also --allow-run-as-root)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "examples/tiny_lm/train.h"
#include "tapegrad/distributed/distributed.h"
#include "tapegrad/framework/runtime.h"

namespace {

struct Options {
  int iters = 50;
  std::size_t bucket_bytes = 4u << 20;
  std::string data;
  double latency_us = 10.0;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--iters")) o.iters = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--bucket-bytes")) o.bucket_bytes = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--data")) o.data = argv[i + 1];
    else if (!std::strcmp(argv[i], "--latency-us")) o.latency_us = std::atof(argv[i + 1]);
    else return false;
  }
  return argc % 2 == 1;
}

// The README's table: milliseconds per all-reduce of `bytes` in `buckets` buckets.
void print_model(double bytes, std::size_t buckets, double latency_us) {
  std::printf("\nmodel: t(K) = 2(K-1)/K * %.0f B / bandwidth + %zu bucket(s) * 2(K-1) * %.0f us latency\n", bytes,
              buckets, latency_us);
  std::printf("ranks K | bytes sent per rank | 10 Gbit/s | 25 Gbit/s | 100 Gbit/s\n");
  for (int K : {2, 8, 16, 32, 64}) {
    const double sent = 2.0 * (K - 1) / K * bytes;
    std::printf("%7d | %13.2f MB    ", K, sent / 1e6);
    for (double gbit : {10.0, 25.0, 100.0}) {
      const double seconds = sent * 8 / (gbit * 1e9) + static_cast<double>(buckets) * 2 * (K - 1) * latency_us * 1e-6;
      std::printf("| %6.2f ms ", seconds * 1e3);
    }
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  tg::dist::Environment env(argc, argv);
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr, "usage: mpirun -np K bench_allreduce [--iters N] [--bucket-bytes B] [--data FILE] "
                         "[--latency-us L]\n");
    return 2;
  }
  const tg::dist::Communicator comm = tg::dist::Communicator::world();
  tg::set_num_threads(1);
  using namespace tg::tiny_lm;
  TrainOptions t;
  t.data = o.data;
  const Corpus corpus = training_corpus(t);
  TinyLM model(model_config(t, corpus.vocab.size()), tg::Generator(t.seed));
  std::vector<tg::Var> params = model.parameters();
  std::size_t grad_bytes = 0;
  tg::Generator gen(1000 + static_cast<uint64_t>(comm.rank()));
  for (tg::Var& p : params) {
    p.set_grad(tg::Tensor::normal(p.shape(), 0.0, 1.0, gen, p.dtype()));
    grad_bytes += p.value().nbytes();
  }
  tg::dist::GradientAverager averager(comm, params, o.bucket_bytes);
  std::vector<double> ms;
  for (int it = 0; it < o.iters + 3; ++it) {   // 3 warm-up calls
    comm.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    averager.average();
    const double elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (it >= 3) ms.push_back(elapsed);
  }
  std::sort(ms.begin(), ms.end());
  const std::vector<double> medians = comm.all_gather(ms[ms.size() / 2]);
  const double slowest = *std::max_element(medians.begin(), medians.end());
  if (comm.rank() != 0) return 0;
  std::printf("%s\n", tg::runtime_info().c_str());
  std::printf("tiny-LM default (data %s): %lld parameters, %zu gradient bytes, %zu bucket(s) of <= %zu bytes\n",
              corpus.name.c_str(), static_cast<long long>(tg::parameter_count(model)), grad_bytes, averager.buckets(),
              o.bucket_bytes);
  std::printf("ranks %d: bytes sent per average() per rank %zu (2(K-1)/K of the gradient = %.0f, + 24 B per peer)\n",
              comm.size(), averager.bytes_sent_per_call(),
              2.0 * (comm.size() - 1) / comm.size() * static_cast<double>(grad_bytes));
  std::printf("average(): median %.3f ms (slowest rank, %d calls), %.2f GB/s sent per rank\n", slowest, o.iters,
              static_cast<double>(averager.bytes_sent_per_call()) / (slowest * 1e-3) / 1e9);
  print_model(static_cast<double>(grad_bytes), averager.buckets(), o.latency_us);
}
