#pragma once
// Learning-rate schedules that drive an optimizer's group lrs, as torch.optim.lr_scheduler: the
// scheduler keeps a pointer to its optimizer (which must outlive it), its constructor writes the lr
// of step 0 into every group, and step() (called after optimizer.step()) advances last_step and
// writes lr_at(last_step, g) into group g. lr_at is a pure function of the step, the options and the
// base lrs (the groups' lrs when the scheduler was built), computed with the same floating-point
// operations as PyTorch's chainable form, so the sequences are bitwise PyTorch's as long as nothing
// else writes the lrs (PyTorch would compound such writes; here the schedule overrides them).
//
// State (same StateDict as optimizers, see optim/optimizer.h): "last_step" int64 0-d, "base_lrs"
// float64 [num_groups], and the options: StepLR "step_size" int64 0-d, "gamma" float64 0-d;
// ConstantLR "factor" float64 0-d, "total_iters" int64 0-d; WarmupCosine "learning_rate", "min_lr"
// float64 0-d, "warmup_iters", "lr_decay_iters" int64 0-d.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/optim/optimizer.h"

namespace tg::optim {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // The lr of param group `group` after `step` scheduler steps. Throws std::invalid_argument for
  // step < 0 or a group index out of range.
  virtual double lr_at(int64_t step, size_t group = 0) const = 0;
  // last_step += 1, then writes lr_at(last_step, g) into every group g of the optimizer.
  void step();
  int64_t last_step() const { return last_step_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  std::vector<double> get_last_lr() const;   // lr_at(last_step, g) for every group

  StateDict state_dict() const;
  // Restores state_dict() output, then writes lr_at(last_step, g) into the optimizer's groups (so the
  // resumed run uses the same lrs whether or not the optimizer state is loaded afterwards).
  // All-or-nothing; throws std::invalid_argument "[<name>] load_state_dict: ..." on a missing or mistyped
  // key, a base_lrs size different from the optimizer's group count, or invalid options.
  void load_state_dict(const StateDict& state);

 protected:
  LRScheduler(std::string name, Optimizer& optimizer);
  // Subclass constructors call this last: writes lr_at(0, g) into every group.
  void apply_lrs();
  void check_lr_at_args(int64_t step, size_t group) const;
  const std::string& name() const { return name_; }
  virtual void save_options(StateDict& out) const = 0;
  // Reads the options from `in` and validates them before assigning (throws, unchanged, on error).
  virtual void load_options(const StateDict& in) = 0;

 private:
  std::string name_;
  Optimizer* optimizer_;
  std::vector<double> base_lrs_;
  int64_t last_step_ = 0;
};

// torch.optim.lr_scheduler.StepLR: lr multiplied by gamma every step_size steps (chained products,
// base * gamma * gamma * ..., bitwise PyTorch's sequence).
struct StepLROptions {
  int64_t step_size;
  double gamma = 0.1;
  // "[StepLR] step_size must be >= 1; got step_size=0", "[StepLR] gamma must be finite and >= 0; got gamma=-1"
  void validate() const;
};

class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, StepLROptions options);
  double lr_at(int64_t step, size_t group = 0) const override;
  const StepLROptions& options() const { return options_; }

 protected:
  void save_options(StateDict& out) const override;
  void load_options(const StateDict& in) override;

 private:
  StepLROptions options_;
};

// torch.optim.lr_scheduler.ConstantLR: lr = base * factor until total_iters steps, then
// (base * factor) * (1 / factor) (PyTorch's chained arithmetic; with total_iters = 0 the factor stays
// applied forever, as in PyTorch 1.13). factor = 1 gives a constant schedule.
struct ConstantLROptions {
  double factor = 1.0 / 3;
  int64_t total_iters = 5;
  // "[ConstantLR] factor must be in (0, 1]; got factor=1.5", "[ConstantLR] total_iters must be >= 0; got total_iters=-1"
  void validate() const;
};

class ConstantLR : public LRScheduler {
 public:
  explicit ConstantLR(Optimizer& optimizer, ConstantLROptions options = {});
  double lr_at(int64_t step, size_t group = 0) const override;
  const ConstantLROptions& options() const { return options_; }

 protected:
  void save_options(StateDict& out) const override;
  void load_options(const StateDict& in) override;

 private:
  ConstantLROptions options_;
};

// nanoGPT's get_lr (the same lr for every group, whatever the groups' own lrs):
//   it < warmup_iters:     learning_rate * it / warmup_iters
//   it > lr_decay_iters:   min_lr
//   otherwise:             ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
//                          min_lr + 0.5 * (1 + cos(pi * ratio)) * (learning_rate - min_lr)
struct WarmupCosineOptions {
  double learning_rate;
  int64_t warmup_iters;
  int64_t lr_decay_iters;
  double min_lr;
  // learning_rate and min_lr finite and >= 0, warmup_iters >= 0, lr_decay_iters > warmup_iters, e.g.
  // "[WarmupCosine] lr_decay_iters must be > warmup_iters; got lr_decay_iters=10, warmup_iters=10"
  void validate() const;
};

class WarmupCosine : public LRScheduler {
 public:
  WarmupCosine(Optimizer& optimizer, WarmupCosineOptions options);
  double lr_at(int64_t step, size_t group = 0) const override;
  const WarmupCosineOptions& options() const { return options_; }

 protected:
  void save_options(StateDict& out) const override;
  void load_options(const StateDict& in) override;

 private:
  WarmupCosineOptions options_;
};

}  // namespace tg::optim
