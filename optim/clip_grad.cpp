#include "tapegrad/optim/clip_grad.h"

#include <cmath>
#include <stdexcept>

#include "tapegrad/framework/check.h"
#include "framework/kernels/optim_update.h"

namespace tg::optim {
namespace {

std::vector<Var> vars_of(const NamedParams& params) {
  std::vector<Var> vars;
  for (const auto& [name, p] : params) vars.push_back(p);
  return vars;
}

// The defined grads of `params` (handles sharing storage with the Vars' grads).
std::vector<Tensor> defined_grads(const std::vector<Var>& params, const char* op) {
  std::vector<Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    TG_CHECK(params[i].defined(), op, "parameter ", i, " is an undefined Var");
    if (params[i].grad().defined()) grads.push_back(params[i].grad());
  }
  return grads;
}

}  // namespace

double clip_grad_norm_(const std::vector<Var>& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  const char* op = "clip_grad_norm_";
  TG_CHECK(max_norm >= 0, op, "max_norm must be >= 0; got max_norm=", detail::format_number(max_norm));
  TG_CHECK(!std::isnan(norm_type), op, "norm_type must be a number; got norm_type=nan");
  std::vector<Tensor> grads = defined_grads(params, op);
  if (grads.empty()) return 0.0;
  // PyTorch: torch.norm(torch.stack([torch.norm(g, p) for g in grads]), p); for p = inf the max.
  // The per-gradient norms in one parallel region (the same bits as one vector_norm each).
  Tensor norms = Tensor::from_vector(kernels::vector_norms(grads, norm_type), {static_cast<int64_t>(grads.size())});
  const double total_norm = kernels::vector_norm(norms, norm_type);
  if (error_if_nonfinite && !std::isfinite(total_norm)) {
    throw std::runtime_error("[clip_grad_norm_] the total norm of order " + detail::format_number(norm_type) +
                             " for gradients from `parameters` is non-finite, so it cannot be clipped; got "
                             "total_norm=" + detail::format_number(total_norm) +
                             ". To scale the gradients by the non-finite norm anyway, set error_if_nonfinite=false");
  }
  const double clip_coef = max_norm / (total_norm + 1e-6);
  // PyTorch multiplies by clamp(clip_coef, max=1): a no-op unless clip_coef < 1 or NaN.
  if (!(clip_coef >= 1.0))
    kernels::scale_many(grads, clip_coef);
  return total_norm;
}

double clip_grad_norm_(const NamedParams& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  return clip_grad_norm_(vars_of(params), max_norm, norm_type, error_if_nonfinite);
}

void clip_grad_value_(const std::vector<Var>& params, double clip_value) {
  TG_CHECK(clip_value >= 0, "clip_grad_value_", "clip_value must be >= 0; got clip_value=",
           detail::format_number(clip_value));
  std::vector<Tensor> grads = defined_grads(params, "clip_grad_value_");
  for (Tensor& g : grads) kernels::clamp_into(g, -clip_value, clip_value);
}

void clip_grad_value_(const NamedParams& params, double clip_value) { clip_grad_value_(vars_of(params), clip_value); }

}  // namespace tg::optim
