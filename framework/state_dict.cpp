#include "tapegrad/framework/state_dict.h"

#include <stdexcept>

namespace tg {

StateDict::StateDict(std::initializer_list<value_type> entries) {
  for (const auto& [k, t] : entries) add(k, t);
}

bool StateDict::contains(const std::string& key) const {
  for (const auto& [k, t] : entries_)
    if (k == key) return true;
  return false;
}

const Tensor& StateDict::at(const std::string& key) const {
  for (const auto& [k, t] : entries_)
    if (k == key) return t;
  throw std::invalid_argument("[StateDict] missing key " + key);
}

Tensor& StateDict::at(const std::string& key) {
  for (auto& [k, t] : entries_)
    if (k == key) return t;
  throw std::invalid_argument("[StateDict] missing key " + key);
}

void StateDict::add(std::string key, Tensor value) {
  if (contains(key)) throw std::invalid_argument("[StateDict] duplicate key " + key);
  entries_.emplace_back(std::move(key), std::move(value));
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [k, t] : entries_) out.push_back(k);
  return out;
}

}  // namespace tg
