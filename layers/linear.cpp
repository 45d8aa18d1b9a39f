#include "tapegrad/layers/linear.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/layers/init.h"

namespace tg {
void LinearOptions::validate() const {
  TG_CHECK(in_features > 0, "Linear", "in_features must be positive; got in_features=", in_features);
  TG_CHECK(out_features > 0, "Linear", "out_features must be positive; got out_features=", out_features);
}

Linear::Linear(LinearOptions options, Generator gen, DType dtype) : options_(options) {
  options_.validate();
  TG_CHECK(is_floating(dtype), "Linear", "dtype must be float32 or float64; got dtype=", to_string(dtype));
  weight_ = &register_parameter("weight", Tensor::zeros({options_.out_features, options_.in_features}, dtype));
  if (options_.bias) bias_ = &register_parameter("bias", Tensor::zeros({options_.out_features}, dtype));
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator gen) {
  // PyTorch: kaiming_uniform_(weight, a=sqrt(5)); then bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  Var w = weight(), b = bias();   // handles to the registered nodes, updated in place
  DType dtype = w.dtype();
  w.value().copy_(init::kaiming_uniform(w.shape(), std::sqrt(5.0), gen, dtype));
  if (b.defined()) {
    double bound = 1.0 / std::sqrt(static_cast<double>(init::fans(w.shape()).first));
    b.value().copy_(init::uniform(b.shape(), -bound, bound, gen, dtype));
  }
}

Var Linear::forward(const Var& input) const { return forward_residual(input, Var()); }

Var Linear::forward_residual(const Var& input, const Var& residual) const {
  const std::string op = error_op("Linear");
  TG_CHECK(input.defined(), op.c_str(), "input is undefined");
  TG_CHECK(input.dim() >= 1 && input.size(-1) == options_.in_features, op.c_str(),
           "input feature size must be in_features=", options_.in_features, "; got input=", to_string(input.shape()));
  const Var& w = weight();
  TG_CHECK(input.dtype() == w.dtype(), op.c_str(), "input dtype must equal the weight's (", to_string(w.dtype()),
           "); got input=", describe(input.value()));
  try {
    return residual.defined() ? linear_residual(input, w, bias(), residual) : linear(input, w, bias());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[" + op + "] " + e.what());
  }
}

}  // namespace tg
