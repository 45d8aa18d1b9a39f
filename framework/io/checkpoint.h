#pragma once
// Training checkpoints in one HDF5 file: everything needed to continue a run bit-identically.
//
// Layout (readable with h5py and h5dump):
//   /                      attrs: format = "tapegrad-checkpoint", version = 1, step (int64)
//   /model/<a>/<b>/<c>     one dataset per state_dict entry; the dotted name a.b.c becomes groups
//                          (layers.0.self_attn.in_proj_weight -> /model/layers/0/self_attn/in_proj_weight)
//   /optimizer/<key>       the optimizer's state, keys as tg::optim::Optimizer::state() names them
//                          ("state/<param name>/exp_avg", "groups/0/lr", ...): '/' in a key is a group
//   /scheduler/<key>       the LR schedule's state, same convention
//   /data/<key>            the data sampler's state (position, epoch, ...), same convention
//   /rng/<name>            int64[2]: a random stream's (seed, offset), as the bit patterns of uint64
//   /config                string: the model configuration (JSON)
//   /vocabulary            string: the tokenizer's vocabulary (UTF-8)
//
// Writes are atomic: the file is written to a temporary name in the same folder, flushed and
// fsync'ed, then renamed over the target (and the folder fsync'ed), so a process killed at any
// moment leaves the previous checkpoint intact and loadable. Reading a truncated, corrupted or
// incomplete file throws std::runtime_error naming the file and the dataset.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tensor.h"

namespace tg::io {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct Checkpoint {
  NamedTensors model;
  NamedTensors optimizer;
  NamedTensors scheduler;
  NamedTensors data;
  std::vector<std::pair<std::string, GeneratorState>> generators;
  int64_t step = 0;
  std::string config;
  std::string vocabulary;
};

void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);
Checkpoint load_checkpoint(const std::string& path);

// Looks up a named entry; throws std::runtime_error "<file>: no dataset /<section>/<name>".
const Tensor& find_entry(const NamedTensors& entries, const std::string& name, const std::string& file,
                         const std::string& section);
GeneratorState find_generator(const Checkpoint& c, const std::string& name, const std::string& file);

}  // namespace tg::io
