#pragma once
// Checkpoints: any model, optionally its optimizer and LR scheduler, named random streams, user
// metadata (JSON text), named extra sections and a step, saved atomically into one HDF5 file and
// restored into the live objects all-or-nothing.
//
//   io::save_checkpoint("ckpt.h5", {.model = &model, .optimizer = &opt, .scheduler = &sched,
//                                   .generators = {{"model", gen}}, .metadata = R"({"lr": 0.001})",
//                                   .step = step});
//   io::CheckpointInfo info = io::load_checkpoint("ckpt.h5", {.model = &model, .optimizer = &opt,
//                                                             .scheduler = &sched, .generators = {{"model", gen}}});
//   step = info.step;                                    // info.metadata: the JSON text
//
// Objects are referenced, never owned; `model`, `optimizer` and `scheduler` accept a pointer to
// anything with state_dict() and load_state_dict(const StateDict&) (tg::Module, tg::optim::Optimizer,
// tg::optim::LRScheduler, or a user's own class). Generators are taken by reference.
//
// Layout (format version 2; readable with h5py and h5dump):
//   /                    attrs: format = "tapegrad-checkpoint", version = 2, step (int64 >= 0),
//                        digest (int64: the 64-bit content digest below, as its bit pattern)
//   /model/<a>/<b>/<c>   one dataset per model state_dict entry, dotted name a.b.c as groups
//   /optimizer/<key>     the optimizer's state_dict, keys as optim/optimizer.h documents them
//                        ("state/<param>/exp_avg", "groups/0/lr"): '/' in a key is a group
//   /scheduler/<key>     the LR scheduler's state_dict, same convention
//   /extra/<name>/<key>  named extra sections (StateDicts) of the caller, e.g. a data sampler's state
//   /rng/<name>          int64[2]: a random stream's (seed, offset), as the bit patterns of uint64
//   /metadata            string: the caller's metadata, JSON text ("{}" when none was given)
// Sections whose object was not given are absent. Every dataset carries an attribute digest (int64)
// over its path, dtype, shape and bytes (strings: their UTF-8 bytes); the root digest covers the
// version, the step and every (path, digest) pair, so an edited, removed or added dataset or string is
// reported: "<file>: checksum mismatch in dataset /model/w" or "<file>: digest mismatch (...)".
//
// Reading refuses, before reading any data: other format versions ("checkpoint version 1 is not
// supported; this tapegrad reads version 2"), soft, external or user-defined links, datasets with
// external raw storage or a virtual layout (a checkpoint never makes tapegrad read another file),
// datasets whose declared size exceeds the file, a negative step; after reading: digest mismatches
// and, unless allow_nonfinite, NaN or Inf values in /model and /optimizer ("<file>: dataset
// /model/w holds a non-finite value (nan) at element 3"): a run that diverged cannot be continued,
// and a model buffer that needs infinities (an additive -inf mask) should be stored as a bool mask
// or the flag set. Every error is std::runtime_error naming the file and the dataset.
//
// Restoring (load_checkpoint): the file is read and verified completely, every requested section and
// stream must be present, weights tied in the live model (two state_dict names sharing one tensor)
// must be byte-identical in the file, then each object's load_state_dict validates; if any object
// refuses, the objects already restored are put back to their previous state, so the live objects
// change only when everything loaded. Sections present but not requested are verified and ignored.
//
// Writing (save_checkpoint): the file is built in memory, then written with the OS's write(2) to
// "<file>.tmp.<pid>" in the same folder, fsync'ed, renamed over the target and the folder fsync'ed.
// A failure (full disk, read-only folder, ...) throws std::runtime_error with the OS's reason
// ("ckpt.h5: cannot write ckpt.h5.tmp.42: No space left on device"), removes the temporary file
// and leaves the previous checkpoint untouched; a process killed during a save leaves the previous
// checkpoint intact. Temporary files "<file>.tmp.<pid>" of processes that no longer exist (killed
// during a save) are removed by the next save of the same target; those of live processes are left.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/framework/random.h"
#include "tapegrad/framework/state_dict.h"

