// MultiheadAttention forward (no grad) and forward+backward (training mode, dropout 0,
// need_weights=false) at the four shapes of ../shared/bench/peers/libtorch_mha.cpp, with the same
// names and output line format, so the two programs can be compared side by side. Each line adds the
// useful GFLOP/s (causal-aware, bench/flops.h) and its fraction of the sgemm peak measured at the
// start of the same run.
//   bench_mha [--threads N] [--iters K] [--shape NAME] [--precision f32|bf16] [--no-peak]
//   (NAME: gpt-cpu, mid, seed or long; default all. --precision bf16: forward and backward under
//   tg::AutocastGuard(bf16), as tiny_lm train --precision bf16; the % of peak stays that of the float32
//   sgemm peak, and the bf16 GEMM peak measured after it adds "% of the bf16 peak". --no-peak: skip both
//   peaks, for profiling)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/flops.h"
#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/multihead_attention.h"

namespace {

struct Shape {
  const char* name;
  int64_t B, T, E, H;
  bool causal;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Args {
  int threads = 2, iters = 20;
  std::string only;
  bool measure_peak = true;
  tg::Precision precision = tg::Precision::f32;
};

// Returns false on an unknown flag or a flag without its value.
bool parse_args(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--no-peak")) a.measure_peak = false;
    else if (has_value && !std::strcmp(argv[i], "--threads") && std::atoi(argv[i + 1]) >= 1)
      a.threads = std::atoi(argv[++i]);
    else if (has_value && !std::strcmp(argv[i], "--iters") && std::atoi(argv[i + 1]) >= 1) a.iters = std::atoi(argv[++i]);
    else if (has_value && !std::strcmp(argv[i], "--shape")) a.only = argv[++i];
    else if (has_value && !std::strcmp(argv[i], "--precision")) a.precision = tg::parse_precision(argv[++i]);
    else return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    if (!parse_args(argc, argv, args)) throw std::invalid_argument("bad arguments");
  } catch (const std::invalid_argument&) {
    std::fprintf(stderr,
                 "usage: bench_mha [--threads N] [--iters K] [--shape NAME] [--precision f32|bf16] [--no-peak]\n");
    return 2;
  }
  tg::set_num_threads(args.threads);
  std::printf("%s\n", tg::runtime_info().c_str());
  std::printf("precision %s\n", tg::to_string(args.precision).c_str());
  const tg::bench::GemmPeak peak = tg::bench::sgemm_peak_for_run(args.measure_peak);
  const tg::bench::GemmPeak bf16_peak =
      tg::bench::bf16_peak_for_run(args.measure_peak && args.precision == tg::Precision::bf16);
  std::vector<Shape> shapes = {
      {"gpt-cpu  B12 T64 E128 H4 causal", 12, 64, 128, 4, true},
      {"mid      B8 T256 E384 H6 causal", 8, 256, 384, 6, true},
      {"seed     B2 T10 E512 H8", 2, 10, 512, 8, false},
      {"long     B2 T1024 E256 H4 causal", 2, 1024, 256, 4, true},
  };
  tg::Generator gen(0);
  for (const Shape& s : shapes) {
    std::string name(s.name);
    if (!args.only.empty() && name.substr(0, name.find(' ')) != args.only) continue;
    tg::MultiheadAttention mha({.embed_dim = s.E, .num_heads = s.H}, gen);
    tg::Var x(tg::Tensor::normal({s.T, s.B, s.E}, 0, 1, gen), true);   // sequence-first, as the peer
    tg::Var mask = s.causal ? tg::Var(tg::causal_mask(s.T, s.T, tg::DType::Float32)) : tg::Var();
    tg::Tensor gy = tg::Tensor::normal({s.T, s.B, s.E}, 0, 1, gen);
    // One forward (no grad) and one forward+backward; their times go to fwd/fb when those are given.
    std::vector<double> fwd, fb;
    auto iteration = [&](std::vector<double>* fwd_ms, std::vector<double>* fb_ms) {
      tg::AutocastGuard autocast(args.precision);
      {
        tg::NoGradGuard no_grad;
        auto t0 = std::chrono::steady_clock::now();
        tg::Var out = mha.forward(x, x, x, {.attn_mask = mask, .need_weights = false}).attn_output;
        if (fwd_ms) fwd_ms->push_back(ms_since(t0));
      }
      auto t0 = std::chrono::steady_clock::now();
      tg::Var out = mha.forward(x, x, x, {.attn_mask = mask, .need_weights = false}).attn_output;
      out.backward(gy);
      if (fb_ms) fb_ms->push_back(ms_since(t0));
      mha.zero_grad();
      x.zero_grad();
    };
    // Warm-up: at least 3 iterations and 0.3 s (thread pool, allocator cache and CPU clocks settle;
    // the first shape would otherwise pay for it), then `iters` timed iterations.
    const auto warm_start = std::chrono::steady_clock::now();
    for (int warmup = 0; warmup < 3 || ms_since(warm_start) < 300; ++warmup) iteration(nullptr, nullptr);
    for (int i = 0; i < args.iters; ++i) iteration(&fwd, &fb);
    const double f = tg::bench::mha_forward_flops(s.B, s.T, s.E, s.causal);
    const double fb_flops = tg::bench::forward_backward_flops(f);
    // Medians, and the best fwd+bwd beside them (its gap to the median shows how disturbed the run was).
    const double mf = median(fwd), mfb = median(fb), best_fb = *std::min_element(fb.begin(), fb.end());
    std::printf("%-34s fwd %8.3f ms (%s)  fwd+bwd %8.3f ms (best %.3f; %s; %.3f GFLOP)\n", s.name, mf,
                tg::bench::rate_text(f, mf, peak, bf16_peak).c_str(), mfb, best_fb,
                tg::bench::rate_text(fb_flops, mfb, peak, bf16_peak).c_str(),
                fb_flops / 1e9);
  }
}
