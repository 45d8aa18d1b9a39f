#include "tapegrad/framework/tape.h"

#include <atomic>
#include <stdexcept>
#include <unordered_map>

#include "tapegrad/framework/check.h"
#include "framework/kernels/basic.h"

namespace tg {

struct Node {
  Tensor value;                                  // undefined once released (see Var::let_go)
  Tensor grad;                                   // accumulated gradient of a leaf
  bool requires_grad = false;
  bool is_leaf = true;
  bool freed = false;                            // backward ran and released the closure
  const char* op = "leaf";
  std::vector<std::shared_ptr<Node>> inputs;     // nullptr for inputs that need no grad
  BackwardFn backward;
  // The tensors backward reads that a caller could change, with their versions when recorded.
  std::vector<std::pair<Tensor, uint64_t>> saved;
  // Of an interior node: how many entries of other nodes' inputs point at it (leaves are not
  // counted: they are never released), and the value's shape and dtype once the value is released,
  // for the gradient checks. Atomic: threads may record ops on one shared intermediate; an edge is
  // only added through a Var of the node, which use_count() also counts, so the release test below
  // cannot pass while another thread still holds a Var.
  std::atomic<int64_t> graph_refs{0};
  Shape shape;
  DType dtype = DType::Float32;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node() { drop_inputs(); }

