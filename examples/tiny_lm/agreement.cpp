#include "examples/tiny_lm/agreement.h"

#include <cstdint>
#include <cstdio>
#include <stdexcept>

#include "examples/tiny_lm/limits.h"
#include "examples/tiny_lm/train.h"

namespace tg::tiny_lm {
namespace {

// Exact text of a double (17 significant digits round-trip).
std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

RunSetting plain(const char* flag, const std::string& value) { return {flag, value, value}; }

// Flag, value and shown text of each setting, each ended by a NUL (none of them holds one: the shown
// corpus name is a path).
std::vector<char> serialise(const std::vector<RunSetting>& settings) {
  std::vector<char> bytes;
  for (const RunSetting& s : settings)
    for (const std::string* part : {&s.flag, &s.value, &s.shown}) {
      bytes.insert(bytes.end(), part->begin(), part->end());
      bytes.push_back('\0');
    }
  return bytes;
}

std::vector<RunSetting> deserialise(const std::vector<char>& bytes) {
  std::vector<std::string> parts;
  std::string part;
  for (char c : bytes) {
    if (c != '\0') {
      part += c;
      continue;
    }
    parts.push_back(std::move(part));
    part.clear();
  }
  std::vector<RunSetting> settings;
  for (size_t i = 0; i + 2 < parts.size(); i += 3) settings.push_back({parts[i], parts[i + 1], parts[i + 2]});
  return settings;
}

// The index of the first of `mine` that differs from rank 0's `root` (-1: none).
int first_difference(const std::vector<RunSetting>& mine, const std::vector<RunSetting>& root) {
  for (size_t i = 0; i < mine.size(); ++i)
    if (i >= root.size() || root[i].flag != mine[i].flag || root[i].value != mine[i].value) return static_cast<int>(i);
  return mine.size() == root.size() ? -1 : static_cast<int>(mine.size());
}

}  // namespace

std::string corpus_digest(const Corpus& corpus) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto add = [&h](uint64_t byte) { h = (h ^ byte) * 0x100000001b3ull; };
  for (unsigned char c : corpus.vocab.chars()) add(c);
  add(0x100);   // separators: no two different (vocabulary, train, val) triples hash the same sequence
  for (int64_t t : corpus.train) add(static_cast<uint64_t>(t));
  add(0x100);
  for (int64_t t : corpus.val) add(static_cast<uint64_t>(t));
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::vector<RunSetting> run_settings(const TrainOptions& o, const Corpus& corpus) {
  const std::string digest = corpus_digest(corpus);
  const size_t tokens = corpus.train.size() + corpus.val.size();
  return {{"--data", digest, corpus.name + " (" + std::to_string(tokens) + " bytes, digest " + digest + ")"},
          plain("--block-size", std::to_string(o.block_size)), plain("--batch-size", std::to_string(o.batch_size)),
          plain("--grad-accum", std::to_string(o.grad_accum)), plain("--n-layer", std::to_string(o.n_layer)),
          plain("--n-head", std::to_string(o.n_head)), plain("--n-embd", std::to_string(o.n_embd)),
          plain("--dropout", exact(o.dropout)), plain("--max-iters", std::to_string(o.max_iters)),
          plain("--lr-decay-iters", std::to_string(o.lr_decay_iters)),
          plain("--warmup-iters", std::to_string(o.warmup_iters)), plain("--lr", exact(o.lr)),
          plain("--min-lr", exact(o.min_lr)), plain("--weight-decay", exact(o.weight_decay)),
          plain("--beta1", exact(o.beta1)), plain("--beta2", exact(o.beta2)), plain("--grad-clip", exact(o.grad_clip)),
          plain("--eval-interval", std::to_string(o.eval_interval)),
          plain("--eval-iters", std::to_string(o.eval_iters)), plain("--seed", std::to_string(o.seed)),
          plain("--tie-weights", o.tie_weights ? "1" : "0"), plain("--resume", o.resume ? "on" : "off"),
          plain("--stop-at", std::to_string(o.stop_at)), plain("--precision", to_string(o.precision))};
}

void require_same_run(const TrainOptions& o, const Corpus& corpus, const Processes& processes) {
  if (processes.size() == 1) return;
  const std::vector<RunSetting> mine = run_settings(o, corpus);
  std::vector<char> bytes = serialise(mine);
  processes.broadcast_bytes(bytes, 0);
  const std::vector<RunSetting> root = deserialise(bytes);
  const std::vector<double> differs = processes.all_gather(first_difference(mine, root));
  int rank = 0;
  while (rank < processes.size() && differs[static_cast<size_t>(rank)] < 0) ++rank;
  if (rank == processes.size()) return;
  // Every rank learns the differing rank's text of that setting, and throws the same error.
  const auto at = static_cast<size_t>(differs[static_cast<size_t>(rank)]);
  std::vector<char> theirs;
  if (processes.rank() == rank) {
    const std::string own = at < mine.size() ? mine[at].shown : "(nothing)";
    theirs.assign(own.begin(), own.end());
  }
  processes.broadcast_bytes(theirs, rank);
  const std::string flag = at < root.size() ? root[at].flag : "a setting rank 0 does not have";
  const std::string ours = at < root.size() ? root[at].shown : "(nothing)";
  const std::string other(theirs.begin(), theirs.end()), r = std::to_string(rank);
  if (flag == "--data")
    throw std::runtime_error("[tiny_lm train] the corpus differs across ranks (--data): rank 0 has " + ours +
                             ", rank " + r + " has " + other + "; give every rank the same data file");
  throw UsageError("[tiny_lm train] the processes of this launch disagree on " + flag + "; got " + flag + "=" + ours +
                   " on rank 0, " + flag + "=" + other + " on rank " + r +
                   " (every rank of an mpirun launch must be given the same flags)");
}

}  // namespace tg::tiny_lm
