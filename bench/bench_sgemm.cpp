// sgemm GFLOP/s through tapegrad's GEMM kernel (OpenBLAS underneath) at square sizes, with 1 and 2
// threads. Shows which OpenBLAS core tapegrad selected. Run with OPENBLAS_CORETYPE=PRESCOTT to see
// what Debian's OpenBLAS would use on its own on this CPU.
//   bench_sgemm [ITERS]        the table
//   bench_sgemm --print-core   only the OpenBLAS core tapegrad runs on (e.g. "Haswell"), for
//                              bench/compare.sh to run the peers on the same one
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "framework/kernels/gemm.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/framework/tensor.h"

int main(int argc, char** argv) {
  if (argc > 1 && !std::strcmp(argv[1], "--print-core")) {
    std::printf("%s\n", tg::blas_core().c_str());
    return 0;
  }
  int iters = argc > 1 ? std::atoi(argv[1]) : 10;
  std::printf("%s\n", tg::runtime_info().c_str());
  for (int threads : {1, 2}) {
    tg::set_num_threads(threads);
    for (int64_t n : {256, 512, 1024, 2048}) {
      tg::Generator gen(1);
      tg::Tensor a = tg::Tensor::uniform({n, n}, -1, 1, gen), b = tg::Tensor::uniform({n, n}, -1, 1, gen);
      tg::Tensor c = tg::Tensor::zeros({n, n});
      std::vector<double> ms;
      for (int i = 0; i < iters + 2; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        tg::kernels::gemm<float>(false, false, n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n, 0.0f,
                                 c.data<float>(), n);
        auto t1 = std::chrono::steady_clock::now();
        if (i >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      double med = ms[ms.size() / 2];
      std::printf("sgemm n=%-5lld threads %d  %8.3f ms  %7.1f GFLOP/s\n", static_cast<long long>(n), threads, med,
                  2.0 * n * n * n / med / 1e6);
    }
  }
}
