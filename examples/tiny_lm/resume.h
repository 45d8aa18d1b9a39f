#pragma once
// `tiny_lm train --resume` under mpirun: only rank 0's host has the out-dir, so rank 0 reads the
// checkpoint and every other rank restores the same state from rank 0's bytes.
#include <string>

#include "examples/tiny_lm/checkpointing.h"

namespace tg::tiny_lm {

// Collective over s.processes. Rank 0 reads `path` and restores it into s (TrainingState::load, with
// all its checks); the file's bytes are broadcast, and every other rank restores s from them through
// a private temporary file (removed again), so model, AdamW state, schedule, step and every random
// stream are rank 0's, bit for bit, and no other rank opens `path`. When rank 0 fails (no file, a
// checkpoint of another run), every rank throws rank 0's message (std::runtime_error; rank 0 its own
// exception). Alone it is s.load(path).
void resume_from_root(TrainingState& s, const std::string& path);

}  // namespace tg::tiny_lm
