// Fused attention: forward against a naive loop reference, float64 gradchecks (q, k, v, mask,
// dropout replayed from the seed), fully masked rows, determinism across thread counts, errors.
#include <cmath>
#include <limits>
#include <random>

#include "framework/kernels/allocator.h"
#include "framework/kernels/attention.h"
#include "framework/kernels/fast_math.h"
#include "tapegrad/framework/ops/attention.h"
#include "tapegrad/framework/runtime.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Reference for q/k/v given as [N, H, T, D] tensors and a full [N, H, L, S] additive mask (or none).
Tensor naive_sdpa(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, bool causal) {
  int64_t N = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3), S = k.size(2);
  Tensor out = Tensor::zeros({N, H, L, D}, DType::Float64);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> s(static_cast<size_t>(S));
        double mx = -kInf;
        for (int64_t j = 0; j < S; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < D; ++c) acc += q.at({n, h, i, c}) / std::sqrt(double(D)) * k.at({n, h, j, c});
          if (mask) acc += mask->at({n, h, i, j});
          if (causal && j > i) acc = -kInf;
          s[size_t(j)] = acc;
          mx = std::max(mx, acc);
        }
        if (mx == -kInf) continue;   // fully masked: zero row
        double sum = 0;
        for (auto& x : s) sum += (x = std::exp(x - mx));
        for (int64_t c = 0; c < D; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < S; ++j) acc += s[size_t(j)] / sum * v.at({n, h, j, c});
          out.set({n, h, i, c}, acc);
        }
      }
  return out;
}

// [T, N, E] (or [N, T, E]) -> [N, H, T, D]
Tensor to_heads(const Tensor& x, int64_t H, bool batch_first) {
  int64_t T = x.size(batch_first ? 1 : 0), N = x.size(batch_first ? 0 : 1), E = x.size(2), D = E / H;
  Tensor out({N, H, T, D}, DType::Float64);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < D; ++c)
          out.set({n, h, t, c}, batch_first ? x.at({n, t, h * D + c}) : x.at({t, n, h * D + c}));
  return out;
}

Tensor full_mask(const Tensor& m, int64_t N, int64_t H, int64_t L, int64_t S) {
  Tensor out({N, H, L, S}, DType::Float64);
  Shape ms = m.shape();
  while (ms.size() < 4) ms.insert(ms.begin(), 1);
  Tensor m4 = m.reshape(ms);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < S; ++j)
          out.set({n, h, i, j}, m4.at({ms[0] == 1 ? 0 : n, ms[1] == 1 ? 0 : h, ms[2] == 1 ? 0 : i, j}));
  return out;
}

// Leaves a float32 block of `shape` full of NaN in the tensor allocator's cache, so that the next
// allocation of that size (the kernel's probabilities) starts from NaN: a read of an element nobody wrote
// then shows in the results.
void poison_allocator_cache(const Shape& shape) {
  Tensor junk(shape, DType::Float32);
  float* j = junk.data<float>();
  for (int64_t i = 0; i < junk.numel(); ++i) j[i] = std::numeric_limits<float>::quiet_NaN();
}

}  // namespace

TEST_CASE("fused_attention: forward equals the naive reference (seq-first, batch-first, masks, causal)", "[ops][attention]") {
  const int64_t N = 2, H = 3, L = 5, S = 7, E = 12;
  for (bool bf : {false, true}) {
    Shape qs = bf ? Shape{N, L, E} : Shape{L, N, E}, ks = bf ? Shape{N, S, E} : Shape{S, N, E};
    Var q = rand_var(qs, 1), k = rand_var(ks, 2), v = rand_var(ks, 3);
    Tensor m = rand_tensor({N, 1, L, S}, 4, -2, 2);
    m.set({0, 0, 1, 3}, -kInf);
    for (int variant = 0; variant < 3; ++variant) {
      AttentionArgs a{.num_heads = H, .batch_first = bf};
      if (variant == 1) a.attn_mask = Var(m);
      if (variant == 2) a.is_causal = true;
      Tensor got = fused_attention(q, k, v, a).value();
      Tensor fm = full_mask(m, N, H, L, S);
      Tensor ref = naive_sdpa(to_heads(q.value(), H, bf), to_heads(k.value(), H, bf), to_heads(v.value(), H, bf),
                              variant == 1 ? &fm : nullptr, variant == 2);
      REQUIRE(max_abs_diff(to_heads(got, H, bf), ref) < 1e-13);
    }
  }
}

