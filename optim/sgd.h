#pragma once
// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum, weight decay
// (L2 penalty added to the gradient) and maximize: torch.optim.SGD of PyTorch 1.13, whose
// single-tensor update (foreach=False) it reproduces operation by operation:
//   d = maximize ? -grad : grad;  if weight_decay != 0: d = d + weight_decay * param
//   if momentum != 0: buf = (first step of this param) ? d : momentum * buf + (1 - dampening) * d
//                     d = nesterov ? d + momentum * buf : buf
//   param = param - lr * d
// State per parameter (momentum != 0): "momentum_buffer", created at the parameter's first step with a grad.
#include <string>
#include <vector>

#include "tapegrad/optim/optimizer.h"

namespace tg::optim {

// torch.optim.SGD's arguments and defaults (lr is required).
struct SGDOptions {
  double lr;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  // Throws std::invalid_argument naming the field, as PyTorch's checks, plus non-finite values:
  //   "[SGD] invalid learning rate: -0.1 (lr must be finite and >= 0)"
  //   "[SGD] invalid momentum value: -0.5 (momentum must be finite and >= 0)"
  //   "[SGD] invalid dampening value: nan (dampening must be finite)"
  //   "[SGD] invalid weight_decay value: -1 (weight_decay must be finite and >= 0)"
  //   "[SGD] Nesterov momentum requires a momentum and zero dampening; got momentum=0, dampening=0"
  void validate() const;
};

// Options <-> state keys "<prefix>lr", "momentum", "dampening", "weight_decay" (float64 0-d),
// "nesterov", "maximize" (bool 0-d). load_options throws "[op] load_state_dict: ..." for missing/mistyped keys.
void save_options(const SGDOptions& o, const std::string& prefix, StateDict& out);
void load_options(const StateDict& in, const std::string& prefix, const char* op, SGDOptions& o);

class SGD : public GroupedOptimizer<SGDOptions> {
 public:
  // One group with `options` (torch.optim.SGD(params, lr=...)).
  SGD(NamedParams params, SGDOptions options);
  // Several groups, each with its own options (torch.optim.SGD([{...}, {...}])).
  explicit SGD(std::vector<ParamGroup<SGDOptions>> groups);

  void step() override;

 protected:
  void check_param_state(const std::string& param_name, const ParamState& st) const override;
};

}  // namespace tg::optim
