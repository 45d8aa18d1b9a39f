#include "tapegrad/optim/optimizer.h"

#include <charconv>
#include <cmath>
#include <unordered_set>

#include "tapegrad/framework/check.h"

namespace tg::optim {
namespace {

std::string group_prefix(size_t g) { return "groups/" + std::to_string(g) + "/"; }

// "state/<name>/<field>" -> (name, field); false for other keys.
bool split_state_key(const std::string& key, std::string& name, std::string& field) {
  const std::string head = "state/";
  if (key.compare(0, head.size(), head) != 0) return false;
  size_t slash = key.rfind('/');
  if (slash <= head.size()) return false;
  name = key.substr(head.size(), slash - head.size());
  field = key.substr(slash + 1);
  return true;
}

}  // namespace

// ---- ParamState ----

Tensor* ParamState::find(const std::string& field) {
  for (auto& [k, t] : tensors)
    if (k == field) return &t;
  return nullptr;
}

const Tensor* ParamState::find(const std::string& field) const {
  for (const auto& [k, t] : tensors)
    if (k == field) return &t;
  return nullptr;
}

// ---- Optimizer ----

void Optimizer::zero_grad(bool set_to_none) {
  for (size_t g = 0; g < num_groups(); ++g) {
    for (const auto& [name, p] : group_params(g)) {
      Var v = p;
      if (!v.grad().defined()) continue;
      if (set_to_none) {
        v.zero_grad();
      } else {
        Tensor grad = v.grad();
        grad.zero_();
      }
    }
  }
}

NamedParams Optimizer::named_parameters() const {
  NamedParams all;
  for (size_t g = 0; g < num_groups(); ++g)
    for (const auto& np : group_params(g)) all.push_back(np);
  return all;
}

const ParamState* Optimizer::param_state(const std::string& param_name) const {
  auto it = state_.find(param_name);
  return it == state_.end() ? nullptr : &it->second;
}

void Optimizer::check_params() const {
  const char* op = name_.c_str();
  std::unordered_set<std::string> names;
  std::unordered_set<const Node*> nodes;
  for (size_t g = 0; g < num_groups(); ++g) {
    for (const auto& [name, p] : group_params(g)) {
      TG_CHECK(!name.empty() && name.find('/') == std::string::npos, op,
               "parameter names must be non-empty and contain no '/'; got '", name, "' in param group ", g);
      TG_CHECK(p.defined(), op, "parameter '", name, "' is an undefined Var");
      TG_CHECK(p.is_leaf(), op, "can't optimize a non-leaf Var; got parameter '", name, "' (result of ", p.op(),
               ")");
      TG_CHECK(is_floating(p.dtype()), op, "parameters must be float32 or float64; got '", name,
               "'=", describe(p.value()));
      TG_CHECK(names.insert(name).second, op, "parameter name '", name, "' appears more than once");
      TG_CHECK(nodes.insert(p.node().get()).second, op, "parameter '", name,
               "' is a Var that appears more than once (some parameters appear in more than one parameter group)");
    }
  }
  TG_CHECK(!names.empty(), op, "optimizer got an empty parameter list; got ", num_groups(), " param groups");
}

void Optimizer::check_grad(const std::string& param_name, const Var& param) const {
  const Tensor& grad = param.grad();
  TG_CHECK(grad.shape() == param.shape() && grad.dtype() == param.dtype(), name_.c_str(), "grad of parameter '",
           param_name, "' does not match the parameter; got grad=", describe(grad), ", param=",
           describe(param.value()));
}

StateDict Optimizer::state_dict() const {
  StateDict out;
  for (size_t g = 0; g < num_groups(); ++g) {
    for (const auto& [name, p] : group_params(g)) {
      const ParamState* st = param_state(name);
      if (!st) continue;
      for (const auto& [field, t] : st->tensors) out.add("state/" + name + "/" + field, t.clone());
    }
  }
  for (size_t g = 0; g < num_groups(); ++g) {
    out.add(group_prefix(g) + "num_params", detail::scalar_i64(static_cast<int64_t>(group_params(g).size())));
    save_group_options(g, out);
  }
  return out;
}

void Optimizer::load_state_dict(const StateDict& state) {
  const char* op = name_.c_str();
  std::unordered_map<std::string, const Var*> params;
  for (size_t g = 0; g < num_groups(); ++g) {
    std::string key = group_prefix(g) + "num_params";
    int64_t n = detail::read_i64(state, key, op);
    TG_CHECK(n == static_cast<int64_t>(group_params(g).size()), op, "load_state_dict: ", key, " is ", n,
             " but param group ", g, " has ", group_params(g).size(), " parameters");
    for (const auto& [name, p] : group_params(g)) params.emplace(name, &p);
  }
  TG_CHECK(!state.contains(group_prefix(num_groups()) + "num_params"), op,
           "load_state_dict: the state has more param groups than the optimizer (", num_groups(), ")");

  std::unordered_map<std::string, ParamState> loaded;
  for (const auto& [key, t] : state) {
    std::string name, field;
    if (!split_state_key(key, name, field)) continue;
    auto it = params.find(name);
    TG_CHECK(it != params.end(), op, "load_state_dict: key ", key, " names no parameter of this optimizer");
    const Tensor& pv = it->second->value();
    bool is_step = field == "step";
    DType want_dtype = is_step ? DType::Int64 : pv.dtype();
    Shape want_shape = is_step ? Shape{} : pv.shape();
    TG_CHECK(t.defined() && t.dtype() == want_dtype && t.shape() == want_shape, op, "load_state_dict: ", key, " has ",
             t.defined() ? describe(t) : std::string("an undefined tensor"), ", expected ", to_string(want_dtype),
             to_string(want_shape));
    if (is_step) TG_CHECK(t.item() >= 0, op, "load_state_dict: ", key, " is negative; got ", t.item());
    TG_CHECK(loaded[name].find(field) == nullptr, op, "load_state_dict: duplicate key ", key);
    loaded[name].tensors.emplace_back(field, t.clone());
  }
  for (const auto& [name, st] : loaded) check_param_state(name, st);
  load_group_options(state);   // all-or-nothing; after it nothing can throw
  state_ = std::move(loaded);
}

// ---- detail ----

namespace detail {

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

Tensor scalar_f64(double v) { return Tensor::scalar(v, DType::Float64); }

Tensor scalar_i64(int64_t v) {
  Tensor t = Tensor::empty({}, DType::Int64);
  t.data<int64_t>()[0] = v;
  return t;
}

Tensor scalar_bool(bool v) { return Tensor::scalar(v ? 1.0 : 0.0, DType::Bool); }

Tensor read_tensor(const StateDict& in, const std::string& key, const char* op, DType dtype, const Shape& shape) {
  TG_CHECK(in.contains(key), op, "load_state_dict: missing key ", key);
  const Tensor& t = in.at(key);
  TG_CHECK(t.defined() && t.dtype() == dtype && t.shape() == shape, op, "load_state_dict: ", key, " has ",
           t.defined() ? describe(t) : std::string("an undefined tensor"), ", expected ", to_string(dtype),
           to_string(shape));
  return t;
}

double read_f64(const StateDict& in, const std::string& key, const char* op) {
  return read_tensor(in, key, op, DType::Float64, {}).data<double>()[0];
}

int64_t read_i64(const StateDict& in, const std::string& key, const char* op) {
  return read_tensor(in, key, op, DType::Int64, {}).data<int64_t>()[0];
}

bool read_bool(const StateDict& in, const std::string& key, const char* op) {
  return read_tensor(in, key, op, DType::Bool, {}).item() != 0.0;
}

}  // namespace detail

}  // namespace tg::optim