TEST_CASE("fused_attention: one whole-head query tile or several 32-row tiles, keys beyond the queries (forward "
          "and grad, causal or not)", "[ops][attention][grad]") {
  // The kernel's query tiles: L = 40 queries of 2 heads span two 32-row tiles, L = 100 four (the last
  // 4 rows), so under the causal flag keys 32.. are seen only by later tiles: dk/dv are written by the
  // first tile and accumulated by the others. L = 40 with 2 x 4 = 8 heads: each head is one tile. S = L + 30
  // keys: under the causal flag keys L..S-1 are never seen (zero gradient).
  struct Case {
    int64_t N, H, L;
  };
  for (const Case c : {Case{1, 2, 40}, Case{2, 4, 40}, Case{1, 2, 100}}) {
    INFO("N=" << c.N << " H=" << c.H << " L=" << c.L);
    const int64_t N = c.N, H = c.H, L = c.L, S = L + 30, E = 2 * H;
    Var q = rand_var({L, N, E}, 40), k = rand_var({S, N, E}, 41), v = rand_var({S, N, E}, 42);
    for (bool causal : {false, true}) {
      AttentionArgs a{.num_heads = H, .is_causal = causal};
      Tensor got = fused_attention(q, k, v, a).value();
      Tensor ref = naive_sdpa(to_heads(q.value(), H, false), to_heads(k.value(), H, false),
                              to_heads(v.value(), H, false), nullptr, causal);
      REQUIRE(max_abs_diff(to_heads(got, H, false), ref) < 1e-13);
      REQUIRE_GRADCHECK([&](const std::vector<Var>& x) { return fused_attention(x[0], x[1], x[2], a); }, {q, k, v});
    }
    Var out = fused_attention(q, k, v, {.num_heads = H, .is_causal = true});
    out.backward(Tensor::ones(out.shape(), DType::Float64));
    for (int64_t j = L; j < S; ++j)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t e = 0; e < E; ++e) {
          REQUIRE(k.grad().at({j, n, e}) == 0.0);
          REQUIRE(v.grad().at({j, n, e}) == 0.0);
        }
  }
}

