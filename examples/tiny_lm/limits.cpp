#include "examples/tiny_lm/limits.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <limits>

namespace tg::tiny_lm {
namespace {

constexpr double kFloatBytes = 4.0;   // tiny_lm trains and evaluates in float32

// Activations per token and layer that a training step keeps for backward: the layer input, both
// layer norms, the packed q/k/v projections, attention output, projections and residuals (~16 x E),
// the feed-forward hidden state before and after GELU and their gradients (~4 x ff).
double layer_activations_per_token(const TinyLMConfig& c) {
  return 16.0 * static_cast<double>(c.n_embd) + 4.0 * static_cast<double>(c.ff());
}

// The limit read from a cgroup file ("max" or a byte count), or +inf.
double cgroup_limit(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return std::numeric_limits<double>::infinity();
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::numeric_limits<double>::infinity();
  return static_cast<double>(v);
}

}  // namespace

double parameter_count(const TinyLMConfig& c) {
  const double V = static_cast<double>(c.vocab_size), T = static_cast<double>(c.block_size);
  const double E = static_cast<double>(c.n_embd), F = static_cast<double>(c.ff());
  // in_proj (3E x E + 3E), out_proj (E x E + E), linear1 (F x E + F), linear2 (E x F + E), two norms (4E).
  const double layer = 4 * E * E + 2 * E * F + 9 * E + F;
  const double head = (c.tie_weights ? 0.0 : V * E) + (c.head_bias ? V : 0.0);
  return V * E + T * E + static_cast<double>(c.n_layer) * layer + 2 * E + head;
}

double training_bytes(const TinyLMConfig& c, int64_t batch_size) {
  const double tokens = static_cast<double>(batch_size) * static_cast<double>(c.block_size);
  const double E = static_cast<double>(c.n_embd), V = static_cast<double>(c.vocab_size);
  // Per token: every layer's saved activations, embeddings and final norm (4E), logits, their softmax
  // and gradient (3V).
  const double per_token = static_cast<double>(c.n_layer) * layer_activations_per_token(c) + 4 * E + 3 * V;
  // Weights, gradients, exp_avg and exp_avg_sq.
  return kFloatBytes * (4 * parameter_count(c) + tokens * per_token);
}

double inference_bytes(const TinyLMConfig& c, int64_t batch_size) {
  const double tokens = static_cast<double>(batch_size) * static_cast<double>(c.block_size);
  const double E = static_cast<double>(c.n_embd), V = static_cast<double>(c.vocab_size);
  // Without a tape only about one layer's intermediates are alive at a time.
  const double per_token = layer_activations_per_token(c) / 2 + 4 * E + 3 * V;
  return kFloatBytes * (parameter_count(c) + tokens * per_token);
}

double memory_limit_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  double limit = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page)
                                       : std::numeric_limits<double>::infinity();
  limit = std::min(limit, cgroup_limit("/sys/fs/cgroup/memory.max"));                     // cgroup v2
  limit = std::min(limit, cgroup_limit("/sys/fs/cgroup/memory/memory.limit_in_bytes"));   // cgroup v1
  return limit;
}

std::string format_gib(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

std::string format_count(double n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, n < 9.2e18 ? "%.0f" : "%.6g", n);
  return buf;
}

}  // namespace tg::tiny_lm
