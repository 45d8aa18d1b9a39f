// TransformerEncoderLayer forward+backward at the tiny-LM's layer shape (d_model 128, 4 heads,
// feed-forward 512, batch 12, length 64, batch_first, pre-norm, gelu, causal), medians after warm-up.
//   bench_encoder_layer [--threads N] [--iters K]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tapegrad/framework/runtime.h"
#include "tapegrad/layers/transformer_encoder_layer.h"

int main(int argc, char** argv) {
  int threads = 2, iters = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads") && std::atoi(argv[i + 1]) >= 1) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench_encoder_layer [--threads N] [--iters K]\n");
      return 2;
    }
  }
  tg::set_num_threads(threads);
  std::printf("%s\n", tg::runtime_info().c_str());
  tg::Generator gen(0);
  tg::TransformerEncoderLayer layer({.d_model = 128, .nhead = 4, .dim_feedforward = 512, .dropout = 0.0,
                                     .activation = tg::Activation::gelu, .batch_first = true, .norm_first = true},
                                    gen);
  tg::Var x(tg::Tensor::normal({12, 64, 128}, 0, 1, gen), true);
  tg::Tensor gy = tg::Tensor::normal({12, 64, 128}, 0, 1, gen);
  std::vector<double> fwd, fb;
  for (int i = 0; i < iters + 5; ++i) {
    {
      tg::NoGradGuard no_grad;
      auto t0 = std::chrono::steady_clock::now();
      tg::Var y = layer.forward(x, {.is_causal = true});
      if (i >= 5) fwd.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    auto t0 = std::chrono::steady_clock::now();
    tg::Var y = layer.forward(x, {.is_causal = true});
    y.backward(gy);
    if (i >= 5) fb.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    layer.zero_grad();
    x.zero_grad();
  }
  std::sort(fwd.begin(), fwd.end());
  std::sort(fb.begin(), fb.end());
  std::printf("encoder layer d_model 128 heads 4 ff 512 B12 T64 causal: fwd %.3f ms  fwd+bwd %.3f ms (threads %d)\n",
              fwd[fwd.size() / 2], fb[fb.size() / 2], threads);
}