TEST_CASE("fused_attention: long sequences (96-row query tiles) equal the reference, forward and grad, same bits "
          "across threads", "[ops][attention][grad][determinism]") {
  // L = 530 queries: the kernel's 96-row tiles (L >= 512), the last one 50 rows; S = 560 keys, under the
  // causal flag keys 530.. are never seen. L = 1000, S = 1024: rows of probabilities 1040 floats apart
  // (kernels::probs_row; rows of 1024 would make the sgemm copy them). The gradient: the directional
  // derivative of sum(out * w) along a random direction of (q, k, v) against a central difference (a full
  // gradcheck is too slow here).
  const auto [L, S] = GENERATE(table<int64_t, int64_t>({{530, 560}, {1000, 1024}}));
  INFO("L=" << L << " S=" << S);
  const int64_t N = 1, H = 2, E = 4;
  REQUIRE(kernels::probs_row({N, H, L, S, E / H}) == (S == 1024 ? 1040 : S));
  Var q = rand_var({L, N, E}, 80), k = rand_var({S, N, E}, 81), v = rand_var({S, N, E}, 82);
  const Tensor w = rand_tensor({L, N, E}, 83);
  const std::vector<Tensor> dir{rand_tensor({L, N, E}, 84), rand_tensor({S, N, E}, 85), rand_tensor({S, N, E}, 86)};
  const auto shifted = [](const Var& x, const Tensor& d, double eps) {
    Tensor out = Tensor::zeros(x.shape(), DType::Float64);
    const double *a = x.value().data<double>(), *b = d.data<double>();
    double* o = out.data<double>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = a[i] + eps * b[i];
    return Var(out);
  };
  const auto dot = [](const Tensor& a, const Tensor& b) {
    double acc = 0;
    for (int64_t i = 0; i < a.numel(); ++i) acc += a.data<double>()[i] * b.data<double>()[i];
    return acc;
  };
  struct Case {
    bool causal;
    double dropout_p;
  };
  for (const Case c : {Case{false, 0.0}, Case{true, 0.0}, Case{false, 0.2}}) {
    const bool causal = c.causal;
    INFO("causal=" << causal << " dropout_p=" << c.dropout_p);
    const auto attend = [&](const Var& q_, const Var& k_, const Var& v_) {
      Generator gen(5);   // the same dropout mask in every call
      const AttentionArgs a{.num_heads = H, .is_causal = causal, .dropout_p = c.dropout_p, .generator = &gen};
      return fused_attention(q_, k_, v_, a);
    };
    std::vector<Var> x{Var(q.value(), true), Var(k.value(), true), Var(v.value(), true)};
    Var out = attend(x[0], x[1], x[2]);
    if (c.dropout_p == 0) {
      Tensor ref = naive_sdpa(to_heads(q.value(), H, false), to_heads(k.value(), H, false),
                              to_heads(v.value(), H, false), nullptr, causal);
      REQUIRE(max_abs_diff(to_heads(out.value(), H, false), ref) < 1e-13);
    }
    out.backward(w);
    double analytic = 0;
    for (size_t i = 0; i < 3; ++i) analytic += dot(x[i].grad(), dir[i]);
    const double eps = 1e-5;
    const auto loss = [&](double e) {
      return dot(attend(shifted(q, dir[0], e), shifted(k, dir[1], e), shifted(v, dir[2], e)).value(), w);
    };
    const double numeric = (loss(eps) - loss(-eps)) / (2 * eps);
    REQUIRE(std::abs(analytic - numeric) <= 1e-6 * std::abs(numeric));
    for (int64_t j = L; j < S && causal; ++j) REQUIRE(x[1].grad().at({j, 0, 1}) == 0.0);
  }
  // float32 through the sgemm (k^T, v^T packed once per head): the same bits for any thread count.
  Var qf = rand_var({L, N, E}, 90, -1, 1, true, DType::Float32);
  Var kf = rand_var({S, N, E}, 91, -1, 1, true, DType::Float32);
  Var vf = rand_var({S, N, E}, 92, -1, 1, true, DType::Float32);
  require_same_bits_across_threads([&](int threads) {
    set_num_threads(threads);
    std::vector<Var> xs{Var(qf.value(), true), Var(kf.value(), true), Var(vf.value(), true)};
    Var y = fused_attention(xs[0], xs[1], xs[2], {.num_heads = H, .is_causal = true});
    y.backward(rand_tensor(y.shape(), 93, -1, 1, DType::Float32));
    return std::vector<Tensor>{y.value(), xs[0].grad(), xs[1].grad(), xs[2].grad()};
  });
  const auto heads64 = [&](const Var& x) { return to_heads(x.value().to(DType::Float64), H, false); };
  Tensor ref32 = naive_sdpa(heads64(qf), heads64(kf), heads64(vf), nullptr, true);
  Tensor got32 = fused_attention(qf, kf, vf, {.num_heads = H, .is_causal = true}).value().to(DType::Float64);
  REQUIRE(max_abs_diff(to_heads(got32, H, false), ref32) < 1e-5);
  // float32 gradients (the sgemm reading the probabilities and the tile's scratch rows in place) against
  // float64's on the same values, causal and without dropout, then all keys with dropout (scratch rows of
  // 1024 + 16 in every tile); the probability block starts from NaN, so an element read but never written
  // would show.
  const Tensor gy = rand_tensor({L, N, E}, 94, -1, 1, DType::Float32);
  for (const bool causal : {true, false}) {
    INFO("float32 vs float64, causal=" << causal);
    std::vector<Tensor> g32, g64;
    for (DType dt : {DType::Float32, DType::Float64}) {
      if (dt == DType::Float32) poison_allocator_cache({N * H, L, kernels::probs_row({N, H, L, S, E / H})});
      std::vector<Var> xs{Var(qf.value().to(dt), true), Var(kf.value().to(dt), true), Var(vf.value().to(dt), true)};
      Generator gen(5);
      const double p = causal ? 0.0 : 0.2;
      const AttentionArgs a{.num_heads = H, .is_causal = causal, .dropout_p = p, .generator = &gen};
      fused_attention(xs[0], xs[1], xs[2], a).backward(gy.to(dt));
      for (const Var& x : xs) (dt == DType::Float32 ? g32 : g64).push_back(x.grad().to(DType::Float64));
    }
    for (size_t i = 0; i < 3; ++i) REQUIRE(max_abs_diff(g32[i], g64[i]) < 1e-4);
  }
  // The per-head packs come from the tensor allocator and go back to it: once the result is gone, the
  // books are where they were (a block kept by the forward would show up here).
  const int64_t in_use = kernels::allocator_stats().bytes_in_use;
  {
    NoGradGuard no_grad;
    Var y = fused_attention(qf, kf, vf, {.num_heads = H, .is_causal = true});
    REQUIRE(kernels::allocator_stats().bytes_in_use > in_use);   // the result itself
  }
  REQUIRE(kernels::allocator_stats().bytes_in_use == in_use);
}

