// The useful-FLOP counts the benchmarks print (bench/flops.h) against the figures of bench/README.md,
// and the rate text compare.sh parses.
#include "bench/flops.h"
#include "support/test_support.h"

using namespace tg::bench;

TEST_CASE("bench flops: causal attention counts the T(T+1)/2 visible pairs, full attention T^2", "[bench]") {
  REQUIRE(attention_pairs(64, true) == 2080.0);
  REQUIRE(attention_pairs(64, false) == 4096.0);
  REQUIRE(attention_pairs(1, true) == 1.0);
}

TEST_CASE("bench flops: MultiheadAttention forward+backward at the four bench_mha shapes", "[bench]") {
  // 8*B*T*E^2 + 4*B*E*pairs, times 3 for forward + backward.
  REQUIRE(forward_backward_flops(mha_forward_flops(12, 64, 128, true)) == 340328448.0);
  REQUIRE(forward_backward_flops(mha_forward_flops(8, 256, 384, true)) == 8460435456.0);
  REQUIRE(forward_backward_flops(mha_forward_flops(2, 10, 512, false)) == 127057920.0);
  REQUIRE(forward_backward_flops(mha_forward_flops(2, 1024, 256, true)) == 6445596672.0);
}

TEST_CASE("bench flops: the tiny-LM training step adds the FFN and the head to the attention", "[bench]") {
  const double mha = mha_forward_flops(12, 64, 128, true), ffn = 2 * (2.0 * 12 * 64 * 128 * 512),
               head = 2.0 * 12 * 64 * 128 * 65;
  REQUIRE(transformer_forward_flops(4, 12, 64, 128, 512, 65, true) == 4 * (mha + ffn) + head);
  REQUIRE(forward_backward_flops(transformer_forward_flops(4, 12, 64, 128, 512, 65, true)) == 3815571456.0);
}

TEST_CASE("bench flops: rate text with and without a measured peak", "[bench]") {
  REQUIRE(rate_text(1e9, 10.0, GemmPeak{200.0, 2048, "OpenBLAS"}) == "100.0 GFLOP/s, 50% of peak");
  REQUIRE(rate_text(1e9, 10.0, GemmPeak{}) == "100.0 GFLOP/s");
  REQUIRE(rate_text(1e9, 10.0, GemmPeak{200.0, 2048, "OpenBLAS"}, GemmPeak{400.0, 2048, "oneDNN"}) ==
          "100.0 GFLOP/s, 50% of peak, 25% of the bf16 peak");
  REQUIRE(rate_text(1e9, 10.0, GemmPeak{}, GemmPeak{400.0, 2048, "oneDNN"}) == "100.0 GFLOP/s, 25% of the bf16 peak");
}

TEST_CASE("bench flops: the bf16 peak line names its kernel", "[bench]") {
  const std::string line = bf16_peak_line(GemmPeak{702.25, 1024, "tapegrad AVX512_BF16"});
  REQUIRE(line.rfind("bf16 GEMM peak 702.2 GFLOP/s (n=1024, ", 0) == 0);
  REQUIRE(line.find(" threads, tapegrad AVX512_BF16 kernel, best of 3)") != std::string::npos);
}

TEST_CASE("bench flops: a peak is the fastest candidate's rate, after a warm-up call", "[bench]") {
  std::vector<std::pair<std::string, PeakGemm>> gemms;
  int calls = 0;
  gemms.emplace_back("slow", [&](int64_t n, const float* a, const float* b, float* c) {
    ++calls;
    tg::kernels::gemm<float>(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  });
  gemms.emplace_back("nothing", [](int64_t, const float*, const float*, float*) {});
  const GemmPeak peak = best_gemm_rate(gemms, 1);
  REQUIRE(peak.kernel == "nothing");
  REQUIRE(peak.gflops > 0);
  REQUIRE(calls == 4);   // n = 1024 and 2048, a warm-up call and one timed call each
}

TEST_CASE("bench flops: the bf16 peak is measured only where autocast(bf16) runs native bf16 products", "[bench]") {
  const tg::Bf16Mode before = tg::bf16_mode();
  tg::set_bf16_mode(tg::Bf16Mode::emulated);
  const GemmPeak emulated = measure_bf16_peak(1);
  tg::reset_bf16_mode();
  REQUIRE(emulated.gflops == 0);
  REQUIRE(emulated.kernel.empty());
  if (before != tg::Bf16Mode::native) return;   // this CPU has no bf16 dot products: the check above is all
  const GemmPeak native = measure_bf16_peak(1);
  REQUIRE(native.gflops > 0);
  REQUIRE((native.kernel == "tapegrad AVX512_BF16" || native.kernel.rfind("oneDNN ", 0) == 0));
}

TEST_CASE("bench flops: the peak line names the kernel that reached the peak", "[bench]") {
  const std::string line = sgemm_peak_line(GemmPeak{181.25, 2048, "tapegrad AVX2"});
  REQUIRE(line.rfind("sgemm peak 181.2 GFLOP/s (n=2048, ", 0) == 0);
  REQUIRE(line.find(" threads, tapegrad AVX2 kernel, OpenBLAS core " + tg::blas_core() + ", best of 3)") !=
          std::string::npos);
}
