#pragma once
// The example programs' --resume: a resumed run is the run the checkpoint saved, so the flags whose
// values the restored optimizer, schedule and clipping keep (as PyTorch's load_state_dict does) must be
// the checkpoint's.
#include <string>

#include <nlohmann/json.hpp>

namespace tg::examples {

// `stored` and `mine` map flag names to values ({"--lr": 0.001, ...}). Throws std::runtime_error naming
// every flag of `mine` whose value differs from `stored`'s, with both values:
//   "<path>: the checkpoint was trained with --lr 0.001 (this run: 0.5); a resumed run keeps the
//    checkpoint's optimizer, schedule and clipping: resume with its values, or start a new run in another
//    --out-dir"
// A flag `stored` lacks is not checked (a checkpoint written before that flag was stored).
void require_resume_settings(const nlohmann::json& stored, const nlohmann::json& mine, const std::string& path);

}  // namespace tg::examples