TEST_CASE("fused_attention: float32 backward tiles taller than the forward's read no probability the forward left "
          "unwritten (causal, with and without dropout)", "[ops][attention][grad]") {
  // 2 x 4 heads of L = S = 200 queries: the float32 sgemm's forward takes 32-row tiles, its backward the
  // whole head; the probabilities beyond a forward tile's last query are never written but for a few
  // zero columns. The probabilities' block is taken from the allocator's cache, filled with NaN just
  // before: a read of an unwritten probability would put NaN into the gradients. Compared with float64.
  const int64_t N = 2, H = 4, L = 200, E = 32;
  const Var q = rand_var({L, N, E}, 130, -2, 2, false), k = rand_var({L, N, E}, 131, -2, 2, false);
  const Var v = rand_var({L, N, E}, 132, -2, 2, false);
  const Tensor gy = rand_tensor({L, N, E}, 133);
  for (const double p : {0.0, 0.2}) {
    INFO("dropout_p=" << p);
    std::vector<Tensor> grads[2];
    for (const DType dt : {DType::Float64, DType::Float32}) {
      std::vector<Var> x{Var(q.value().to(dt), true), Var(k.value().to(dt), true), Var(v.value().to(dt), true)};
      poison_allocator_cache({N * H, L, L});
      Generator gen(9);
      Var y = fused_attention(x[0], x[1], x[2], {.num_heads = H, .is_causal = true, .dropout_p = p, .generator = &gen});
      y.backward(gy.to(dt));
      for (const Var& xi : x) grads[dt == DType::Float32].push_back(xi.grad().to(DType::Float64));
    }
    for (size_t i = 0; i < 3; ++i) REQUIRE(max_abs_diff(grads[1][i], grads[0][i]) < 1e-4);
  }
}

TEST_CASE("fused_attention: float32 under the causal flag has the bits of an explicit -inf causal mask",
          "[ops][attention]") {
  // Under the flag a row ends at the diagonal and the softmax reads its last n % 8 scores as one run of
  // 8, leaving the lanes beyond the row out of the max and the sum; with the mask every row is S long and
  // its masked scores add exp(-inf) = +0 to the same lanes. The same lanes and operations: the same bits.
  // L = S = 61: rows of every length mod 8, heads of D = 32 through the sgemm; 2 x 2 heads in two 32-row
  // query tiles each, 2 x 4 heads in one tile each.
  const int64_t N = 2, L = 61;
  Tensor mask = Tensor::zeros({L, L}, DType::Float32);
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = i + 1; j < L; ++j) mask.set({i, j}, -kInf);
  for (const int64_t H : {2, 4}) {
    const int64_t E = 32 * H;
    Var q = rand_var({L, N, E}, 120, -2, 2, false, DType::Float32);
    Var k = rand_var({L, N, E}, 121, -2, 2, false, DType::Float32);
    Var v = rand_var({L, N, E}, 122, -2, 2, false, DType::Float32);
    const Tensor flag = fused_attention(q, k, v, {.num_heads = H, .is_causal = true}).value();
    const Tensor masked = fused_attention(q, k, v, {.num_heads = H, .attn_mask = Var(mask)}).value();
    REQUIRE(flag.numel() == L * N * E);
    REQUIRE(flag.bit_equal(masked));
  }
}

// exp_nonpositive(clamp_exp_arg(z)) contracted as the attention kernel's clone contracts it: with FMA where the
// CPU runs the AVX2 / AVX-512 clones (kernels::wide_lanes), without on the baseline.
[[gnu::target("avx2,fma")]] float exp_fma(float z) { return kernels::exp_nonpositive(kernels::clamp_exp_arg(z)); }
float kernel_exp(float z) {
  return kernels::wide_lanes() ? exp_fma(z) : kernels::exp_nonpositive(kernels::clamp_exp_arg(z));
}

TEST_CASE("attention kernels: float32 heads of one tile give the same bits whether the sgemm reads v and k in "
          "place or packs them", "[ops][attention][determinism]") {
  // 4 x 2 heads of 64 queries: one tile each, forward and backward. Rows 192 floats apart (q, k, v side by
  // side) are read in place by the sgemm; the same values with rows 1088 floats apart are packed by it.
  const int64_t N = 4, H = 2, L = 64, D = 32, E = H * D;
  const kernels::AttentionDims d{N, H, L, L, D};
  kernels::AttentionConfig cfg;
  cfg.causal = true;
  std::mt19937 gen(17);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<float> values(static_cast<size_t>(N * L * 4 * E));
  for (float& x : values) x = u(gen);
  std::vector<float> results[2];
  for (const int64_t ld : {3 * E, int64_t{1088}}) {
    // Element (n, i, c) of q (c < E), k (E <= c < 2E), v, and dout (3E <= c < 4E, its own [N, L, E] buffer).
    std::vector<float> qkv(static_cast<size_t>(N * L * ld)), dout(static_cast<size_t>(N * L * E));
    for (int64_t r = 0; r < N * L; ++r)
      for (int64_t c = 0; c < 4 * E; ++c)
        (c < 3 * E ? qkv[static_cast<size_t>(r * ld + c)] : dout[static_cast<size_t>(r * E + c - 3 * E)]) =
            values[static_cast<size_t>(r * 4 * E + c)];
    const kernels::HeadLayout ql{0, L * ld, D, ld}, kl{E, L * ld, D, ld}, vl{2 * E, L * ld, D, ld}, ol{0, L * E, D, E};
    std::vector<float> out(dout.size()), grads(qkv.size());
    std::vector<float> probs(static_cast<size_t>(N * H * L * kernels::probs_row(d)));
    kernels::attention_forward<float>(d, qkv.data(), ql, qkv.data(), kl, qkv.data(), vl, {}, cfg, out.data(), ol,
                                      probs.data());
    kernels::attention_backward<float>(d, qkv.data(), ql, qkv.data(), kl, qkv.data(), vl, cfg, probs.data(),
                                       dout.data(), ol, grads.data(), ql, grads.data(), kl, grads.data(), vl, nullptr);
    std::vector<float>& res = results[ld == 3 * E ? 0 : 1];
    res = out;
    for (int64_t r = 0; r < N * L; ++r)
      res.insert(res.end(), grads.begin() + r * ld, grads.begin() + r * ld + 3 * E);
  }
  REQUIRE(results[0].size() == static_cast<size_t>(N * L * 4 * E));
  REQUIRE(same_bits(results[0], results[1]));
}

