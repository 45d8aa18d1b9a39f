#pragma once
// Adam (torch.optim.Adam: L2 weight decay added to the gradient) and AdamW (torch.optim.AdamW:
// decoupled weight decay, param *= 1 - lr * weight_decay) of PyTorch 1.13. Both run one shared
// implementation whose flag selects the weight-decay form, reproducing the single-tensor update
// (foreach=False) operation by operation, including where the bias corrections are applied:
//   step += 1;  g = maximize ? -grad : grad
//   Adam: if weight_decay != 0: g = g + weight_decay * param     AdamW: param = param * (1 - lr * weight_decay)
//   exp_avg = beta1 * exp_avg + (1 - beta1) * g;  exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   v = amsgrad ? (max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq)) : exp_avg_sq
//   param = param - lr / (1 - beta1^step) * exp_avg / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// State per parameter, created at its first step with a grad: "step" (int64 0-d; PyTorch keeps a float
// tensor), "exp_avg", "exp_avg_sq" and, with amsgrad, "max_exp_avg_sq" (zeros when amsgrad is switched
// on later). A parameter skipped for lack of a grad keeps its step count, as in PyTorch.
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/optim/optimizer.h"

namespace tg::optim {

// torch.optim.Adam's arguments and defaults.
struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
  bool maximize = false;
  // Throws std::invalid_argument naming the field, as PyTorch's checks, plus non-finite values:
  //   "[Adam] invalid learning rate: -1 (lr must be finite and >= 0)"
  //   "[Adam] invalid epsilon value: -1e-08 (eps must be finite and >= 0)"
  //   "[Adam] invalid beta parameter at index 0: 1.5 (betas must be in [0, 1))"   (index 1 likewise)
  //   "[Adam] invalid weight_decay value: -0.1 (weight_decay must be finite and >= 0)"
  void validate() const;
};

// torch.optim.AdamW's arguments and defaults (weight_decay 1e-2); messages start with "[AdamW]".
struct AdamWOptions {
  double lr = 1e-3;
  std::pair<double, double> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
  void validate() const;
};

// Options <-> state keys "<prefix>lr", "eps", "weight_decay" (float64 0-d), "betas" (float64 [2]),
// "amsgrad", "maximize" (bool 0-d). load_options throws "[op] load_state_dict: ..." for missing/mistyped keys.
void save_options(const AdamOptions& o, const std::string& prefix, StateDict& out);
void load_options(const StateDict& in, const std::string& prefix, const char* op, AdamOptions& o);
void save_options(const AdamWOptions& o, const std::string& prefix, StateDict& out);
void load_options(const StateDict& in, const std::string& prefix, const char* op, AdamWOptions& o);

// The shared implementation; use Adam or AdamW.
template <class Options> class AdamBase : public GroupedOptimizer<Options> {
 public:
  void step() override;
  bool decoupled_weight_decay() const { return decoupled_weight_decay_; }

 protected:
  AdamBase(std::string name, std::vector<ParamGroup<Options>> groups, bool decoupled_weight_decay);
  void check_param_state(const std::string& param_name, const ParamState& st) const override;

 private:
  bool decoupled_weight_decay_;
};

class Adam : public AdamBase<AdamOptions> {
 public:
  Adam(NamedParams params, AdamOptions options = {});   // one group
  explicit Adam(std::vector<ParamGroup<AdamOptions>> groups);
};

class AdamW : public AdamBase<AdamWOptions> {
 public:
  AdamW(NamedParams params, AdamWOptions options = {});   // one group
  explicit AdamW(std::vector<ParamGroup<AdamWOptions>> groups);
};

}  // namespace tg::optim
