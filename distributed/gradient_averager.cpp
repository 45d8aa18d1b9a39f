// GradientAverager: bucketed, rank-ordered gradient averaging (see distributed.h).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "distributed/collectives.h"
#include "tapegrad/framework/check.h"

namespace tg::dist {

namespace {

// Elements per bucket for elements of elem_bytes.
std::size_t bucket_capacity(std::size_t bucket_bytes, std::size_t elem_bytes) { return bucket_bytes / elem_bytes; }

// Number of buckets and the bytes this rank sends for a stream of n elements.
std::pair<std::size_t, std::size_t> stream_cost(std::size_t n, std::size_t bucket_bytes, std::size_t elem_bytes,
                                                const Communicator& comm) {
  const std::size_t cap = bucket_capacity(bucket_bytes, elem_bytes);
  std::size_t buckets = 0, bytes = 0;
  for (std::size_t begin = 0; begin < n; begin += cap, ++buckets)
    bytes += detail::sum_slices_bytes_sent(std::min(cap, n - begin), elem_bytes, comm.rank(), comm.size());
  return {buckets, bytes};
}

// The gradients of `members` (parameters of dtype T that have one) form one stream, in order; it is cut
// into buckets of `cap` elements (a parameter may straddle two), each summed over ranks in rank order,
// then divided by K into `out` (new gradient tensors, one per member).
template <class T> void average_stream(const Communicator& comm, const std::vector<Var>& params,
                                       const std::vector<std::size_t>& members, std::size_t cap,
                                       std::vector<Tensor>& out) {
  std::size_t n = 0;
  for (std::size_t i : members) n += static_cast<std::size_t>(params[i].numel());
  if (n == 0) return;
  const T K = static_cast<T>(comm.size());
  std::vector<T> bucket(std::min(cap, n));
  std::size_t member = 0, within = 0;   // where the next bucket starts: members[member], element `within`
  for (std::size_t begin = 0; begin < n; begin += cap) {
    const std::size_t length = std::min(cap, n - begin);
    // Gather: [begin, begin + length) of the stream into the bucket.
    std::size_t m = member, w = within;
    for (std::size_t filled = 0; filled < length;) {
      const Tensor& g = params[members[m]].grad();
      const std::size_t take = std::min(static_cast<std::size_t>(g.numel()) - w, length - filled);
      std::copy_n(g.data<T>() + w, take, bucket.data() + filled);
      filled += take;
      w += take;
      if (w == static_cast<std::size_t>(g.numel())) ++m, w = 0;
    }
    detail::sum_slices("GradientAverager::average", comm, bucket.data(), length);
    // Scatter the averages into the new gradients: true division by K, as the sequential formula.
    for (std::size_t done = 0; done < length;) {
      Tensor& g = out[members[member]];
      const std::size_t take = std::min(static_cast<std::size_t>(g.numel()) - within, length - done);
      T* dst = g.data<T>() + within;
      for (std::size_t i = 0; i < take; ++i) dst[i] = bucket[done + i] / K;
      done += take;
      within += take;
      if (within == static_cast<std::size_t>(g.numel())) ++member, within = 0;
    }
  }
}

std::string param_text(std::size_t i, const Var& p) { return "params[" + std::to_string(i) + "]=" + describe(p.value()); }

}  // namespace

GradientAverager::GradientAverager(Communicator comm, std::vector<Var> params, std::size_t bucket_bytes)
    : comm_(comm), bucket_bytes_(bucket_bytes) {
  std::exception_ptr error;
  detail::Claim mine;
  try {
    TG_CHECK(bucket_bytes >= 8, "GradientAverager", "bucket_bytes must be at least 8; got bucket_bytes=", bucket_bytes);
    std::unordered_set<const void*> seen;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Var& p = params[i];
      TG_CHECK(p.defined(), "GradientAverager", "params[", i, "] is an undefined Var");
      TG_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, "GradientAverager",
               "only float32 and float64 parameters have gradients; got ", param_text(i, p));
      TG_CHECK(seen.insert(p.node().get()).second, "GradientAverager", "params[", i,
               "] is listed twice (each parameter must appear once)");
      params_.push_back(p);
    }
    uint64_t h = detail::hash_value(detail::kHashSeed, static_cast<uint64_t>(bucket_bytes));
    for (const Var& p : params_) {
      h = detail::hash_value(h, static_cast<int64_t>(p.dtype()));
      for (int64_t d : p.shape()) h = detail::hash_value(h, d);
      h = detail::hash_value(h, int64_t{-1});   // end of a shape
    }
    mine.value = static_cast<int64_t>(params_.size());
    mine.hash = h;
  } catch (const std::invalid_argument&) {
    error = std::current_exception();
  }
  detail::agree(comm_, "GradientAverager", mine, error, "the parameters' shapes, dtypes or bucket_bytes",
                "parameters", [&] {
                  const auto text = [&](std::size_t i) { return param_text(i, params_[i]); };
                  return detail::first_entries(params_.size(), text) + ", bucket_bytes=" + std::to_string(bucket_bytes);
                });
}

