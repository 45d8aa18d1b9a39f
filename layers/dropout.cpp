#include "tapegrad/layers/dropout.h"

#include <stdexcept>
#include <string>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/nn_functional.h"

namespace tg {
void DropoutOptions::validate() const {
  TG_CHECK(p >= 0.0 && p <= 1.0, "Dropout", "p must be in [0, 1]; got p=", p);   // NaN fails too
}

Dropout::Dropout(DropoutOptions options, Generator gen) : options_(options), gen_(gen) { options_.validate(); }

Var Dropout::forward(const Var& input) {
  const std::string op = error_op("Dropout");
  TG_CHECK(input.defined(), op.c_str(), "input is undefined");
  TG_CHECK(is_floating(input.dtype()), op.c_str(), "input must be float32 or float64; got input=",
           describe(input.value()));
  if (!is_training()) return input;
  try {
    return dropout(input, options_.p, true, gen_);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[" + op + "] " + e.what());
  }
}

}  // namespace tg