  void drop_inputs() {
    for (const std::shared_ptr<Node>& in : inputs)
      if (in && !in->is_leaf) --in->graph_refs;
    inputs.clear();
  }
  const Shape& value_shape() const { return value.defined() ? value.shape() : shape; }
  DType value_dtype() const { return value.defined() ? value.dtype() : dtype; }
};

struct TapeEngine {
  static Grads grads_for(const Node& n, std::unordered_map<Node*, Tensor>* pending) {
    return Grads(n.inputs, pending);
  }
  static Tensor take(Grads& g, size_t i) { return g.take(i); }
  static const std::shared_ptr<Node>& node(const Var& v) { return v.node_; }
};

namespace {

thread_local bool g_grad_enabled = true;

// Adds g into slot: takes g when the slot is empty; adds in place when the slot's storage has no
// other user; otherwise makes a new tensor (a slot may alias a tensor that is still in use).
void accumulate(Tensor& slot, Tensor g) {
  if (!slot.defined()) {
    slot = std::move(g);
  } else if (slot.storage_use_count() == 1) {
    kernels::add_into(slot, g);
  } else {
    slot = kernels::add(slot, g);
  }
}

// Reverse topological order of the interior nodes reachable from root (root first). Owning
// pointers: freeing a node's edges during backward must not destroy nodes still to be visited.
std::vector<std::shared_ptr<Node>> reverse_topological(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_map<Node*, bool> visited;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  visited[root.get()] = true;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const std::shared_ptr<Node>& child = node->inputs[next++];
      if (child && !child->is_leaf && !visited[child.get()]) {
        visited[child.get()] = true;
        stack.push_back({child, 0});
      }
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

// Throws when a tensor some node's backward reads changed since the node was recorded, before the
// backward computes or accumulates anything.
void check_saved(const std::vector<std::shared_ptr<Node>>& order) {
  for (const std::shared_ptr<Node>& node : order)
    for (size_t i = 0; i < node->saved.size(); ++i) {
      const auto& [t, version] = node->saved[i];
      if (t.version() == version) continue;
      throw std::logic_error(std::string("[backward] ") + node->op + " needs " + describe(t) + " (saved tensor " +
                             std::to_string(i + 1) + " of " + std::to_string(node->saved.size()) +
                             ") as it was in the forward, but it was modified in place since (version " +
                             std::to_string(t.version()) + "; expected " + std::to_string(version) +
                             "). Change a clone() instead, or run the backward before the change");
    }
}

void run_backward(const std::shared_ptr<Node>& root, Tensor grad_output, bool retain_graph) {
  if (!root->requires_grad)
    throw std::logic_error("[backward] the tensor does not require grad and has no grad_fn");
  if (root->freed)
    throw std::logic_error(std::string("[backward] the graph of '") + root->op +
                           "' was freed by a previous backward; pass retain_graph=true to the first "
                           "backward to go through it twice");
  if (root->is_leaf) {
    accumulate(root->grad, grad_output.storage_use_count() == 1 ? grad_output : grad_output.clone());
    return;
  }
  const std::vector<std::shared_ptr<Node>> order = reverse_topological(root);
  check_saved(order);
  std::unordered_map<Node*, Tensor> pending;
  pending[root.get()] = std::move(grad_output);
  for (const std::shared_ptr<Node>& owner : order) {
    Node* node = owner.get();
    auto it = pending.find(node);
    if (it == pending.end()) continue;
    Tensor g = std::move(it->second);
    pending.erase(it);
    if (node->freed)
      throw std::logic_error(std::string("[backward] the graph through '") + node->op +
                             "' was freed by a previous backward; pass retain_graph=true to the first "
                             "backward to go through it twice");
    Grads grads = TapeEngine::grads_for(*node, &pending);   // the intermediates' gradients: Grads::accumulator
    node->backward(g, grads);
    g = Tensor();
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      Tensor gi = TapeEngine::take(grads, i);
      Node* in = node->inputs[i].get();
      if (!gi.defined() || !in) continue;
      if (in->is_leaf) {
        // A leaf keeps its grad across steps and users scale it in place: never alias a shared tensor.
        accumulate(in->grad, gi.storage_use_count() == 1 ? std::move(gi) : gi.clone());
      } else {
        accumulate(pending[in], std::move(gi));
      }
    }
    if (!retain_graph) {
      node->backward = nullptr;
      node->saved.clear();
      node->drop_inputs();
      node->freed = true;
    }
  }
}

}  // namespace

Grads::Grads(const std::vector<std::shared_ptr<Node>>& inputs, std::unordered_map<Node*, Tensor>* pending)
    : inputs_(inputs), slots_(inputs.size()), pending_(pending) {}

Tensor Grads::accumulator(size_t i) const {
  if (!wants(i) || inputs_[i]->is_leaf) return Tensor();
  const auto it = pending_->find(inputs_[i].get());
  if (it == pending_->end()) return Tensor();
  const Tensor& t = it->second;
  // Undefined, or shared with another tensor still in use (e.g. an add's gradient passed to both its inputs):
  // adding into it in place would change that tensor too.
  if (!t.defined() || t.storage_use_count() != 1) return Tensor();
  return t;
}

bool Grads::wants(size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }

void Grads::add(size_t i, Tensor grad) {
  if (!wants(i)) return;
  if (!grad.defined())
    throw std::logic_error("[backward] gradient for input " + std::to_string(i) + " is an undefined Tensor");
  const Node& in = *inputs_[i];
  if (grad.shape() != in.value_shape() || grad.dtype() != in.value_dtype())
    throw std::logic_error("[backward] gradient for input " + std::to_string(i) + " has " + describe(grad) +
                           ", expected " + to_string(in.value_dtype()) + to_string(in.value_shape()));
  accumulate(slots_[i], std::move(grad));
}

Tensor Grads::take(size_t i) { return std::move(slots_[i]); }

Var::Var(Tensor value, bool requires_grad) : node_(std::make_shared<Node>()) {
  TG_CHECK(value.defined(), "Var", "value is an undefined Tensor (Var() is the undefined Var)");
  node_->value = std::move(value);
  requires_grad_(requires_grad);
}

Var& Var::operator=(const Var& other) {
  std::shared_ptr<Node> keep = other.node_;   // first: other may share this node
  let_go();
  node_ = std::move(keep);
  return *this;
}

Var& Var::operator=(Var&& other) noexcept {
  std::shared_ptr<Node> keep = std::move(other.node_);
  let_go();
  node_ = std::move(keep);
  return *this;
}

Var::~Var() { let_go(); }

void Var::let_go() {
  // The last Var of an op's result, and only the graph's edges left: nothing can read the value again.
  Node* n = node_.get();
  if (n && !n->is_leaf && n->value.defined() && node_.use_count() == n->graph_refs + 1) {
    n->shape = n->value.shape();
    n->dtype = n->value.dtype();
    n->value = Tensor();
  }
  node_.reset();
}

Node& Var::checked(const char* call) const {
  if (!node_) detail::fail_logic(call, "called on an undefined Var (default-constructed)");
  return *node_;
}

void check_defined(const char* op, const char* name, const Var& v) {
  TG_CHECK(v.defined(), op, name, " is an undefined Var");
}

const Tensor& Var::value() const { return checked("Var::value").value; }
Tensor& Var::value() { return checked("Var::value").value; }
const Tensor& Var::grad() const { return checked("Var::grad").grad; }
void Var::set_grad(Tensor g) { checked("Var::set_grad").grad = std::move(g); }
void Var::zero_grad() { checked("Var::zero_grad").grad = Tensor(); }
bool Var::requires_grad() const { return node_ && node_->requires_grad; }
bool Var::is_leaf() const { return checked("Var::is_leaf").is_leaf; }
const char* Var::op() const { return checked("Var::op").op; }
const Shape& Var::shape() const { return checked("Var::shape").value.shape(); }
DType Var::dtype() const { return checked("Var::dtype").value.dtype(); }
int64_t Var::dim() const { return checked("Var::dim").value.dim(); }
int64_t Var::size(int64_t d) const { return checked("Var::size").value.size(d); }
int64_t Var::numel() const { return checked("Var::numel").value.numel(); }
double Var::item() const { return checked("Var::item").value.item(); }

Var& Var::requires_grad_(bool on) {
  Node& n = checked("Var::requires_grad_");
  if (!n.is_leaf) throw std::logic_error("[requires_grad_] only leaves can change requires_grad");
  if (on && !is_floating(n.value.dtype()))
    throw std::invalid_argument("[requires_grad_] only float tensors can require grad; got " + describe(n.value));
  n.requires_grad = on;
  return *this;
}

Var Var::detach() const { return Var(checked("Var::detach").value, false); }

void Var::backward(bool retain_graph) const {
  const Tensor& v = checked("Var::backward").value;
  if (v.numel() != 1)
    throw std::logic_error("[backward] grad can be implicitly created only for one-element outputs; got shape " +
                           to_string(v.shape()));
  backward(Tensor::ones(v.shape(), v.dtype()), retain_graph);
}

void Var::backward(const Tensor& grad_output, bool retain_graph) const {
  checked("Var::backward");
  if (!grad_output.defined() || grad_output.shape() != shape() || grad_output.dtype() != dtype())
    throw std::invalid_argument("[backward] grad_output must match the output; got grad_output=" +
                                describe(grad_output) + ", output=" + describe(value()));
  run_backward(node_, grad_output, retain_graph);
}

Var record(const char* op, Tensor result, const std::vector<Var>& inputs, BackwardFn fn,
           const std::vector<Tensor>& saved) {
  if (!result.defined()) detail::fail_logic(op, "record: the result is an undefined Tensor");
  bool any = false;
  if (g_grad_enabled)
    for (const Var& v : inputs) any = any || v.requires_grad();
  if (!any) return Var(std::move(result));
  if (!fn) detail::fail_logic(op, "record: no backward function for a result that requires grad");
  Var out(std::move(result));
  Node& n = *TapeEngine::node(out);
  n.requires_grad = true;
  n.is_leaf = false;
  n.op = op;
  n.inputs.reserve(inputs.size());
  for (const Var& v : inputs) {
    std::shared_ptr<Node> in = v.requires_grad() ? TapeEngine::node(v) : nullptr;
    if (in && !in->is_leaf) ++in->graph_refs;
    n.inputs.push_back(std::move(in));
  }
  n.backward = std::move(fn);
  n.saved.reserve(saved.size());
  for (const Tensor& t : saved)
    if (t.defined()) n.saved.emplace_back(t, t.version());
  return out;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

}  // namespace tg
