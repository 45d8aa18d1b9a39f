#pragma once
// What the processes of one `mpirun ... tiny_lm train` launch must agree on before they train: every
// flag that changes the run (sizes, schedule, optimizer, seeds, when to evaluate, stop or resume) and
// the content of the corpus. Each rank parses its own command line and reads its own data file (one per
// host), so an MPMD launch, a host-specific wrapper script or another copy of the data could otherwise
// hang a collective or silently train a run that no single process would.
#include <string>
#include <vector>

#include "examples/tiny_lm/data.h"
#include "examples/tiny_lm/processes.h"

namespace tg::tiny_lm {

struct TrainOptions;

// One setting: its flag, the text compared across ranks and the text an error shows.
struct RunSetting {
  std::string flag, value, shown;
};

// The settings of `train` that every rank must share, in a fixed order. Not listed (may differ per
// rank): --out-dir (only rank 0 touches it), --threads and --no-progress (speed and display only), and
// the --data path (the corpus is compared by content: {.flag = "--data", .value = its digest}).
std::vector<RunSetting> run_settings(const TrainOptions& options, const Corpus& corpus);

// FNV-1a (64 bits) of the corpus's vocabulary and tokens, as 16 hex digits: equal for equal text.
std::string corpus_digest(const Corpus& corpus);

// Collective (every rank calls it, before anything else collective): compares every rank's
// run_settings with rank 0's and throws the same error on every rank at the first difference, naming
// the flag, the first rank that differs and both values:
//   UsageError "[tiny_lm train] the processes of this launch disagree on --batch-size; got
//               --batch-size=4 on rank 0, --batch-size=2 on rank 1"
//   std::runtime_error "[tiny_lm train] the corpus differs across ranks (--data): rank 0 has <name>
//               (<n> bytes, digest <hex>), rank 1 has ..."
// Alone it does nothing.
void require_same_run(const TrainOptions& options, const Corpus& corpus, const Processes& processes);

}  // namespace tg::tiny_lm