TEST_CASE("fused_attention: float32 probabilities are PyTorch's exp(x - max) * (1 / sum), not a division per element",
          "[ops][attention]") {
  // One head, D = 16 (q / sqrt(D) = q / 4 exactly) and q, k in eighths: every score is exact in float32.
  // v = the identity, so each output row is its row of probabilities (one nonzero term per sum).
  const int64_t L = 6, S = 16, D = 16;
  Tensor q({1, L, D}, DType::Float32), k({1, S, D}, DType::Float32), v = Tensor::zeros({1, S, D}, DType::Float32);
  std::mt19937 gen(7);
  for (int64_t i = 0; i < L * D; ++i) q.data<float>()[i] = static_cast<float>(static_cast<int>(gen() % 17) - 8) / 8;
  for (int64_t i = 0; i < S * D; ++i) k.data<float>()[i] = static_cast<float>(static_cast<int>(gen() % 17) - 8) / 8;
  for (int64_t j = 0; j < S; ++j) v.set({0, j, j}, 1.0);
  int differs = 0;   // elements where a division would give other bits
  for (const bool causal : {false, true}) {
    const Tensor out = fused_attention(Var(q), Var(k), Var(v), {.batch_first = true, .is_causal = causal}).value();
    for (int64_t i = 0; i < L; ++i) {
      const int64_t n = causal ? i + 1 : S;
      std::vector<float> e(static_cast<size_t>(n));
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < D; ++c) dot += q.at({0, i, c}) / 4 * k.at({0, j, c});
        e[static_cast<size_t>(j)] = static_cast<float>(dot);
        mx = std::max(mx, e[static_cast<size_t>(j)]);
      }
      for (float& x : e) x = kernel_exp(x - mx);
      const float sum = kernels::lane_sum<float>(n, [&](int64_t j) { return e[static_cast<size_t>(j)]; });
      for (int64_t j = 0; j < S; ++j) {
        const float want = j < n ? e[static_cast<size_t>(j)] * (1.0f / sum) : 0.0f;
        INFO("causal " << causal << ", row " << i << ", key " << j);
        REQUIRE(same_bits(std::vector<float>{static_cast<float>(out.at({0, i, j}))}, std::vector<float>{want}));
        const float divided = j < n ? e[static_cast<size_t>(j)] / sum : 0.0f;
        if (!same_bits(std::vector<float>{divided}, std::vector<float>{want})) ++differs;
      }
    }
  }
  REQUIRE(differs > 0);   // the rows tell the two normalisations apart
}

