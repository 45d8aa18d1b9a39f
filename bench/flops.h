#pragma once
// Useful-FLOP counts of the benchmarked workloads and the sgemm peak they are measured against
// (bench/README.md derives the formulas). "Useful" means the multiply-adds of the matrix products a
// dense implementation cannot avoid, each counted as 2 FLOPs; under a causal mask only the
// T(T+1)/2 (query, key) pairs a query may see count, so skipping masked tiles is not rewarded and
// computing them is not either. Element-wise work (softmax, layer norm, GELU, Adam) is not counted.
// Header-only, for the bench programs.
#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "framework/autocast.h"
#include "framework/kernels/bf16.h"
#include "framework/kernels/gemm.h"
#include "framework/kernels/sbgemm.h"
#include "framework/kernels/sgemm.h"
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

// The best rate of some GEMMs at the current thread count: square n = 1024 and 2048 products, best of `reps`
// calls each after one warm-up call, the GEMMs called alternately (a noisy neighbour slows them alike).
// Each candidate is a name and a call C = A @ B on n x n float32 matrices.
struct GemmPeak {
  double gflops = 0;
  int64_t n = 0;
  std::string kernel;   // which GEMM reached it
};
using PeakGemm = std::function<void(int64_t n, const float* a, const float* b, float* c)>;

inline GemmPeak best_gemm_rate(const std::vector<std::pair<std::string, PeakGemm>>& gemms, int reps) {
  GemmPeak best;
  for (int64_t n : {1024, 2048}) {
    tg::Generator gen(1);
    tg::Tensor a = tg::Tensor::uniform({n, n}, -1, 1, gen), b = tg::Tensor::uniform({n, n}, -1, 1, gen);
    tg::Tensor c = tg::Tensor::zeros({n, n});
    for (int i = 0; i < reps + 1; ++i)
      for (const auto& [name, gemm] : gemms) {
        auto t0 = std::chrono::steady_clock::now();
        gemm(n, a.data<float>(), b.data<float>(), c.data<float>());
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double gflops = 2.0 * static_cast<double>(n * n * n) / s / 1e9;
        if (i > 0 && gflops > best.gflops) best = {gflops, n, name};
      }
  }
  return best;
}

// The machine's best float32 GEMM rate: the better of OpenBLAS (through kernels::gemm_openblas, the row-block
// split of single-threaded cblas_sgemm calls) and tapegrad's own AVX2 or AVX-512 kernel (kernels::sgemm, when
// this CPU runs it): the practical float32 ceiling for this process, measured in the same run as the figures it
// scales. kernel: "tapegrad AVX2", "tapegrad AVX-512" or "OpenBLAS".
inline GemmPeak measure_sgemm_peak(int reps = 3) {
  std::vector<std::pair<std::string, PeakGemm>> gemms;
  gemms.emplace_back("OpenBLAS", [](int64_t n, const float* a, const float* b, float* c) {
    tg::kernels::gemm_openblas<float>(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  });
  if (tg::kernels::sgemm_cpu_supported())
    gemms.emplace_back("tapegrad " + tg::kernels::sgemm_isa(), [](int64_t n, const float* a, const float* b, float* c) {
      tg::kernels::sgemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    });
  return best_gemm_rate(gemms, reps);
}

// The machine's best bf16 GEMM rate (bf16 inputs, float32 sums, float32 operands converted inside the call as
// autocast's products do): the better of tapegrad's AVX512_BF16 GEMM (kernels::sbgemm) and oneDNN's bf16
// matmul on the native path's tiles (kernels::gemm_bf16_onednn), each where it runs. Zero (no kernel) where
// autocast(bf16) falls back to float32: this CPU has no bf16 dot products.
inline GemmPeak measure_bf16_peak(int reps = 3) {
  if (tg::bf16_mode() != tg::Bf16Mode::native) return {};
  std::vector<std::pair<std::string, PeakGemm>> gemms;
  if (tg::kernels::sbgemm_cpu_supported())
    gemms.emplace_back("tapegrad AVX512_BF16", [](int64_t n, const float* a, const float* b, float* c) {
      tg::kernels::sbgemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    });
  const std::string onednn = tg::kernels::onednn_version();
  if (!onednn.empty() && tg::kernels::onednn_bf16_matmul_works())
    gemms.emplace_back("oneDNN " + onednn, [](int64_t n, const float* a, const float* b, float* c) {
      tg::kernels::gemm_bf16_onednn(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    });
  return best_gemm_rate(gemms, reps);
}

// "<what> peak 181.3 GFLOP/s (n=2048, 2 threads, <kernel> kernel, OpenBLAS core <core>, best of 3)", without
// the core when `core` is empty: the peak lines the benches print and compare.sh reads.
inline std::string peak_line(const char* what, const GemmPeak& p, int reps, const std::string& core = {}) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s peak %.1f GFLOP/s (n=%lld, %d threads, %s kernel%s%s, best of %d)", what, p.gflops,
                static_cast<long long>(p.n), tg::get_num_threads(), p.kernel.c_str(),
                core.empty() ? "" : ", OpenBLAS core ", core.c_str(), reps);
  return buf;
}

