// float32 GEMM GFLOP/s of tapegrad's own AVX2 / AVX-512 kernel (kernels/sgemm.h) and of the OpenBLAS path
// (kernels::gemm_openblas, the row-block split of single-threaded cblas_sgemm calls), side by side,
// with 1 and 2 threads. The two are timed alternately, sample by sample, so load from other processes
// hits both alike; each figure is the median of the samples.
//   bench_sgemm [SAMPLES]           square n = 256..2048, C = A @ B
//   bench_sgemm --shapes [SAMPLES]  the products tapegrad runs in the gpt-cpu / mid / long benchmarks
//   bench_sgemm --print-core        only the OpenBLAS core tapegrad runs on (e.g. "Haswell"), for
//                                   bench/compare.sh to run the peers on the same one
// Without AVX2 + FMA the tapegrad column shows "-". Run with OPENBLAS_CORETYPE=PRESCOTT
// to see what Debian's OpenBLAS would use on its own on this CPU.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "framework/kernels/gemm.h"
#include "framework/kernels/parallel.h"
#include "framework/kernels/sgemm.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/framework/tensor.h"

namespace {

struct Shape {
  const char* what;
  bool ta, tb;
  int64_t M, N, K;
  int64_t batch = 1;   // > 1: independent products, one single-threaded call each (as the attention kernel)
};

// The products of MultiheadAttention and the training step (Linear: y = x W^T, dX = dY W, dW = dY^T X).
const std::vector<Shape> kShapes = {
    {"gpt-cpu in_proj  x W^T", false, true, 768, 384, 128},
    {"gpt-cpu in_proj  dX=dY W", false, false, 768, 128, 384},
    {"gpt-cpu in_proj  dW=dY^T X", true, false, 384, 128, 768},
    {"gpt-cpu out_proj x W^T", false, true, 768, 128, 128},
    {"gpt-cpu out_proj dW", true, false, 128, 128, 768},
    {"attention Q K^T x48 heads", false, true, 64, 64, 32, 48},
    {"attention P V   x48 heads", false, false, 64, 32, 64, 48},
    {"attention dP^T Q x48 heads", true, false, 64, 32, 64, 48},
    {"train FFN linear1 x W^T", false, true, 768, 512, 128},
    {"train FFN linear2 x W^T", false, true, 768, 128, 512},
    {"train FFN linear1 dW", true, false, 512, 128, 768},
    {"train FFN linear2 dW", true, false, 128, 512, 768},
    {"train head dW (65 tokens)", true, false, 65, 128, 768},
    {"mid in_proj x W^T", false, true, 2048, 1152, 384},
    {"mid in_proj dX=dY W", false, false, 2048, 384, 1152},
    {"mid in_proj dW=dY^T X", true, false, 1152, 384, 2048},
    {"mid out_proj x W^T", false, true, 2048, 384, 384},
    {"mid out_proj dW", true, false, 384, 384, 2048},
    {"long in_proj x W^T", false, true, 2048, 768, 256},
    {"seed in_proj x W^T (20 tokens)", false, true, 20, 1536, 512},
    {"decode step x W^T (12 tokens)", false, true, 12, 384, 128},
};

struct Operands {
  tg::Tensor a, b, c;
};

Operands make_operands(const Shape& s) {
  tg::Generator gen(1);
  return {tg::Tensor::uniform({s.batch * s.M * s.K}, -1, 1, gen), tg::Tensor::uniform({s.batch * s.K * s.N}, -1, 1, gen),
          tg::Tensor::zeros({s.batch * s.M * s.N})};
}

// One call of the product through tapegrad's kernel (tapegrad = true) or the OpenBLAS path.
void run_once(const Shape& s, Operands& o, bool tapegrad) {
  const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
  const float *a = o.a.data<float>(), *b = o.b.data<float>();
  float* c = o.c.data<float>();
  if (s.batch == 1) {
    if (tapegrad) tg::kernels::sgemm(s.ta, s.tb, s.M, s.N, s.K, 1.0f, a, lda, b, ldb, 0.0f, c, s.N);
    else tg::kernels::gemm_openblas<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, a, lda, b, ldb, 0.0f, c, s.N);
    return;
  }
  tg::kernels::parallel_for(s.batch, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float *ai = a + i * s.M * s.K, *bi = b + i * s.K * s.N;
      float* ci = c + i * s.M * s.N;
      if (tapegrad) tg::kernels::sgemm_serial(s.ta, s.tb, s.M, s.N, s.K, 1.0f, ai, lda, bi, ldb, 0.0f, ci, s.N);
      else tg::kernels::gemm_serial_openblas<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, ai, lda, bi, ldb, 0.0f, ci, s.N);
    }
  });
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median GFLOP/s of OpenBLAS and tapegrad (0 when the CPU cannot run it), sampled alternately.
std::pair<double, double> measure(const Shape& s, int samples) {
  Operands o = make_operands(s);
  const double flops = 2.0 * static_cast<double>(s.batch * s.M * s.N * s.K);
  const int reps = std::max(1, static_cast<int>(4e7 / flops));   // ~0.3 ms or more per sample
  const bool have_tapegrad = tg::kernels::sgemm_cpu_supported();
  std::vector<double> rate[2];
  for (int i = 0; i < samples + 1; ++i)
    for (int kernel = 0; kernel < (have_tapegrad ? 2 : 1); ++kernel) {
      auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) run_once(s, o, kernel == 1);
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (i > 0) rate[kernel].push_back(flops * reps / sec / 1e9);   // sample 0 warms up
    }
  return {median(rate[0]), have_tapegrad ? median(rate[1]) : 0.0};
}

void print_row(const std::string& what, const Shape& s, int threads, std::pair<double, double> r) {
  char tg_rate[32] = "      -", ratio[32] = "";
  if (r.second > 0) {
    std::snprintf(tg_rate, sizeof tg_rate, "%7.1f", r.second);
    std::snprintf(ratio, sizeof ratio, "  x%.2f", r.second / r.first);
  }
  std::printf("%-28s %c%c %5lld x %5lld x %5lld  threads %d  OpenBLAS %7.1f  tapegrad %s GFLOP/s%s\n", what.c_str(),
              s.ta ? 'T' : 'N', s.tb ? 'T' : 'N', static_cast<long long>(s.M), static_cast<long long>(s.N),
              static_cast<long long>(s.K), threads, r.first, tg_rate, ratio);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && !std::strcmp(argv[1], "--print-core")) {
    std::printf("%s\n", tg::blas_core().c_str());
    return 0;
  }
  const bool shapes = argc > 1 && !std::strcmp(argv[1], "--shapes");
  const int arg = shapes ? 2 : 1;
  const int samples = argc > arg ? std::max(1, std::atoi(argv[arg])) : 9;
  std::printf("%s\n", tg::runtime_info().c_str());
  std::vector<Shape> table = kShapes;
  if (!shapes) {
    table.clear();
    for (int64_t n : {256, 512, 1024, 2048}) table.push_back({"square", false, false, n, n, n});
  }
  for (int threads : {1, 2}) {
    tg::set_num_threads(threads);
    for (const Shape& s : table) print_row(s.what, s, threads, measure(s, samples));
  }
}
