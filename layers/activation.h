#pragma once
// Activation modules (torch.nn.ReLU, torch.nn.GELU): elementwise, no parameters, any shape.
//
//   tg::GELU act;                                  // exact erf form, approximate='none'
//   tg::GELU fast(tg::GeluApproximate::tanh);      // approximate='tanh'
//   tg::Var y = act.forward(x);                    // x [*] -> y [*]
//
// Not supported: ReLU(inplace=True).
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/tape.h"
#include "tapegrad/layers/module.h"

namespace tg {

class ReLU : public Module {
 public:
  ReLU() = default;
  // max(input, 0), gradient 0 at 0 as PyTorch. Throws std::invalid_argument, prefixed
  // "[ReLU <path>]", for a non-floating input.
  Var forward(const Var& input) const;
};

class GELU : public Module {
 public:
  explicit GELU(GeluApproximate approximate = GeluApproximate::none) : approximate_(approximate) {}
  // x * Phi(x) (or the tanh approximation). Throws std::invalid_argument, prefixed "[GELU <path>]",
  // for a non-floating input.
  Var forward(const Var& input) const;
  GeluApproximate approximate() const { return approximate_; }

 private:
  GeluApproximate approximate_;
};

}  // namespace tg
