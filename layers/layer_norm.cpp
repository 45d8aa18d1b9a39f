#include "tapegrad/layers/layer_norm.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/nn_functional.h"

namespace tg {
namespace {


bool trailing_dims_match(const Shape& input, const Shape& normalized) {
  if (input.size() < normalized.size()) return false;
  size_t offset = input.size() - normalized.size();
  for (size_t i = 0; i < normalized.size(); ++i)
    if (input[offset + i] != normalized[i]) return false;
  return true;
}

}  // namespace

void LayerNormOptions::validate() const {
  bool sizes_ok = !normalized_shape.empty();
  for (int64_t s : normalized_shape) sizes_ok = sizes_ok && s > 0;
  TG_CHECK(sizes_ok, "LayerNorm", "normalized_shape must be non-empty with positive sizes; got normalized_shape=",
           to_string(normalized_shape));
  TG_CHECK(std::isfinite(eps) && eps >= 0.0, "LayerNorm", "eps must be finite and non-negative; got eps=", eps);
}

LayerNorm::LayerNorm(LayerNormOptions options, DType dtype) : options_(std::move(options)) {
  options_.validate();
  TG_CHECK(is_floating(dtype), "LayerNorm", "dtype must be float32 or float64; got dtype=", to_string(dtype));
  if (options_.elementwise_affine) {
    weight_ = &register_parameter("weight", Tensor::ones(options_.normalized_shape, dtype));
    if (options_.bias) bias_ = &register_parameter("bias", Tensor::zeros(options_.normalized_shape, dtype));
  }
}

LayerNorm::LayerNorm(LayerNormOptions options, const Generator& /*gen*/, DType dtype) : LayerNorm(std::move(options), dtype) {}

void LayerNorm::reset_parameters() {
  Var w = weight(), b = bias();   // handles to the registered nodes, updated in place
  if (w.defined()) w.value().fill_(1.0);
  if (b.defined()) b.value().zero_();
}

Var LayerNorm::forward(const Var& input) const {
  const std::string op = error_op("LayerNorm");
  TG_CHECK(input.defined(), op.c_str(), "input is undefined");
  const Shape& ns = options_.normalized_shape;
  TG_CHECK(trailing_dims_match(input.shape(), ns), op.c_str(), "expected input of shape [*, ",
           to_string(ns).substr(1), " for normalized_shape=", to_string(ns), "; got input=", to_string(input.shape()));
  const Var& w = weight();
  if (w.defined())
    TG_CHECK(input.dtype() == w.dtype(), op.c_str(), "input dtype must equal the weight's (", to_string(w.dtype()),
             "); got input=", describe(input.value()));
  else
    TG_CHECK(is_floating(input.dtype()), op.c_str(), "input must be float32 or float64; got input=",
             describe(input.value()));
  try {
    return layer_norm(input, ns, w, bias(), options_.eps);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[" + op + "] " + e.what());
  }
}

}  // namespace tg