TEST_CASE("fused_attention: float32 equals float64 over random shapes, masks, causal flag and dropout, with the same "
          "bits with 1 and 2 threads", "[ops][attention][grad][determinism]") {
  // 40 configurations from a fixed stream, 10 per tile regime of the kernel by query count: up to 40,
  // 41..96 (one whole-head tile with >= 8 heads in all), 97..256 (32-row forward tiles, whole-head
  // backward tiles), 512..560 (96-row tiles); keys fewer or more than the queries, head sizes 1..40, float
  // masks with -inf entries. Each float32 run starts with the allocator's cache full of NaN (a read of a
  // probability the forward never wrote shows). Errors are relative to the largest float64 value of the
  // tensor (at least 1e-3).
  std::mt19937 pick(2026);
  const auto below = [&](uint32_t n) { return static_cast<int64_t>(pick() % n); };
  const int64_t heads[] = {1, 2, 3, 4, 6, 8, 12}, first[] = {1, 41, 97, 512}, span[] = {40, 56, 160, 49};
  for (int c = 0; c < 40; ++c) {
    const int regime = c % 4;
    const int64_t N = regime == 3 ? 1 : 1 + below(3), H = heads[below(regime == 3 ? 4 : 7)];
    const int64_t D = 1 + below(regime == 3 ? 16 : 40), E = H * D;
    const int64_t L = first[regime] + below(static_cast<uint32_t>(span[regime]));
    const int64_t S = below(3) == 0 ? 1 + below(static_cast<uint32_t>(L + 100)) : L;
    const bool causal = below(2), batch_first = below(2), masked = below(3) == 0;
    const double p = below(4) == 0 ? 0.25 : 0.0;
    INFO("case " << c << ": N=" << N << " H=" << H << " D=" << D << " L=" << L << " S=" << S << " causal=" << causal
                 << " mask=" << masked << " dropout_p=" << p);
    const Shape qs = batch_first ? Shape{N, L, E} : Shape{L, N, E}, ks = batch_first ? Shape{N, S, E} : Shape{S, N, E};
    const uint64_t seed = 1000 + 10 * static_cast<uint64_t>(c);
    const Tensor q = rand_tensor(qs, seed, -2, 2), k = rand_tensor(ks, seed + 1, -2, 2);
    const Tensor v = rand_tensor(ks, seed + 2, -2, 2), gy = rand_tensor(qs, seed + 3);
    Tensor mask = rand_tensor({L, S}, seed + 4);
    for (int64_t i = 0; i < mask.numel(); ++i)
      if (below(5) == 0) mask.data<double>()[i] = -kInf;
    const auto run = [&](DType dt) {
      poison_allocator_cache({N * H, L, kernels::probs_row({N, H, L, S, D})});   // the probabilities' block
      std::vector<Var> x{Var(q.to(dt), true), Var(k.to(dt), true), Var(v.to(dt), true), Var(mask.to(dt), true)};
      Generator gen(7);
      Var y = fused_attention(x[0], x[1], x[2], {.num_heads = H, .batch_first = batch_first,
                                                 .attn_mask = masked ? x[3] : Var(), .is_causal = causal,
                                                 .dropout_p = p, .generator = &gen});
      y.backward(gy.to(dt));
      std::vector<Tensor> r{y.value(), x[0].grad(), x[1].grad(), x[2].grad()};
      if (masked) r.push_back(x[3].grad());
      return r;
    };
    const std::vector<Tensor> ref = run(DType::Float64);
    const std::vector<Tensor> two = require_same_bits_across_threads([&](int) { return run(DType::Float32); }).second;
    for (size_t t = 0; t < ref.size(); ++t) {
      double scale = 1e-3;
      for (double r : ref[t].to_vector()) scale = std::max(scale, std::abs(r));
      REQUIRE(max_abs_diff(two[t].to(DType::Float64), ref[t]) <= 2e-4 * scale);   // NaN fails too
    }
  }
}

TEST_CASE("fused_attention_packed and scaled_dot_product_attention: equal the separate form", "[ops][attention]") {
  const int64_t N = 2, H = 2, L = 4, E = 6;
  Var qkv = rand_var({N, L, 3 * E}, 5);
  Tensor x = qkv.value();
  Tensor q({N, L, E}, DType::Float64), k({N, L, E}, DType::Float64), v({N, L, E}, DType::Float64);
  for (int64_t i = 0; i < N * L; ++i)
    for (int64_t c = 0; c < E; ++c) {
      q.set_flat(i * E + c, x.flat(i * 3 * E + c));
      k.set_flat(i * E + c, x.flat(i * 3 * E + E + c));
      v.set_flat(i * E + c, x.flat(i * 3 * E + 2 * E + c));
    }
  AttentionArgs a{.num_heads = H, .batch_first = true, .is_causal = true};
  Tensor packed = fused_attention_packed(qkv, a).value();
  Tensor sep = fused_attention(Var(q), Var(k), Var(v), a).value();
  REQUIRE(packed.bit_equal(sep));
  Tensor sd = scaled_dot_product_attention(Var(to_heads(q, H, true)), Var(to_heads(k, H, true)),
                                           Var(to_heads(v, H, true)), Var(), 0.0, true).value();
  REQUIRE(max_abs_diff(sd, to_heads(sep, H, true)) < 1e-15);
}

