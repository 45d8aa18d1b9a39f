#pragma once
// Dropout: in training mode zeroes each element with probability p and scales the kept ones by
// 1 / (1 - p); in eval mode returns its input unchanged (torch.nn.Dropout).
//
//   tg::Generator gen(42);
//   tg::Dropout drop({.p = 0.1}, gen);   // masks drawn from gen's stream (default: tg::default_generator())
//   tg::Var y = drop.forward(x);          // any shape; identity after drop.eval()
//
// No parameters. The masks come from the stream of the Generator passed at construction: the module
// keeps a copy of the handle, sharing the caller's stream (framework/random.h states the rule), so it may
// outlive the caller's variable, and re-seeding any handle of the stream replays the same masks.
// Not supported: inplace.
#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tape.h"
#include "tapegrad/layers/module.h"

namespace tg {

struct DropoutOptions {
  double p = 0.5;
  // Throws std::invalid_argument "[Dropout] p must be in [0, 1]; got p=1.5".
  void validate() const;
};

class Dropout : public Module {
 public:
  explicit Dropout(DropoutOptions options = {}, Generator gen = default_generator());

  // input [*] -> [*]. Training (is_training()): F.dropout(input, p, training=true) with a mask drawn
  // from the generator (p = 1 gives zeros). Eval: returns input itself. Throws std::invalid_argument,
  // prefixed "[Dropout <path>]", for a non-floating input. Not const: it advances the generator.
  Var forward(const Var& input);

  const DropoutOptions& options() const { return options_; }

 private:
  DropoutOptions options_;
  Generator gen_;   // shares the caller's stream
};

}  // namespace tg