// The line every bench prints after runtime_info():
//   "sgemm peak 181.3 GFLOP/s (n=2048, 2 threads, tapegrad AVX2 kernel, OpenBLAS core Haswell, best of 3)"
// (or "..., OpenBLAS kernel, OpenBLAS core Haswell, ..." when OpenBLAS was faster).
inline std::string sgemm_peak_line(const GemmPeak& p, int reps = 3) {
  return peak_line("sgemm", p, reps, tg::blas_core());
}

// The line of the bf16 peak:
//   "bf16 GEMM peak 702.3 GFLOP/s (n=2048, 2 threads, tapegrad AVX512_BF16 kernel, best of 3)"
inline std::string bf16_peak_line(const GemmPeak& p, int reps = 3) { return peak_line("bf16 GEMM", p, reps); }

// "123.4 GFLOP/s, 68% of peak" for `flops` done in `ms` milliseconds ("123.4 GFLOP/s" when the
// peak was not measured), then ", 34% of the bf16 peak" when a bf16 peak was measured.
inline std::string rate_text(double flops, double ms, const GemmPeak& peak, const GemmPeak& bf16_peak = {}) {
  const double gflops = flops / ms / 1e6;
  char buf[96];
  int len = std::snprintf(buf, sizeof buf, "%.1f GFLOP/s", gflops);
  if (peak.gflops > 0)
    len += std::snprintf(buf + len, sizeof buf - len, ", %.0f%% of peak", 100 * gflops / peak.gflops);
  if (bf16_peak.gflops > 0)
    std::snprintf(buf + len, sizeof buf - len, ", %.0f%% of the bf16 peak", 100 * gflops / bf16_peak.gflops);
  return buf;
}

// The peak for a bench run: measured, or skipped (zero) under --no-peak, which profiling runs use
// (under valgrind the n=2048 products alone would take minutes).
inline GemmPeak sgemm_peak_for_run(bool measure) {
  if (!measure) {
    std::printf("sgemm peak not measured (--no-peak)\n");
    return {};
  }
  const GemmPeak peak = measure_sgemm_peak();
  std::printf("%s\n", sgemm_peak_line(peak).c_str());
  return peak;
}

// The bf16 peak of a --precision bf16 run, printed after the sgemm peak (bf16_peak_line): zero without a line
// when not asked for (--no-peak, a float32 run), zero and a line saying why where autocast(bf16) does not run
// native bf16 products.
inline GemmPeak bf16_peak_for_run(bool measure, int reps = 3) {
  if (!measure) return {};
  const GemmPeak peak = measure_bf16_peak(reps);
  if (peak.gflops <= 0) {
    std::printf("bf16 GEMM peak not measured (bf16 products run %s here)\n", tg::to_string(tg::bf16_mode()).c_str());
    return peak;
  }
  std::printf("%s\n", bf16_peak_line(peak, reps).c_str());
  return peak;
}

}  // namespace tg::bench