TEST_CASE("fused_attention: grad matches finite differences (q, k, v, float mask)", "[ops][attention][grad]") {
  const int64_t N = 2, H = 2, L = 3, S = 4, E = 6;
  Var q = rand_var({L, N, E}, 10), k = rand_var({S, N, E}, 11), v = rand_var({S, N, E}, 12);
  Var m2 = rand_var({L, S}, 13), m4 = rand_var({N, H, L, S}, 14), m3 = rand_var({N, 1, S}, 15);
  for (bool causal : {false, true}) {
    REQUIRE_GRADCHECK([&](const std::vector<Var>& x) {
      return fused_attention(x[0], x[1], x[2], {.num_heads = H, .attn_mask = x[3], .is_causal = causal});
    }, {q, k, v, m2});
  }
  REQUIRE_GRADCHECK([&](const std::vector<Var>& x) {
    return fused_attention(x[0], x[1], x[2], {.num_heads = H, .attn_mask = x[3]});
  }, {q, k, v, m4});
  REQUIRE_GRADCHECK([&](const std::vector<Var>& x) {
    return fused_attention(x[0], x[1], x[2], {.num_heads = H, .attn_mask = x[3]});
  }, {q, k, v, m3});
}

TEST_CASE("fused_attention_packed: grad matches finite differences (self-attention, causal, batch-first)", "[ops][attention][grad]") {
  Var qkv = rand_var({2, 5, 12}, 20);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) {
    return fused_attention_packed(x[0], {.num_heads = 2, .batch_first = true, .is_causal = true});
  }, {qkv});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return fused_attention_packed(x[0], {.num_heads = 4}); }, {qkv});
}

TEST_CASE("scaled_dot_product_attention: grad matches finite differences, dropout replayed from the seed", "[ops][attention][grad]") {
  Var q = rand_var({2, 2, 3, 4}, 30), k = rand_var({2, 2, 5, 4}, 31), v = rand_var({2, 2, 5, 4}, 32);
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }, {q, k, v});
  REQUIRE_GRADCHECK([](const std::vector<Var>& x) {
    Generator gen(77);   // the same mask on every call
    return scaled_dot_product_attention(x[0], x[1], x[2], Var(), 0.4, false, &gen);
  }, {q, k, v});
}

TEST_CASE("fused_attention: dropout keeps about 1-p of the weights and differs from no dropout", "[ops][attention]") {
  Var q = rand_var({64, 4, 16}, 40, -1, 1, false), k = rand_var({64, 4, 16}, 41, -1, 1, false);
  Var v(Tensor::ones({64, 4, 16}, DType::Float64));
  Generator gen(5);
  // With v = 1, each output element is the sum of the kept, rescaled probabilities of its row:
  // on average 1, exactly 1 without dropout.
  Tensor out = fused_attention(q, k, v, {.num_heads = 2, .dropout_p = 0.25, .generator = &gen}).value();
  double mean = 0;
  for (double x : out.to_vector()) mean += x / double(out.numel());
  REQUIRE(std::abs(mean - 1.0) < 0.02);
  Tensor plain = fused_attention(q, k, v, {.num_heads = 2}).value();
  REQUIRE(max_abs_diff(plain, Tensor::ones(plain.shape(), DType::Float64)) < 1e-12);
  REQUIRE(max_abs_diff(out, plain) > 0.1);
  Generator again(5);
  REQUIRE(fused_attention(q, k, v, {.num_heads = 2, .dropout_p = 0.25, .generator = &again}).value().bit_equal(out));
}

TEST_CASE("fused_attention: with dropout, a query that sees one key gets a zero gradient (dropout's backward "
          "rounded first, as in PyTorch)", "[ops][attention][grad]") {
  // Under the causal flag query 0 sees key 0 only: its probability is exactly 1, so its softmax gradient
  // 1 * (g' - 1 * g') is exactly 0 when g' = dp * scale is rounded before the row sum, as PyTorch's dropout
  // backward then softmax backward do. A multiply-add contracted across the two left its rounding error.
  // float64 and float32 (2 x 4 heads: one whole-head tile each; 2 x 2 heads: 32-row tiles).
  const int64_t N = 2, L = 40;
  for (const int64_t H : {2, 4})
    for (const DType dt : {DType::Float64, DType::Float32}) {
      INFO("H=" << H << " float32=" << (dt == DType::Float32));
      const int64_t E = 8 * H;
      Var q = rand_var({L, N, E}, 140, -2, 2, true, dt), k = rand_var({L, N, E}, 141, -2, 2, true, dt);
      Var v = rand_var({L, N, E}, 142, -2, 2, true, dt);
      Generator gen(11);
      Var y = fused_attention(q, k, v, {.num_heads = H, .is_causal = true, .dropout_p = 0.3, .generator = &gen});
      y.backward(rand_tensor(y.shape(), 143, -1, 1, dt));
      const Tensor y0 = y.value().to(DType::Float64), g0 = q.grad().to(DType::Float64);
      bool kept = false;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < E; ++c) {
          kept = kept || y0.at({0, n, c}) != 0.0;
          REQUIRE(g0.at({0, n, c}) == 0.0);
        }
      REQUIRE(kept);   // some head kept key 0 (else its gradient is 0 whatever the order)
    }
}

