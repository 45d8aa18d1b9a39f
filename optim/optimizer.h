#pragma once
// Optimizer base (torch.optim.Optimizer): named parameters in groups, each group with its own options;
// lazily created per-parameter state; zero_grad; and a flat, serialisable state for checkpoints.
// Optimizers see only named parameters (tg::Var leaves) and their .grad(), never modules. step()
// updates param.value() in place (the storage is shared with the module that owns the Var) and skips
// parameters whose grad is undefined, as PyTorch skips p.grad is None.
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tapegrad/framework/state_dict.h"
#include "tapegrad/framework/tape.h"

namespace tg::optim {

// (name, parameter) pairs, e.g. Module::named_parameters(). Names are the state_dict keys
// ("linear1.weight"); within one optimizer they are unique and contain no '/'.
using NamedParams = std::vector<std::pair<std::string, Var>>;

// Serialisable state of an optimizer or an lr scheduler (state_dict()): a tg::StateDict
// (framework/state_dict.h) of (key, tensor), every tensor a copy (never aliasing live state). A
// checkpoint (framework/io/checkpoint.h) stores each entry as the dataset <section>/<key>; reading them
// back in any order and calling load_state_dict restores the object exactly.
//
// Optimizer keys (G = group index, N = parameter name):
//   state/N/step               int64 0-d: Adam/AdamW updates applied to N (PyTorch's state['step'])
//   state/N/exp_avg            param's shape and dtype (Adam/AdamW)
//   state/N/exp_avg_sq         param's shape and dtype (Adam/AdamW)
//   state/N/max_exp_avg_sq     param's shape and dtype (Adam/AdamW with amsgrad)
//   state/N/momentum_buffer    param's shape and dtype (SGD with momentum != 0)
//   groups/G/num_params        int64 0-d: the group's size (checked on load)
//   groups/G/<option>          the group's options with PyTorch's names: float64 0-d numbers (lr,
//                              momentum, dampening, weight_decay, eps), bool 0-d flags (nesterov,
//                              maximize, amsgrad), float64 [2] betas
// A parameter that never had a step with a grad has no state/N keys (PyTorch's empty state).
// Scheduler keys: see optim/lr_scheduler.h.

// One parameter's state, as PyTorch's optimizer.state[p]: tensors by name, in creation order.
struct ParamState {
  std::vector<std::pair<std::string, Tensor>> tensors;

