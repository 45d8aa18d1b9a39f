#include "tapegrad/layers/module.h"

#include <map>
#include <sstream>

#include "tapegrad/framework/check.h"

namespace tg {
namespace {

void check_name(const char* what, const std::string& name) {
  TG_CHECK(!name.empty() && name.find('.') == std::string::npos, what, "name must be non-empty and contain no '.'; got '",
           name, "'");
}

}  // namespace

const Var& Module::register_parameter(std::string name, Tensor init, bool requires_grad) {
  check_name("register_parameter", name);
  for (const auto& [n, v] : parameters_) TG_CHECK(n != name, "register_parameter", "duplicate name '", name, "'");
  for (const auto& [n, b] : buffers_) TG_CHECK(n != name, "register_parameter", "'", name, "' is already a buffer");
  parameters_.emplace_back(std::move(name), Var(std::move(init), requires_grad));
  return parameters_.back().second;
}

const Var& Module::register_buffer(std::string name, Tensor init) {
  check_name("register_buffer", name);
  for (const auto& [n, b] : buffers_) TG_CHECK(n != name, "register_buffer", "duplicate name '", name, "'");
  for (const auto& [n, v] : parameters_) TG_CHECK(n != name, "register_buffer", "'", name, "' is already a parameter");
  buffers_.emplace_back(std::move(name), Var(std::move(init), false));
  return buffers_.back().second;
}

const Var& Module::absent() {
  static const Var none;
  return none;
}

void Module::add_module(std::string name, std::shared_ptr<Module> module) {
  check_name("register_module", name);
  TG_CHECK(module != nullptr, "register_module", "module '", name, "' is null");
  for (const auto& [n, m] : children_) TG_CHECK(n != name, "register_module", "duplicate name '", name, "'");
  module->set_path(path_.empty() ? name : path_ + "." + name);
  module->train(training_);
  children_.emplace_back(std::move(name), std::move(module));
}

void Module::set_path(const std::string& path) {
  path_ = path;
  for (auto& [n, m] : children_) m->set_path(path_ + "." + n);
}

void Module::collect(const std::string& prefix, StateDict* state,
                     std::vector<std::pair<std::string, Var>>* params) const {
  for (const auto& [n, v] : parameters_) {
    if (state) state->emplace_back(prefix + n, v.value());
    if (params) params->emplace_back(prefix + n, v);
  }
  if (state)
    for (const auto& [n, b] : buffers_) state->emplace_back(prefix + n, b.value());
  for (const auto& [n, m] : children_) m->collect(prefix + n + ".", state, params);
}

Var* Module::find_parameter(const std::string& dotted) {
  const size_t dot = dotted.find('.');
  if (dot == std::string::npos) {
    for (auto& [n, v] : parameters_)
      if (n == dotted) return &v;
    return nullptr;
  }
  const std::string child = dotted.substr(0, dot);
  for (auto& [n, m] : children_)
    if (n == child) return m->find_parameter(dotted.substr(dot + 1));
  return nullptr;
}

void Module::set_parameter(const std::string& name, const Var& value) {
  Var* slot = find_parameter(name);
  TG_CHECK(slot != nullptr, "set_parameter", "no parameter named '", name, "'");
  TG_CHECK(value.defined() && value.shape() == slot->shape() && value.dtype() == slot->dtype(), "set_parameter", "'",
           name, "' is ", describe(slot->value()), "; got ", value.defined() ? describe(value.value()) : "undefined");
  *slot = value;   // in place: accessors holding the entry's address see the new Var
}

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> all, out;
  collect("", nullptr, &all);
  for (auto& entry : all) {
    bool seen = false;
    for (const auto& kept : out) seen = seen || kept.second.same(entry.second);
    if (!seen) out.push_back(std::move(entry));
  }
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [n, v] : named_parameters()) out.push_back(v);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const { return children_; }

int64_t parameter_count(const Module& m) {
  int64_t n = 0;
  for (const auto& [name, v] : m.named_parameters()) n += v.numel();
  return n;
}

StateDict Module::state_dict() const {
  StateDict out;
  collect("", &out, nullptr);
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  StateDict own = state_dict();
  std::map<std::string, const Tensor*> given;
  for (const auto& [k, t] : state) given[k] = &t;
  std::vector<std::string> missing, unexpected, mismatched;
  std::map<std::string, bool> known;
  for (auto& [k, dst] : own) {
    known[k] = true;
    auto it = given.find(k);
    if (it == given.end()) {
      missing.push_back(k);
    } else if (it->second->shape() != dst.shape()) {
      mismatched.push_back(k + " expected " + to_string(dst.shape()) + ", got " + to_string(it->second->shape()));
    }
  }
  for (const auto& [k, t] : state)
    if (!known.count(k)) unexpected.push_back(k);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  bool fail = !mismatched.empty() || (strict && (!missing.empty() || !unexpected.empty()));
  if (fail) {
    std::ostringstream msg;
    msg << "[load_state_dict] error(s) loading state dict" << (path_.empty() ? "" : " into " + path_) << ":";
    if (strict && !missing.empty()) msg << " missing keys: " << join(missing) << ";";
    if (strict && !unexpected.empty()) msg << " unexpected keys: " << join(unexpected) << ";";
    if (!mismatched.empty()) msg << " size mismatch: " << join(mismatched) << ";";
    throw std::invalid_argument(msg.str());
  }
  for (auto& [k, dst] : own) {
    auto it = given.find(k);
    if (it != given.end()) dst.copy_(*it->second);   // converts dtype to the module's
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::zero_grad() {
  for (auto& [n, v] : named_parameters()) v.zero_grad();
}

void Module::to(DType dtype) {
  for (auto& [n, v] : parameters_) v.value() = v.value().to(dtype);
  for (auto& [n, b] : buffers_) b.value() = b.value().to(dtype);
  for (auto& [n, m] : children_) m->to(dtype);
}

}  // namespace tg