namespace tg::io {

constexpr int64_t kCheckpointVersion = 2;

// A non-owning reference to an object with state_dict() and load_state_dict(const StateDict&).
// A pointer to const can be saved but not loaded into (load throws std::logic_error).
class StateRef {
 public:
  StateRef() = default;
  template <class T>
    requires requires(const T& t) { { t.state_dict() } -> std::convertible_to<StateDict>; }
  StateRef(T* object) {   // NOLINT: implicit, so that {.model = &m} reads naturally
    if (object == nullptr) return;
    save_ = [object] { return StateDict(object->state_dict()); };
    if constexpr (!std::is_const_v<T>) load_ = [object](const StateDict& sd) { object->load_state_dict(sd); };
  }
  explicit operator bool() const { return static_cast<bool>(save_); }
  StateDict state_dict() const { return save_(); }
  void load_state_dict(const StateDict& sd) const;

 private:
  std::function<StateDict()> save_;
  std::function<void(const StateDict&)> load_;
};

// Named random streams: saving reads their state, loading sets it.
using NamedGenerators = std::vector<std::pair<std::string, std::reference_wrapper<Generator>>>;
using ConstNamedGenerators = std::vector<std::pair<std::string, std::reference_wrapper<const Generator>>>;

// What save_checkpoint writes.
struct CheckpointSave {
  StateRef model{}, optimizer{}, scheduler{};
  ConstNamedGenerators generators{};
  std::string metadata{};                                // JSON text; "" is written as "{}"
  int64_t step = 0;                                      // >= 0
  std::vector<std::pair<std::string, StateDict>> extra{};  // /extra/<name>
  bool allow_nonfinite = false;
};

// What load_checkpoint restores into. Objects given here must be in the file.
struct CheckpointLoad {
  StateRef model{}, optimizer{}, scheduler{};
  NamedGenerators generators{};
  std::vector<std::string> extra{};                      // sections that must be present
  bool allow_nonfinite = false;
};

// The verified content of a checkpoint file, as plain data (read_checkpoint, for tools).
struct CheckpointData {
  int64_t step = 0;
  std::string metadata = "{}";
  std::optional<StateDict> model, optimizer, scheduler;
  std::vector<std::pair<std::string, StateDict>> extra;
  std::vector<std::pair<std::string, GeneratorState>> generators;
  bool operator==(const CheckpointData&) const;          // same entries in the same order, bit-equal
};

// What load_checkpoint returns besides restoring: the step, the metadata and every extra section.
struct CheckpointInfo {
  int64_t step = 0;
  std::string metadata;
  std::vector<std::pair<std::string, StateDict>> extra;
  const StateDict& extra_section(const std::string& name) const;   // throws std::out_of_range naming it
};

// Throws std::invalid_argument for bad input (step < 0, metadata that is not JSON, a name that is
// empty or contains '/' or '.', in extra or generators; "[save_checkpoint] ..."), std::runtime_error for
// IO errors and non-finite values (unless allow_nonfinite).
void save_checkpoint(const std::string& path, const CheckpointSave& items);
CheckpointInfo load_checkpoint(const std::string& path, const CheckpointLoad& items);
// The same restore from a checkpoint already read (read_checkpoint): a caller that inspects the content
// first (is this my run's file?) reads the file once, so what it checked is what it restores. `source`
// names the file in the error messages; non-finite values throw unless items.allow_nonfinite, as above.
CheckpointInfo load_checkpoint(const CheckpointData& data, const CheckpointLoad& items, const std::string& source);

// Lower level: write plain data / read and verify a whole file without any live object.
void write_checkpoint(const std::string& path, const CheckpointData& data, bool allow_nonfinite = false);
CheckpointData read_checkpoint(const std::string& path, bool allow_nonfinite = false);
// Reads only the root attributes and /metadata, whose own digest is verified (the structure checks of
// every read apply; the other datasets are not read), e.g. to rebuild a model from its configuration.
std::string read_checkpoint_metadata(const std::string& path);
// Throws std::runtime_error "<source>: dataset /model/w holds a non-finite value (nan) at element 3; ..."
// for the first non-finite model or optimizer value (read_checkpoint's check, for data from elsewhere).
void require_finite(const CheckpointData& data, const std::string& source);

}  // namespace tg::io
