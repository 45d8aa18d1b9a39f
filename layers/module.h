#pragma once
// Module: the base of every layer (torch.nn.Module). Parameters, buffers and submodules are
// registered by name; dotted names ("self_attn.in_proj_weight", "layers.0.linear1.weight") equal
// PyTorch's state_dict keys, in registration order. Modules are non-copyable.
//
// Every parameter has ONE owner: this registry. Layers expose read-only accessors
// (`linear.weight()`, `mha.in_proj_weight()`) that read the registered entry, and the one way to
// replace a parameter (weight tying, swapping in another tensor) is set_parameter:
//
//   model.set_parameter("head.weight", model.tok_emb->weight());   // tying: one call
//
// after which forward, named_parameters(), state_dict() and any optimizer built afterwards all see
// the new Var (an optimizer built before keeps the Vars it was given, as in PyTorch). To change a
// parameter's VALUES in place (custom initialisation), copy the handle: a Var copy names the same node,
//   Var w = linear.weight();  w.value().fill_(0.0);
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/framework/state_dict.h"
#include "tapegrad/framework/tape.h"

namespace tg {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registers a parameter (a leaf Var holding `init`) and returns a reference to the registry entry:
  // valid as long as the module, and always the CURRENT parameter (set_parameter replaces the entry in
  // place). Keep the reference (or its address) for an accessor; a copied Var would not follow
  // set_parameter. Throws std::invalid_argument for a name containing '.', an empty name, or a duplicate.
  const Var& register_parameter(std::string name, Tensor init, bool requires_grad = true);
  // Registers a buffer (state that is saved but not trained, e.g. a fixed mask) as a Var that never
  // requires grad; returns a reference to the registry entry, as register_parameter.
  const Var& register_buffer(std::string name, Tensor init);
  template <class M> std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_module(std::move(name), module);
    return module;
  }

  // Replaces a registered parameter by another Var of the same shape and dtype (PyTorch's
  // `module.head.weight = other.weight`, e.g. weight tying). `name` may be dotted ("head.weight",
  // "layers.0.linear1.bias") and resolves into submodules. Throws std::invalid_argument:
  //   "[set_parameter] no parameter named 'head.wieght'"
  //   "[set_parameter] 'head.weight' is float32[65, 16]; got float32[16, 16]" (shape or dtype differs,
  //   or "got undefined" for an undefined Var).
  void set_parameter(const std::string& name, const Var& value);

  // Dotted, recursive, in registration order; a parameter shared under two names (tied weights)
  // appears once, under its first name, as in PyTorch. state_dict() keeps both names.
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  std::vector<Var> parameters() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;

  // Parameters and buffers of this module, then of each submodule, PyTorch's order.
  StateDict state_dict() const;
  // Copies values in place (handles held by layers and optimizers stay valid), converted to the
  // module's dtype. strict: missing and unexpected keys throw; a shape mismatch always throws. The
  // message lists every missing, unexpected and mis-shaped key.
  void load_state_dict(const StateDict& state, bool strict = true);

  void train(bool on = true);          // this module and every submodule
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();                     // sets every parameter's grad to none
  void to(DType dtype);                 // converts every parameter and buffer in place

  // Dotted path of this module inside the root it was registered in ("" for a root), used in errors.
  const std::string& path() const { return path_; }

 protected:
  // The op name for this module's error messages: "Linear" for a root, "Linear layers.0.linear1" inside.
  std::string error_op(const char* type) const { return path_.empty() ? std::string(type) : std::string(type) + " " + path_; }
  // An undefined Var, for accessors of optional parameters (`bias()` when bias = false).
  static const Var& absent();

 private:
  void add_module(std::string name, std::shared_ptr<Module> module);
  void set_path(const std::string& path);
  void collect(const std::string& prefix, StateDict* state, std::vector<std::pair<std::string, Var>>* params) const;
  Var* find_parameter(const std::string& dotted);

  bool training_ = true;
  std::string path_;
  // Deques: entries never move, so the references register_parameter/register_buffer return stay valid.
  std::deque<std::pair<std::string, Var>> parameters_;
  std::deque<std::pair<std::string, Var>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// Total number of elements in m's parameters (a tied parameter counted once).
int64_t parameter_count(const Module& m);

// An ordered list of submodules named "0", "1", ... (torch.nn.ModuleList).
class ModuleList : public Module {
 public:
  template <class M> std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    items_.push_back(module);
    return register_module(std::to_string(items_.size() - 1), std::move(module));
  }
  size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const { return items_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

}  // namespace tg
