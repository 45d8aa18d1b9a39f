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
  REQUIRE(rate_text(1e9, 10.0, SgemmPeak{200.0, 2048, "OpenBLAS"}) == "100.0 GFLOP/s, 50% of peak");
  REQUIRE(rate_text(1e9, 10.0, SgemmPeak{}) == "100.0 GFLOP/s");
}

TEST_CASE("bench flops: the peak line names the kernel that reached the peak", "[bench]") {
  const std::string line = sgemm_peak_line(SgemmPeak{181.25, 2048, "tapegrad AVX2"});
  REQUIRE(line.rfind("sgemm peak 181.2 GFLOP/s (n=2048, ", 0) == 0);
  REQUIRE(line.find(" threads, tapegrad AVX2 kernel, OpenBLAS core " + tg::blas_core() + ", best of 3)") !=
          std::string::npos);
}
