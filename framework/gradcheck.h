#pragma once
// Public gradient checker: compares the analytic vector-Jacobian products of a function built from
// tapegrad ops with float64 central differences. Users call it in their own tests for custom ops and
// models (PyTorch equivalent: torch.autograd.gradcheck).
//
//   auto r = tg::gradcheck([](const std::vector<tg::Var>& x) { return my_op(x[0], x[1]); }, {a, b});
//   REQUIRE(r.ok);   // r.message names the input, the element, analytic vs numeric, and the errors
//
// fn is called once for the analytic pass and twice per checked element, so it must be a pure
// function of its inputs (re-seed any Generator inside fn to replay dropout masks).
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/framework/tape.h"

namespace tg {

struct GradcheckOptions {
  double eps = 1e-6;              // central-difference step
  double atol = 1e-8;             // pass if |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-6;
  uint64_t seed = 0;              // seeds the random upstream gradient u (loss = sum(fn(x) * u))
  bool raise_exception = false;   // throw std::runtime_error(message) on failure, as torch's default
  int64_t max_elements = -1;      // check at most this many elements per input (evenly spread); -1: all
};

struct GradcheckResult {
  bool ok = true;
  std::string message;            // empty when ok; otherwise the first failure and a summary
  double max_abs_error = 0.0;     // over all checked elements
  double max_rel_error = 0.0;     // |a - n| / max(|n|, 1e-300) over elements with |n| > atol
  int64_t checked = 0;            // elements compared
  explicit operator bool() const { return ok; }
};

using GradcheckFn = std::function<Var(const std::vector<Var>&)>;

// Every input that requires grad must be float64; inputs that do not require grad are passed
// through unchanged. Throws std::invalid_argument for float32 inputs or an fn that returns an
// output that does not require grad.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Var>& inputs, const GradcheckOptions& options = {});

// Also checks `params`: leaves that fn uses directly (a model's parameters, e.g. model.parameters())
// rather than through its argument. Their values are perturbed in place and restored exactly; their
// .grad() is left as it was before the call. In the report, param i is numbered after the inputs.
//   tg::gradcheck([&](const std::vector<tg::Var>& x) { return model.forward(x[0]); }, {x}, model.parameters());
// (params is a span, not a vector, so that a braced options list `{.max_elements = 10}` as the third
// argument can only mean the options.)
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Var>& inputs, std::span<const Var> params,
                          const GradcheckOptions& options = {});

}  // namespace tg
