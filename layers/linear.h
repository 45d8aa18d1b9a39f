#pragma once
// Linear: an affine map y = x W^T + b over the last dim (torch.nn.Linear).
//
//   tg::Linear fc({.in_features = 64, .out_features = 32});   // bias = true
//   tg::Var y = fc.forward(x);                                 // x [*, 64] -> y [*, 32]
//
// Parameters (state_dict keys as PyTorch), read through accessors (the Module registry owns them;
// replace one with set_parameter("weight", v), see layers/module.h): weight() [out_features, in_features],
// bias() [out_features] (an undefined Var, and not registered, when bias = false).
// The Generator is only drawn from during construction / reset_parameters and is not kept.
// Initialisation as PyTorch 1.13 reset_parameters(): weight ~ kaiming_uniform(a = sqrt(5)), which is
// U(-1/sqrt(in_features), 1/sqrt(in_features)), then bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features)),
// drawn in that order from the given Generator.
#include <cstdint>

#include "tapegrad/framework/dtype.h"
#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tape.h"
#include "tapegrad/layers/module.h"

namespace tg {

struct LinearOptions {
  int64_t in_features, out_features;
  bool bias = true;
  // Throws std::invalid_argument naming the field, e.g.
  // "[Linear] in_features must be positive; got in_features=0".
  void validate() const;
};

class Linear : public Module {
 public:
  // Throws std::invalid_argument for invalid options or a non-floating dtype.
  explicit Linear(LinearOptions options, Generator gen = default_generator(), DType dtype = DType::Float32);

  // input [*, in_features] (at least 1-d; a 1-d input gives a 1-d output) -> [*, out_features], in the
  // parameters' dtype. Throws std::invalid_argument, prefixed "[Linear <path>]", for a wrong last dim
  // ("input feature size must be in_features=4; got input=[2, 3]") or a dtype differing from the weight's.
  Var forward(const Var& input) const;
  // residual + forward(input) as one op (tg::linear_residual: add's bits, the residual added to the product's
  // tiles); residual has the output's shape. Undefined residual: forward(input).
  Var forward_residual(const Var& input, const Var& residual) const;

  // Redraws weight and bias in place (same dtype; handles stay valid), as PyTorch's reset_parameters().
  void reset_parameters(Generator gen = default_generator());

  const LinearOptions& options() const { return options_; }

  const Var& weight() const { return *weight_; }   // [out_features, in_features]
  const Var& bias() const { return bias_ ? *bias_ : absent(); }   // [out_features]; undefined without bias

 private:
  LinearOptions options_;
  const Var* weight_ = nullptr;   // registry entries (layers/module.h): they follow set_parameter
  const Var* bias_ = nullptr;
};

}  // namespace tg
