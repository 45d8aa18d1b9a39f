#include "tapegrad/layers/activation.h"

#include <stdexcept>
#include <string>

#include "tapegrad/framework/check.h"

namespace tg {
namespace {

// op is "ReLU" for a root module, "ReLU layers.0.activation" inside a model; checks the input.
std::string checked_op(std::string op, const Var& input) {
  TG_CHECK(input.defined(), op.c_str(), "input is undefined");
  TG_CHECK(is_floating(input.dtype()), op.c_str(), "input must be float32 or float64; got input=",
           describe(input.value()));
  return op;
}

}  // namespace

Var ReLU::forward(const Var& input) const {
  const std::string op = checked_op(error_op("ReLU"), input);
  try {
    return relu(input);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[" + op + "] " + e.what());
  }
}

Var GELU::forward(const Var& input) const {
  const std::string op = checked_op(error_op("GELU"), input);
  try {
    return gelu(input, approximate_);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[" + op + "] " + e.what());
  }
}

}  // namespace tg
