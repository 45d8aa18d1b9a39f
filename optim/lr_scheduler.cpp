#include "tapegrad/optim/lr_scheduler.h"

#include <cmath>
#include <numbers>

#include "tapegrad/framework/check.h"

namespace tg::optim {

using detail::format_number;

// ---- LRScheduler ----

LRScheduler::LRScheduler(std::string name, Optimizer& optimizer) : name_(std::move(name)), optimizer_(&optimizer) {
  for (size_t g = 0; g < optimizer.num_groups(); ++g) base_lrs_.push_back(optimizer.lr(g));
}

void LRScheduler::apply_lrs() {
  for (size_t g = 0; g < base_lrs_.size(); ++g) optimizer_->set_lr(g, lr_at(last_step_, g));
}

void LRScheduler::check_lr_at_args(int64_t step, size_t group) const {
  TG_CHECK(step >= 0, name_.c_str(), "step must be >= 0; got step=", step);
  TG_CHECK(group < base_lrs_.size(), name_.c_str(), "group index out of range; got group=", group, " for ",
           base_lrs_.size(), " param groups");
}

void LRScheduler::step() {
  ++last_step_;
  apply_lrs();
}

std::vector<double> LRScheduler::get_last_lr() const {
  std::vector<double> lrs;
  for (size_t g = 0; g < base_lrs_.size(); ++g) lrs.push_back(lr_at(last_step_, g));
  return lrs;
}

StateDict LRScheduler::state_dict() const {
  StateDict out;
  out.add("last_step", detail::scalar_i64(last_step_));
  out.add("base_lrs",
          Tensor::from_vector(base_lrs_, {static_cast<int64_t>(base_lrs_.size())}, DType::Float64));
  save_options(out);
  return out;
}

void LRScheduler::load_state_dict(const StateDict& state) {
  const char* op = name_.c_str();
  int64_t last_step = detail::read_i64(state, "last_step", op);
  TG_CHECK(last_step >= 0, op, "load_state_dict: last_step must be >= 0; got last_step=", last_step);
  const int64_t groups = static_cast<int64_t>(optimizer_->num_groups());
  Tensor base = detail::read_tensor(state, "base_lrs", op, DType::Float64, {groups});
  for (double lr : base.to_vector())
    TG_CHECK(std::isfinite(lr) && lr >= 0, op, "load_state_dict: base_lrs must be finite and >= 0; got ", format_number(lr));
  load_options(state);   // validates before assigning; nothing below throws
  last_step_ = last_step;
  base_lrs_ = base.to_vector();
  apply_lrs();
}

// ---- StepLR ----

void StepLROptions::validate() const {
  TG_CHECK(step_size >= 1, "StepLR", "step_size must be >= 1; got step_size=", step_size);
  TG_CHECK(std::isfinite(gamma) && gamma >= 0, "StepLR", "gamma must be finite and >= 0; got gamma=",
           format_number(gamma));
}

StepLR::StepLR(Optimizer& optimizer, StepLROptions options) : LRScheduler("StepLR", optimizer), options_(options) {
  options_.validate();
  apply_lrs();
}

double StepLR::lr_at(int64_t step, size_t group) const {
  check_lr_at_args(step, group);
  // PyTorch multiplies the current lr by gamma at every multiple of step_size.
  double lr = base_lrs()[group];
  for (int64_t k = options_.step_size; k <= step && lr != 0; k += options_.step_size) lr = lr * options_.gamma;
  return lr;
}

void StepLR::save_options(StateDict& out) const {
  out.add("step_size", detail::scalar_i64(options_.step_size));
  out.add("gamma", detail::scalar_f64(options_.gamma));
}

void StepLR::load_options(const StateDict& in) {
  StepLROptions o{.step_size = detail::read_i64(in, "step_size", name().c_str()),
                  .gamma = detail::read_f64(in, "gamma", name().c_str())};
  o.validate();
  options_ = o;
}

// ---- ConstantLR ----

void ConstantLROptions::validate() const {
  TG_CHECK(factor > 0 && factor <= 1, "ConstantLR", "factor must be in (0, 1]; got factor=", format_number(factor));
  TG_CHECK(total_iters >= 0, "ConstantLR", "total_iters must be >= 0; got total_iters=", total_iters);
}

ConstantLR::ConstantLR(Optimizer& optimizer, ConstantLROptions options)
    : LRScheduler("ConstantLR", optimizer), options_(options) {
  options_.validate();
  apply_lrs();
}

double ConstantLR::lr_at(int64_t step, size_t group) const {
  check_lr_at_args(step, group);
  // PyTorch: lr * factor at step 0, unchanged until total_iters, then lr * (1 / factor) once.
  double lr = base_lrs()[group] * options_.factor;
  if (options_.total_iters > 0 && step >= options_.total_iters) lr = lr * (1.0 / options_.factor);
  return lr;
}

void ConstantLR::save_options(StateDict& out) const {
  out.add("factor", detail::scalar_f64(options_.factor));
  out.add("total_iters", detail::scalar_i64(options_.total_iters));
}

void ConstantLR::load_options(const StateDict& in) {
  ConstantLROptions o{.factor = detail::read_f64(in, "factor", name().c_str()),
                      .total_iters = detail::read_i64(in, "total_iters", name().c_str())};
  o.validate();
  options_ = o;
}

// ---- WarmupCosine ----

void WarmupCosineOptions::validate() const {
  TG_CHECK(std::isfinite(learning_rate) && learning_rate >= 0, "WarmupCosine",
           "learning_rate must be finite and >= 0; got learning_rate=", format_number(learning_rate));
  TG_CHECK(std::isfinite(min_lr) && min_lr >= 0, "WarmupCosine", "min_lr must be finite and >= 0; got min_lr=",
           format_number(min_lr));
  TG_CHECK(warmup_iters >= 0, "WarmupCosine", "warmup_iters must be >= 0; got warmup_iters=", warmup_iters);
  TG_CHECK(lr_decay_iters > warmup_iters, "WarmupCosine", "lr_decay_iters must be > warmup_iters; got lr_decay_iters=",
           lr_decay_iters, ", warmup_iters=", warmup_iters);
}

WarmupCosine::WarmupCosine(Optimizer& optimizer, WarmupCosineOptions options)
    : LRScheduler("WarmupCosine", optimizer), options_(options) {
  options_.validate();
  apply_lrs();
}

double WarmupCosine::lr_at(int64_t step, size_t group) const {
  check_lr_at_args(step, group);
  const WarmupCosineOptions& o = options_;
  const double it = static_cast<double>(step);
  if (step < o.warmup_iters) return o.learning_rate * it / static_cast<double>(o.warmup_iters);
  if (step > o.lr_decay_iters) return o.min_lr;
  double decay_ratio = (it - static_cast<double>(o.warmup_iters)) /
                       static_cast<double>(o.lr_decay_iters - o.warmup_iters);
  double coeff = 0.5 * (1.0 + std::cos(std::numbers::pi * decay_ratio));
  return o.min_lr + coeff * (o.learning_rate - o.min_lr);
}

void WarmupCosine::save_options(StateDict& out) const {
  out.add("learning_rate", detail::scalar_f64(options_.learning_rate));
  out.add("warmup_iters", detail::scalar_i64(options_.warmup_iters));
  out.add("lr_decay_iters", detail::scalar_i64(options_.lr_decay_iters));
  out.add("min_lr", detail::scalar_f64(options_.min_lr));
}

void WarmupCosine::load_options(const StateDict& in) {
  const char* op = name().c_str();
  WarmupCosineOptions o{.learning_rate = detail::read_f64(in, "learning_rate", op),
                        .warmup_iters = detail::read_i64(in, "warmup_iters", op),
                        .lr_decay_iters = detail::read_i64(in, "lr_decay_iters", op),
                        .min_lr = detail::read_f64(in, "min_lr", op)};
  o.validate();
  options_ = o;
}

}  // namespace tg::optim
