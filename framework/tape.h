#pragma once
// Reverse-mode autograd. A Var is a handle to a node {value, grad, inputs, backward closure}.
// Each op computes its result and records, in one call to record(), a closure holding exactly what
// its gradient needs. backward() orders the recorded nodes topologically, runs the closures from the
// output back, accumulates gradients into the .grad of leaves that require grad, and then frees the
// closures and edges (unless retain_graph), so a training loop does not grow memory.
// PyTorch equivalents: Var ~ torch.Tensor with autograd, record ~ autograd.Function, NoGradGuard ~ torch.no_grad.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/framework/tensor.h"

namespace tg {

struct Node;

// Handed to a backward closure: one gradient slot per recorded input.
class Grads {
 public:
  explicit Grads(const std::vector<std::shared_ptr<Node>>& inputs);
  bool wants(size_t i) const;          // false for inputs that do not require grad: skip their work
  void add(size_t i, Tensor grad);     // accumulates; grad must have input i's shape and dtype
  Tensor take(size_t i);               // engine use: moves the slot out

 private:
  const std::vector<std::shared_ptr<Node>>& inputs_;
  std::vector<Tensor> slots_;
};

using BackwardFn = std::function<void(const Tensor& grad_output, Grads& grads)>;

struct Node {
  Tensor value;
  Tensor grad;                                   // accumulated gradient of a leaf
  bool requires_grad = false;
  bool is_leaf = true;
  bool freed = false;                            // backward ran and released the closure
  const char* op = "leaf";
  std::vector<std::shared_ptr<Node>> inputs;     // nullptr for inputs that need no grad
  BackwardFn backward;
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false);

  bool defined() const { return node_ != nullptr; }
  const Tensor& value() const { return node_->value; }
  Tensor& value() { return node_->value; }       // in-place updates (optimizers) on leaves
  const Tensor& grad() const { return node_->grad; }   // undefined until a backward reaches it
  void set_grad(Tensor g) { node_->grad = std::move(g); }
  void zero_grad() { node_->grad = Tensor(); }   // set to none, as PyTorch's default
  bool requires_grad() const { return node_ && node_->requires_grad; }
  Var& requires_grad_(bool on = true);           // leaves only
  bool is_leaf() const { return node_->is_leaf; }
  const char* op() const { return node_->op; }
  Var detach() const;                            // same storage, no history
  bool same(const Var& other) const { return node_ == other.node_; }
  const std::shared_ptr<Node>& node() const { return node_; }

  // Backward from a one-element output (upstream gradient 1), or with an explicit upstream gradient
  // of the output's shape and dtype. Throws std::logic_error on a freed graph or a Var without history.
  void backward(bool retain_graph = false) const;
  void backward(const Tensor& grad_output, bool retain_graph = false) const;

  const Shape& shape() const { return node_->value.shape(); }
  DType dtype() const { return node_->value.dtype(); }
  int64_t dim() const { return node_->value.dim(); }
  int64_t size(int64_t d) const { return node_->value.size(d); }
  int64_t numel() const { return node_->value.numel(); }
  double item() const { return node_->value.item(); }

 private:
  std::shared_ptr<Node> node_;
};

// Records an op: returns a Var holding `result` and, when grad mode is on and some input requires
// grad, the closure `fn` that maps the output gradient to input gradients.
Var record(const char* op, Tensor result, const std::vector<Var>& inputs, BackwardFn fn);

bool grad_enabled();
// RAII: disables recording in its scope (the one global flag of the tape; per thread).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace tg
