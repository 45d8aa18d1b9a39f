// save_checkpoint / load_checkpoint: live objects <-> CheckpointData (the format is checkpoint_data.cpp).
#include "tapegrad/framework/io/checkpoint.h"

#include <stdexcept>

namespace tg::io {
namespace {

// Entries of the live model that share one tensor (tied weights): pairs of keys.
std::vector<std::pair<std::string, std::string>> tied_keys(const StateDict& live) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < live.size(); ++i)
    for (size_t j = i + 1; j < live.size(); ++j) {
      const Tensor& a = live[i].second;
      const Tensor& b = live[j].second;
      if (a.defined() && b.defined() && a.numel() > 0 && a.raw() == b.raw() && a.shape() == b.shape())
        out.emplace_back(live[i].first, live[j].first);
    }
  return out;
}

void check_tied(const std::string& path, const StateDict& live, const StateDict& stored) {
  for (const auto& [a, b] : tied_keys(live)) {
    if (!stored.contains(a) || !stored.contains(b)) continue;   // load_state_dict reports missing keys
    if (!stored.at(a).bit_equal(stored.at(b)))
      throw std::runtime_error(path + ": datasets /model/" + a + " and /model/" + b +
                               " hold weights that are tied in the model but differ in the file");
  }
}

const StateDict& required(const std::optional<StateDict>& section, const std::string& path, const char* name) {
  if (!section) throw std::runtime_error(path + ": missing /" + std::string(name) + " (the checkpoint has no " + name + " state)");
  return *section;
}

StateDict clone_of(const StateDict& sd) {
  StateDict out;
  for (const auto& [k, t] : sd) out.add(k, t.clone());
  return out;
}

// Loads each (object, state) in order; when one refuses, restores the ones already loaded and
// rethrows as std::runtime_error naming the file.
void load_all(const std::string& path, const std::vector<std::pair<const StateRef*, const StateDict*>>& jobs) {
  std::vector<StateDict> before;
  for (const auto& [ref, sd] : jobs) before.push_back(clone_of(ref->state_dict()));
  size_t done = 0;
  try {
    for (; done < jobs.size(); ++done) jobs[done].first->load_state_dict(*jobs[done].second);
  } catch (const std::exception& e) {
    for (size_t i = 0; i < done; ++i) jobs[i].first->load_state_dict(before[i]);
    if (dynamic_cast<const std::logic_error*>(&e) && !dynamic_cast<const std::invalid_argument*>(&e)) throw;
    throw std::runtime_error(path + ": " + e.what());
  }
}

}  // namespace

void StateRef::load_state_dict(const StateDict& sd) const {
  if (!load_) throw std::logic_error("[load_checkpoint] cannot load into an object given as a pointer to const");
  load_(sd);
}

const StateDict& CheckpointInfo::extra_section(const std::string& name) const {
  for (const auto& [n, sd] : extra)
    if (n == name) return sd;
  throw std::out_of_range("[CheckpointInfo] no extra section '" + name + "'");
}

void save_checkpoint(const std::string& path, const CheckpointSave& items) {
  CheckpointData data;
  data.step = items.step;
  data.metadata = items.metadata.empty() ? "{}" : items.metadata;
  if (items.model) data.model = items.model.state_dict();
  if (items.optimizer) data.optimizer = items.optimizer.state_dict();
  if (items.scheduler) data.scheduler = items.scheduler.state_dict();
  data.extra = items.extra;
  for (const auto& [name, gen] : items.generators) data.generators.emplace_back(name, gen.get().state());
  write_checkpoint(path, data, items.allow_nonfinite);
}

CheckpointInfo load_checkpoint(const std::string& path, const CheckpointLoad& items) {
  // The finiteness check (unless items.allow_nonfinite) is the overload's: once, not also in the read.
  return load_checkpoint(read_checkpoint(path, /*allow_nonfinite=*/true), items, path);
}

CheckpointInfo load_checkpoint(const CheckpointData& data, const CheckpointLoad& items, const std::string& path) {
  if (!items.allow_nonfinite) require_finite(data, path);   // read_checkpoint's check, for data read otherwise
  // Everything requested must be there before anything changes.
  std::vector<GeneratorState> streams;
  for (const auto& [name, gen] : items.generators) {
    const GeneratorState* found = nullptr;
    for (const auto& [n, s] : data.generators)
      if (n == name) found = &s;
    if (!found) throw std::runtime_error(path + ": missing /rng/" + name + " (random stream '" + name + "')");
    streams.push_back(*found);
  }
  CheckpointInfo info{data.step, data.metadata, data.extra};
  for (const std::string& name : items.extra) {
    bool found = false;
    for (const auto& [n, sd] : data.extra) found = found || n == name;
    if (!found) throw std::runtime_error(path + ": missing /extra/" + name);
  }
  std::vector<std::pair<const StateRef*, const StateDict*>> jobs;
  if (items.model) {
    check_tied(path, items.model.state_dict(), required(data.model, path, "model"));
    jobs.emplace_back(&items.model, &*data.model);
  }
  if (items.optimizer) jobs.emplace_back(&items.optimizer, &required(data.optimizer, path, "optimizer"));
  // The scheduler last: its load_state_dict writes lrs into the optimizer's groups.
  if (items.scheduler) jobs.emplace_back(&items.scheduler, &required(data.scheduler, path, "scheduler"));
  load_all(path, jobs);
  for (size_t i = 0; i < streams.size(); ++i) items.generators[i].second.get().set_state(streams[i]);
  return info;
}

}  // namespace tg::io
