// TrainingState::train_iteration: one optimisation step over the K micro-batches of an iteration, the
// same bits for any split of the K over processes (checkpointing.h).
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "examples/tiny_lm/checkpointing.h"
#include "tapegrad/optim/clip_grad.h"

namespace tg::tiny_lm {
namespace {

using NamedParams = std::vector<std::pair<std::string, Var>>;

// Every parameter has a float32 gradient after backward (else std::logic_error).
void check_grads(const NamedParams& params) {
  for (const auto& [name, p] : params) {
    const Tensor& g = p.grad();
    if (!g.defined()) throw std::logic_error("[tiny_lm train] parameter " + name + " has no gradient after backward");
    if (g.dtype() != DType::Float32)
      throw std::logic_error("[tiny_lm train] the gradient of " + name + " is not float32");
  }
}

// Every parameter's gradient, concatenated in registry order. The gradients of one backward are whole
// (a tied weight's two contributions are already summed), so the accumulation below adds one micro-batch
// at a time, the same way on one process and on many.
std::vector<float> flat_grads(const NamedParams& params) {
  check_grads(params);
  int64_t n = 0;
  for (const auto& [name, p] : params) n += p.numel();
  std::vector<float> flat(static_cast<size_t>(n));
  size_t at = 0;
  for (const auto& [name, p] : params) {
    const Tensor& g = p.grad();
    std::memcpy(flat.data() + at, g.data<float>(), static_cast<size_t>(g.numel()) * sizeof(float));
    at += static_cast<size_t>(g.numel());
  }
  return flat;
}

// grad <- sum / k for every parameter (a true division, as one process would do it).
void set_mean_grads(const NamedParams& params, const std::vector<float>& sum, int64_t k) {
  const auto divisor = static_cast<float>(k);
  size_t at = 0;
  for (const auto& [name, p] : params) {
    Tensor g = Tensor::empty(p.shape(), DType::Float32);
    float* out = g.data<float>();
    for (int64_t i = 0; i < g.numel(); ++i) out[i] = sum[at + static_cast<size_t>(i)] / divisor;
    at += static_cast<size_t>(g.numel());
    Var(p).set_grad(std::move(g));
  }
}

}  // namespace

GeneratorState micro_batch_stream(const GeneratorState& start, int64_t m) {
  // Philox as a hash of (seed, offset, m): a fresh key per micro-batch and iteration.
  const PhiloxBlock b = philox_block(start.seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(m)), ~start.offset);
  return {(static_cast<uint64_t>(b.w[0]) << 32) | b.w[1], 0};
}

double TrainingState::train_iteration(double grad_clip) {
  const std::vector<uint64_t> starts = train_batches.draw_starts(micro_batches);
  const GeneratorState start = model_gen.state();
  const NamedParams params = model.named_parameters();
  const int size = processes.size(), rank = processes.rank();
  const bool single = micro_batches == 1 && size == 1;   // one micro-batch on one process
  std::vector<float> sum;
  double loss_sum = 0;
  uint64_t drawn = 0;   // Philox blocks one micro-batch's dropout draws (the same for every micro-batch)
  for (int64_t j = 0; j < micro_batches / size; ++j) {
    const int64_t m = j * size + rank;
    model_gen.set_state(m == 0 ? start : micro_batch_stream(start, m));
    const uint64_t first = model_gen.state().offset;
    auto [x, y] = train_batches.batch(starts, m);
    Var loss;
    {
      AutocastGuard autocast(precision);
      loss = model.loss(x, y);
      optimizer.zero_grad();
      loss.backward();
    }
    drawn = model_gen.state().offset - first;
    if (single) {   // its gradients are already the mean (sum / 1 is exact): no copy, no division
      check_grads(params);
      loss_sum = loss.item();
      continue;
    }
    std::vector<float> g = flat_grads(params);
    double l = loss.item();
    if (j > 0 && rank == 0) {   // rank 0 carries the sum so far: ((sum + g_jP) + g_jP+1) + ...
      for (size_t i = 0; i < g.size(); ++i) g[i] = sum[i] + g[i];
      l = loss_sum + l;
    }
    processes.sum_in_rank_order(g);
    const std::vector<double> losses = processes.all_gather(l);
    loss_sum = losses[0];
    for (size_t r = 1; r < losses.size(); ++r) loss_sum += losses[r];
    sum = std::move(g);
  }
  // Where micro-batch 0 leaves the stream, on every process (what an unaccumulated step leaves).
  model_gen.set_state({start.seed, start.offset + drawn});
  if (!single) set_mean_grads(params, sum, micro_batches);
  if (grad_clip > 0) optim::clip_grad_norm_(params, grad_clip);
  optimizer.step();
  scheduler.step();
  return loss_sum / static_cast<double>(micro_batches);
}

double TrainingState::bytes_sent_per_iteration() const {
  const int n = processes.size();
  if (n == 1) return 0.0;
  double grads = 0;
  for (const auto& [name, p] : model.named_parameters()) grads += static_cast<double>(p.numel()) * sizeof(float);
  const double round = 2.0 * (n - 1) / n * grads + (24.0 + 8.0) * (n - 1);
  return static_cast<double>(micro_batches / n) * round;
}

}  // namespace tg::tiny_lm