  Tensor* find(const std::string& field);               // nullptr when absent
  const Tensor* find(const std::string& field) const;
};

// A parameter group: its parameters and its options (SGDOptions, AdamOptions, AdamWOptions).
// Typical use (the tiny LM): weight decay for parameters with dim >= 2, none for biases and norms.
template <class Options> struct ParamGroup {
  NamedParams params;
  Options options;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter with a defined grad. Throws std::invalid_argument when a group's
  // options are invalid or a grad's shape or dtype differs from its parameter's.
  virtual void step() = 0;
  // Drops every parameter's grad (set_to_none, the default here and in PyTorch >= 2.0; PyTorch 1.13
  // defaults to false), or fills existing grads with zeros in place.
  void zero_grad(bool set_to_none = true);

  const std::string& name() const { return name_; }   // "SGD", "Adam", "AdamW"
  virtual size_t num_groups() const = 0;
  virtual const NamedParams& group_params(size_t group) const = 0;
  virtual double lr(size_t group) const = 0;
  // Sets a group's lr (what schedulers do); throws std::invalid_argument for lr < 0 or NaN.
  virtual void set_lr(size_t group, double lr) = 0;
  NamedParams named_parameters() const;   // every group's parameters, in order

  // The state of one parameter; nullptr before its first step with a grad (or for an unknown name).
  const ParamState* param_state(const std::string& param_name) const;

  // Everything needed to continue bit-identically: per-parameter state and every group's options.
  StateDict state_dict() const;
  // Restores state_dict() output (keys in any order) into an optimizer of the same type whose groups have
  // the same sizes and parameter names/shapes. All-or-nothing: on any mismatch (unknown parameter or
  // field, wrong shape/dtype, missing key, invalid options) throws std::invalid_argument
  // "[<name>] load_state_dict: ..." and leaves the optimizer unchanged.
  void load_state_dict(const StateDict& state);

 protected:
  explicit Optimizer(std::string name) : name_(std::move(name)) {}

  // Checks every group's parameters: at least one parameter overall, defined floating-point leaves,
  // non-empty unique names without '/', no Var twice.
  void check_params() const;
  // Throws when a defined grad does not match its parameter's shape and dtype.
  void check_grad(const std::string& param_name, const Var& param) const;
  ParamState& state_for(const std::string& param_name) { return state_[param_name]; }

  virtual void save_group_options(size_t group, StateDict& out) const = 0;
  // Replaces every group's options from `in`, all-or-nothing (validates before assigning).
  virtual void load_group_options(const StateDict& in) = 0;
  // Throws std::invalid_argument when a loaded parameter state misses a required field or has an
  // unknown one. Shapes and dtypes are checked by load_state_dict ("step": int64 0-d, others: param's).
  virtual void check_param_state(const std::string& param_name, const ParamState& st) const = 0;

 private:
  std::string name_;
  std::unordered_map<std::string, ParamState> state_;
};

// Group bookkeeping shared by SGD, Adam and AdamW. Options needs validate() and the free functions
// save_options(const Options&, const std::string& prefix, StateDict&) and
// load_options(const StateDict&, const std::string& prefix, const char* op, Options&) (found by ADL).
template <class Options> class GroupedOptimizer : public Optimizer {
 public:
  const std::vector<ParamGroup<Options>>& param_groups() const { return groups_; }
  // Mutable options of one group (lr, weight_decay, ...): validated again at every step().
  Options& group_options(size_t group) { return groups_.at(group).options; }

  size_t num_groups() const override { return groups_.size(); }
  const NamedParams& group_params(size_t group) const override { return groups_.at(group).params; }
  double lr(size_t group) const override { return groups_.at(group).options.lr; }
  void set_lr(size_t group, double lr) override {
    Options candidate = groups_.at(group).options;
    candidate.lr = lr;
    candidate.validate();
    groups_[group].options = candidate;
  }

 protected:
  GroupedOptimizer(std::string name, std::vector<ParamGroup<Options>> groups)
      : Optimizer(std::move(name)), groups_(std::move(groups)) {
    for (const auto& g : groups_) g.options.validate();
    check_params();
  }

  void save_group_options(size_t group, StateDict& out) const override {
    save_options(groups_.at(group).options, "groups/" + std::to_string(group) + "/", out);
  }
  void load_group_options(const StateDict& in) override {
    std::vector<Options> loaded;
    for (size_t g = 0; g < groups_.size(); ++g) {
      Options o = groups_[g].options;
      load_options(in, "groups/" + std::to_string(g) + "/", name().c_str(), o);
      o.validate();
      loaded.push_back(o);
    }
    for (size_t g = 0; g < groups_.size(); ++g) groups_[g].options = loaded[g];
  }

  std::vector<ParamGroup<Options>> groups_;
};

// Helpers for options (de)serialisation and messages, shared by optim/*.cpp.
namespace detail {
// Shortest round-trip decimal form of v ("0.1", "1e-08", "nan", "-inf").
std::string format_number(double v);
Tensor scalar_f64(double v);
Tensor scalar_i64(int64_t v);
Tensor scalar_bool(bool v);
// Read a 0-d entry of the given kind; throw "[op] load_state_dict: missing key K" or
// "[op] load_state_dict: K has <dtype>[shape], expected float64[]" (int64[], bool[]).
double read_f64(const StateDict& in, const std::string& key, const char* op);
int64_t read_i64(const StateDict& in, const std::string& key, const char* op);
bool read_bool(const StateDict& in, const std::string& key, const char* op);
// Read a tensor with exact dtype and shape; same errors.
Tensor read_tensor(const StateDict& in, const std::string& key, const char* op, DType dtype, const Shape& shape);
}  // namespace detail

}  // namespace tg::optim
