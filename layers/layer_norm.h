#pragma once
// LayerNorm: normalises over the trailing dims given by normalized_shape, then scales and shifts
// elementwise (torch.nn.LayerNorm): y = (x - mean) / sqrt(var + eps) * weight + bias, with the
// biased variance over the last normalized_shape.size() dims.
//
//   tg::LayerNorm norm({.normalized_shape = {64}});   // eps = 1e-5, affine, with bias
//   tg::Var y = norm.forward(x);                        // x [*, 64] -> y [*, 64]
//
// Parameters (state_dict keys as PyTorch): weight [normalized_shape] (initialised to 1) and bias
// [normalized_shape] (initialised to 0). elementwise_affine = false registers neither; bias = false
// (PyTorch >= 2.1) registers only weight. The accessors weight() and bias() read the Module registry
// (replace with set_parameter, see layers/module.h) and give undefined Vars when not registered.
#include <cstdint>

#include "tapegrad/framework/dtype.h"
#include "tapegrad/framework/random.h"
#include "tapegrad/framework/shape.h"
#include "tapegrad/framework/tape.h"
#include "tapegrad/layers/module.h"

namespace tg {

struct LayerNormOptions {
  Shape normalized_shape;
  double eps = 1e-5;
  bool elementwise_affine = true;
  bool bias = true;
  // Throws std::invalid_argument naming the field, e.g.
  // "[LayerNorm] normalized_shape must be non-empty with positive sizes; got normalized_shape=[]".
  void validate() const;
};

class LayerNorm : public Module {
 public:
  // Throws std::invalid_argument for invalid options or a non-floating dtype.
  explicit LayerNorm(LayerNormOptions options, DType dtype = DType::Float32);
  // The same, in the (options, generator, dtype) shape of the other layers' constructors; LayerNorm's
  // initialisation is deterministic, so gen is not drawn from.
  LayerNorm(LayerNormOptions options, const Generator& gen, DType dtype = DType::Float32);

  // input [*, normalized_shape...] -> same shape, in the parameters' dtype (float32 or float64 when
  // there are no parameters). Throws std::invalid_argument, prefixed "[LayerNorm <path>]", when the
  // trailing dims differ from normalized_shape or the dtype differs from the parameters'.
  Var forward(const Var& input) const;

  // Sets weight to 1 and bias to 0 in place, as PyTorch's reset_parameters().
  void reset_parameters();

  const LayerNormOptions& options() const { return options_; }

  const Var& weight() const { return weight_ ? *weight_ : absent(); }   // [normalized_shape] or undefined
  const Var& bias() const { return bias_ ? *bias_ : absent(); }         // [normalized_shape] or undefined

 private:
  LayerNormOptions options_;
  const Var* weight_ = nullptr;   // registry entries (follow set_parameter); null when not registered
  const Var* bias_ = nullptr;
};

}  // namespace tg
