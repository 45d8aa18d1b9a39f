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
#include <unordered_map>
#include <vector>

#include "tapegrad/framework/tensor.h"

namespace tg {

// The recorded node behind a Var (value, grad, inputs, backward closure). Engine-internal: defined
// in tape.cpp only, so its fields cannot be reached from outside the engine.
struct Node;
struct TapeEngine;   // the backward pass (tape.cpp); the only code that creates Grads and reads Nodes

// Handed to a backward closure: one gradient slot per recorded input. Only the engine creates one
// and reads the slots back.
class Grads {
 public:
  bool wants(size_t i) const;          // false for inputs that do not require grad: skip their work
  // Accumulates; grad must be defined and have input i's shape and dtype (else std::logic_error).
  void add(size_t i, Tensor grad);
  // The gradient other consumers of input i (an intermediate) have accumulated so far, when there is one that
  // nothing else shares, else an undefined Tensor. A backward may add its gradient for input i into it in
  // place, element by element as existing + new (the bits of add), instead of calling add(i, ...): the layer
  // norm's backward does, sparing a pass over the residual stream's gradient per norm.
  Tensor accumulator(size_t i) const;

 private:
  friend struct TapeEngine;
  Grads(const std::vector<std::shared_ptr<Node>>& inputs, std::unordered_map<Node*, Tensor>* pending);
  Tensor take(size_t i);               // moves slot i out

  const std::vector<std::shared_ptr<Node>>& inputs_;
  std::vector<Tensor> slots_;
  std::unordered_map<Node*, Tensor>* pending_;   // the engine's gradients of intermediates so far
};

using BackwardFn = std::function<void(const Tensor& grad_output, Grads& grads)>;

// A handle to a node; copies share it. Var() is undefined: defined() is false, requires_grad() false,
// same() compares handles; every other method throws std::logic_error
// "[Var::shape] called on an undefined Var (default-constructed)". Ops given an undefined Var throw
// std::invalid_argument "[matmul] a is an undefined Var" (optional arguments such as a bias excepted).
// When the last Var of an op's result goes away while the graph still holds the node, the node lets
// go of its value (no Var can read it any more, and what the backward needs is held by the closures),
// so an intermediate that no gradient needs (e.g. a projection's output before a residual add) is
// freed during the forward instead of living until the backward passes it.
class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false);   // value must be defined (std::invalid_argument)
  Var(const Var&) = default;
  Var(Var&&) noexcept = default;
  Var& operator=(const Var& other);
  Var& operator=(Var&& other) noexcept;
  ~Var();

  bool defined() const { return node_ != nullptr; }
  const Tensor& value() const;
  Tensor& value();                               // in-place updates (optimizers) on leaves
  const Tensor& grad() const;                    // undefined until a backward reaches it
  void set_grad(Tensor g);
  void zero_grad();                              // set to none, as PyTorch's default
  bool requires_grad() const;                    // false for an undefined Var
  Var& requires_grad_(bool on = true);           // leaves only
  bool is_leaf() const;
  const char* op() const;
  Var detach() const;                            // same storage, no history
  bool same(const Var& other) const { return node_ == other.node_; }
  // Identity of the node (e.g. to find a parameter listed twice); the Node itself is engine-internal.
  const std::shared_ptr<Node>& node() const { return node_; }

  // Backward from a one-element output (upstream gradient 1), or with an explicit upstream gradient
  // of the output's shape and dtype. Throws std::logic_error on a freed graph, a Var without history
  // or an undefined Var, std::invalid_argument on a grad_output of another shape or dtype.
  void backward(bool retain_graph = false) const;
  void backward(const Tensor& grad_output, bool retain_graph = false) const;

  const Shape& shape() const;
  DType dtype() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;
  int64_t numel() const;
  double item() const;

 private:
  friend struct TapeEngine;
  Node& checked(const char* call) const;         // *node_, or throws for an undefined Var
  void let_go();                                 // drops node_; the node's value with the last Var of a result
  std::shared_ptr<Node> node_;
};

// For ops: throws std::invalid_argument "[op] name is an undefined Var" (e.g. "[matmul] a is an undefined Var").
void check_defined(const char* op, const char* name, const Var& v);

// Records an op: returns a Var holding `result` and, when grad mode is on and some input requires
// grad, the closure `fn` that maps the output gradient to input gradients. Undefined inputs are
// allowed (optional arguments such as a missing bias) and get no gradient; an undefined result, or a
// missing fn when one would be recorded, throws std::logic_error "[op] ...".
//
// `saved` lists the tensors a caller could change that fn reads: the values of inputs and the result
// it captured (`x.value()`, `result`), and tensor arguments such as indices or masks; not the
// buffers the op made for itself. Their versions (Tensor::version) are noted here, and a backward
// that reaches this node after one of them was changed in place (fill_, copy_, set, an optimizer step)
// throws std::logic_error before any gradient is computed or accumulated, as PyTorch does ("one of the
// variables needed for gradient computation has been modified by an inplace operation"):
//   [backward] linear needs float32[4, 3] (saved tensor 1 of 2) as it was in the forward, but it was
//   modified in place since (version 2; expected 1). ...
// A tensor fn does not read may change freely (an add saves nothing).
Var record(const char* op, Tensor result, const std::vector<Var>& inputs, BackwardFn fn,
           const std::vector<Tensor>& saved = {});

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