std::pair<std::size_t, std::size_t> GradientAverager::cost() const {
  std::size_t n32 = 0, n64 = 0;
  for (const Var& p : params_)
    if (p.requires_grad()) (p.dtype() == DType::Float32 ? n32 : n64) += static_cast<std::size_t>(p.numel());
  const auto [b32, s32] = stream_cost(n32, bucket_bytes_, sizeof(float), comm_);
  const auto [b64, s64] = stream_cost(n64, bucket_bytes_, sizeof(double), comm_);
  const std::size_t checks = detail::kClaimBytes * static_cast<std::size_t>(comm_.size() - 1);
  return {b32 + b64, comm_.size() == 1 ? 0 : s32 + s64 + checks};
}

void GradientAverager::average() {
  std::exception_ptr error;
  detail::Claim mine;
  std::vector<std::size_t> members32, members64;
  try {
    uint64_t h = detail::kHashSeed;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const Var& p = params_[i];
      const Tensor& g = p.grad();
      h = detail::hash_value(h, static_cast<unsigned char>(g.defined()));
      if (!g.defined()) continue;
      TG_CHECK(g.dtype() == p.dtype() && g.shape() == p.shape(), "GradientAverager::average",
               "a gradient differs from its parameter in shape or dtype; got grad=", describe(g), ", ",
               param_text(i, p));
      (p.dtype() == DType::Float32 ? members32 : members64).push_back(i);
      ++mine.value;
    }
    mine.hash = h;
  } catch (const std::invalid_argument&) {
    error = std::current_exception();
  }
  detail::agree(comm_, "GradientAverager::average", mine, error, "which parameters have a gradient", "gradients",
                [&] {   // this rank's parameters that have a gradient (members32 and 64 split them by dtype)
                  std::vector<std::size_t> with;
                  for (std::size_t i = 0; i < params_.size(); ++i)
                    if (params_[i].grad().defined()) with.push_back(i);
                  return "gradients for " + detail::first_entries(with.size(), [&](std::size_t k) {
                           return param_text(with[k], params_[with[k]]);
                         });
                });
  if (comm_.size() == 1) return;   // g / 1 == g: nothing to do
  std::vector<Tensor> out(params_.size());
  for (std::size_t i : members32) out[i] = Tensor(params_[i].shape(), DType::Float32);
  for (std::size_t i : members64) out[i] = Tensor(params_[i].shape(), DType::Float64);
  average_stream<float>(comm_, params_, members32, bucket_capacity(bucket_bytes_, sizeof(float)), out);
  average_stream<double>(comm_, params_, members64, bucket_capacity(bucket_bytes_, sizeof(double)), out);
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (out[i].defined()) params_[i].set_grad(out[i]);
}

}  // namespace tg::dist
