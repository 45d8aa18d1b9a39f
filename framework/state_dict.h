#pragma once
// StateDict: the one type for ordered named tensors (PyTorch's state_dict, an OrderedDict of tensors).
// Modules, optimizers and LR schedulers save with state_dict() and restore with load_state_dict(const
// StateDict&); checkpoints (framework/io/checkpoint.h) store one per section. Entries keep insertion
// order; keys are unique: add, emplace_back and the list/range constructors throw on a duplicate.
//   tg::StateDict sd{{"weight", w}, {"bias", b}};
//   sd.add("running_mean", m);            // throws std::invalid_argument "[StateDict] duplicate key running_mean"
//   const Tensor& w2 = sd.at("weight");    // throws std::invalid_argument "[StateDict] missing key weight"
// Entries hold tensors, which share storage with whatever produced them unless the producer copied
// (optimizer and scheduler state_dict() copy; Module::state_dict() returns the live parameter tensors,
// as PyTorch does).
#include <cstddef>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/framework/tensor.h"

namespace tg {

class StateDict {
 public:
  using value_type = std::pair<std::string, Tensor>;
  using iterator = std::vector<value_type>::iterator;
  using const_iterator = std::vector<value_type>::const_iterator;

  StateDict() = default;
  StateDict(std::initializer_list<value_type> entries);
  // From any range of (name, tensor) pairs, e.g. a std::map<std::string, Tensor>.
  template <class It> StateDict(It first, It last) {
    for (; first != last; ++first) add(first->first, first->second);
  }

  bool contains(const std::string& key) const;
  // Throws std::invalid_argument "[StateDict] missing key <key>".
  const Tensor& at(const std::string& key) const;
  Tensor& at(const std::string& key);
  // Appends; throws std::invalid_argument "[StateDict] duplicate key <key>".
  void add(std::string key, Tensor value);
  void emplace_back(std::string key, Tensor value) { add(std::move(key), std::move(value)); }

  // Positional access in insertion order (i < size(), else std::out_of_range). Through the non-const
  // overload the tensor may be replaced; renaming the key is not supported (use a new StateDict).
  const value_type& operator[](size_t i) const { return entries_.at(i); }
  value_type& operator[](size_t i) { return entries_.at(i); }
  const value_type& front() const { return entries_.at(0); }   // std::out_of_range when empty
  const value_type& back() const { return entries_.at(entries_.size() - 1); }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<std::string> keys() const;
  // Iteration yields (name, tensor) pairs in order. Through a non-const iterator the tensors may be
  // modified in place; renaming a key through it is not supported (use a new StateDict).
  iterator begin() { return entries_.begin(); }
  iterator end() { return entries_.end(); }
  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.end(); }

 private:
  std::vector<value_type> entries_;
};

}  // namespace tg
