#pragma once
// Useful-FLOP counts of the benchmarked workloads and the sgemm peak they are measured against
// (bench/README.md derives the formulas). "Useful" means the multiply-adds of the matrix products a
// dense implementation cannot avoid, each counted as 2 FLOPs; under a causal mask only the
// T(T+1)/2 (query, key) pairs a query may see count, so skipping masked tiles is not rewarded and
// computing them is not either. Element-wise work (softmax, layer norm, GELU, Adam) is not counted.
// Header-only, for the bench programs.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "framework/kernels/gemm.h"
#include "tapegrad/framework/random.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/framework/tensor.h"

namespace tg::bench {

// (query, key) pairs per sequence of self-attention over T positions.
inline double attention_pairs(int64_t T, bool causal) {
  const double t = static_cast<double>(T);
  return causal ? t * (t + 1) / 2 : t * t;
}

// MultiheadAttention forward, self-attention over [B, T, E] (any head count: heads split E):
//   in-projection 2*B*T*E*3E + QK^T 2*B*E*pairs + PV 2*B*E*pairs + out-projection 2*B*T*E*E.
inline double mha_forward_flops(int64_t B, int64_t T, int64_t E, bool causal) {
  const double b = static_cast<double>(B), t = static_cast<double>(T), e = static_cast<double>(E);
  return 8 * b * t * e * e + 4 * b * e * attention_pairs(T, causal);
}

// Backward of every product above costs twice its forward (one GEMM for each operand's gradient;
// the input's gradient is wanted too), so forward + backward is 3x forward.
inline double forward_backward_flops(double forward) { return 3 * forward; }

// A stack of n_layer transformer encoder layers (self-attention + FFN E -> FF -> E) over [B, T, E],
// then the vocabulary head E -> V; the forward of one step of the tiny LM. Embedding lookups are
// not products and count 0.
inline double transformer_forward_flops(int64_t n_layer, int64_t B, int64_t T, int64_t E, int64_t FF, int64_t V,
                                        bool causal) {
  const double bt = static_cast<double>(B) * static_cast<double>(T);
  const double ffn = 2 * (2 * bt * static_cast<double>(E) * static_cast<double>(FF));
  const double head = 2 * bt * static_cast<double>(E) * static_cast<double>(V);
  return static_cast<double>(n_layer) * (mha_forward_flops(B, T, E, causal) + ffn) + head;
}

// Best sgemm rate of tapegrad's GEMM kernel (OpenBLAS underneath, at the current thread count), at
// square n = 1024 and 2048, best of `reps` calls each after one warm-up call: the machine's
// practical float32 ceiling for this process, measured in the same run as the figures it scales.
struct SgemmPeak {
  double gflops = 0;
  int64_t n = 0;
};

inline SgemmPeak measure_sgemm_peak(int reps = 3) {
  SgemmPeak best;
  for (int64_t n : {1024, 2048}) {
    tg::Generator gen(1);
    tg::Tensor a = tg::Tensor::uniform({n, n}, -1, 1, gen), b = tg::Tensor::uniform({n, n}, -1, 1, gen);
    tg::Tensor c = tg::Tensor::zeros({n, n});
    for (int i = 0; i < reps + 1; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      tg::kernels::gemm<float>(false, false, n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n, 0.0f,
                               c.data<float>(), n);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double gflops = 2.0 * static_cast<double>(n * n * n) / s / 1e9;
      if (i > 0 && gflops > best.gflops) best = {gflops, n};
    }
  }
  return best;
}

// The line every bench prints after runtime_info(), which compare.sh reads:
//   "sgemm peak 181.3 GFLOP/s (n=2048, 2 threads, core Haswell, best of 3)".
inline std::string sgemm_peak_line(const SgemmPeak& p, int reps = 3) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "sgemm peak %.1f GFLOP/s (n=%lld, %d threads, core %s, best of %d)", p.gflops,
                static_cast<long long>(p.n), tg::get_num_threads(), tg::blas_core().c_str(), reps);
  return buf;
}

// "123.4 GFLOP/s, 68% of peak" for `flops` done in `ms` milliseconds ("123.4 GFLOP/s" when the
// peak was not measured).
inline std::string rate_text(double flops, double ms, const SgemmPeak& peak) {
  const double gflops = flops / ms / 1e6;
  char buf[64];
  if (peak.gflops > 0) std::snprintf(buf, sizeof buf, "%.1f GFLOP/s, %.0f%% of peak", gflops, 100 * gflops / peak.gflops);
  else std::snprintf(buf, sizeof buf, "%.1f GFLOP/s", gflops);
  return buf;
}

// The peak for a bench run: measured, or skipped (zero) under --no-peak, which profiling runs use
// (under valgrind the n=2048 products alone would take minutes).
inline SgemmPeak sgemm_peak_for_run(bool measure) {
  if (!measure) {
    std::printf("sgemm peak not measured (--no-peak)\n");
    return {};
  }
  const SgemmPeak peak = measure_sgemm_peak();
  std::printf("%s\n", sgemm_peak_line(peak).c_str());
  return peak;
}

}  // namespace tg::bench
