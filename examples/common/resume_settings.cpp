#include "examples/common/resume_settings.h"

#include <stdexcept>

namespace tg::examples {

void require_resume_settings(const nlohmann::json& stored, const nlohmann::json& mine, const std::string& path) {
  std::string diffs;
  for (auto it = mine.begin(); it != mine.end(); ++it)
    if (stored.contains(it.key()) && stored[it.key()] != it.value())
      diffs += (diffs.empty() ? "" : ", ") + it.key() + " " + stored[it.key()].dump() + " (this run: " +
               it.value().dump() + ")";
  if (!diffs.empty())
    throw std::runtime_error(path + ": the checkpoint was trained with " + diffs +
                             "; a resumed run keeps the checkpoint's optimizer, schedule and clipping: resume with "
                             "its values, or start a new run in another --out-dir");
}

}  // namespace tg::examples