TEST_CASE("fused_attention: fully masked rows give zero output and finite zero gradients", "[ops][attention][grad]") {
  const int64_t N = 2, H = 2, L = 3, S = 4, E = 4;
  Var q = rand_var({L, N, E}, 50), k = rand_var({S, N, E}, 51), v = rand_var({S, N, E}, 52);
  Tensor m = Tensor::zeros({N, 1, 1, S}, DType::Float64);
  for (int64_t j = 0; j < S; ++j) m.set({1, 0, 0, j}, -kInf);   // batch 1: every key is padding
  Var out = fused_attention(q, k, v, {.num_heads = H, .attn_mask = Var(m)});
  for (int64_t i = 0; i < L; ++i)
    for (int64_t c = 0; c < E; ++c) REQUIRE(out.value().at({i, 1, c}) == 0.0);
  out.backward(Tensor::ones(out.shape(), DType::Float64));
  for (const Var& x : {q, k, v})
    for (double g : x.grad().to_vector()) REQUIRE(std::isfinite(g));
  for (int64_t i = 0; i < L; ++i) REQUIRE(q.grad().at({i, 1, 0}) == 0.0);
  REQUIRE_GRADCHECK([&](const std::vector<Var>& x) {
    return fused_attention(x[0], x[1], x[2], {.num_heads = H, .attn_mask = Var(m)});
  }, {q, k, v});
}

TEST_CASE("fused_attention: determinism across thread counts (forward and backward bits)", "[ops][attention][determinism]") {
  Var q = rand_var({70, 3, 32}, 60), k = rand_var({90, 3, 32}, 61), v = rand_var({90, 3, 32}, 62);
  Var m = rand_var({70, 90}, 63);
  auto run = [&](int threads) {
    set_num_threads(threads);
    std::vector<Var> xs{Var(q.value(), true), Var(k.value(), true), Var(v.value(), true), Var(m.value(), true)};
    Generator gen(9);
    Var y = fused_attention(xs[0], xs[1], xs[2], {.num_heads = 4, .attn_mask = xs[3], .dropout_p = 0.1, .generator = &gen});
    y.backward(rand_tensor(y.shape(), 64));
    std::vector<Tensor> r{y.value()};
    for (auto& x : xs) r.push_back(x.grad());
    return r;
  };
  require_same_bits_across_threads(run);
}

TEST_CASE("fused_attention: bad input throws naming the arguments and shapes", "[ops][attention][errors]") {
  Var q = rand_var({3, 2, 6}, 1), k = rand_var({4, 2, 6}, 2), v = rand_var({4, 2, 6}, 3);
  REQUIRE_THROWS_WITH(fused_attention(q, k, rand_var({5, 2, 6}, 4), {.num_heads = 2}),
                      Contains("[fused_attention] key and value must be (S, N, E) matching query (L, N, E); got query=[3, 2, 6], key=[4, 2, 6], value=[5, 2, 6]"));
  REQUIRE_THROWS_WITH(fused_attention(q, k, v, {.num_heads = 4}),
                      Contains("[fused_attention] embed dim 6 is not divisible by num_heads=4"));
  REQUIRE_THROWS_WITH(fused_attention(q, k, v, {.num_heads = 2, .attn_mask = rand_var({4, 3}, 5)}),
                      Contains("[fused_attention] attn_mask must be a float mask broadcastable to (N, H, L, S)=[2, 2, 3, 4]; got attn_mask=float64[4, 3]"));
  REQUIRE_THROWS_WITH(fused_attention(q, k, v, {.num_heads = 2, .dropout_p = 0.5}),
                      Contains("[fused_attention] dropout_p=0.5 needs a Generator"));
  REQUIRE_THROWS_WITH(fused_attention(q, k, v, {.num_heads = 2, .dropout_p = 1.0}),
                      Contains("[fused_attention] dropout_p must be in [0, 1); got dropout_p=1"));
  REQUIRE_THROWS_WITH(fused_attention_packed(rand_var({3, 2, 7}, 6), {.num_heads = 1}),
                      Contains("[fused_attention_packed] qkv must be a float (T, N, 3E) tensor; got qkv=float64[3, 2, 7]"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(q, k, v),
                      Contains("[scaled_dot_product_attention] query, key and value must be (N, H, T, D); got query=[3, 2, 6]"));
  REQUIRE_THROWS_WITH(fused_attention(q, rand_var({4, 2, 6}, 7, -1, 1, true, DType::Float32), v, {.num_heads = 2}),
                      Contains("[fused_attention] query, key and value must share one float dtype"));
}
