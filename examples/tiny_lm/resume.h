#pragma once
// `tiny_lm train --resume` under mpirun: only rank 0's host has the out-dir, so rank 0 reads the
// checkpoint once and every rank, rank 0 included, restores the same state from those bytes.
#include <string>

#include "examples/tiny_lm/checkpointing.h"

namespace tg::tiny_lm {

// Collective over s.processes. Rank 0 reads `path`'s bytes once (one open; a file renamed over `path`
// meanwhile changes nothing) and broadcasts them; every rank, rank 0 included, restores s from those
// bytes (TrainingState::load, with all its checks) through a private temporary file (removed again),
// so model, AdamW state, schedule, step and every random stream are the same on every rank, bit for
// bit, and no other rank opens `path`. Errors read as without mpirun, naming `path` (not the copy).
// When rank 0 fails (no file, a damaged file, a checkpoint of another run), every rank throws rank 0's
// message (std::runtime_error; rank 0 its own exception). Alone it is s.load(path).
void resume_from_root(TrainingState& s, const std::string& path);

}  // namespace tg::tiny_lm
