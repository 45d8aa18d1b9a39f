// Checkpoint fuzzing: a seeded generator derives corrupted and crafted files from one small valid
// checkpoint (byte flips, truncations, zeroed and random blocks, appended garbage, wrong shapes and
// dtypes, huge dimensions, external storage, virtual datasets, soft and external links, edited
// strings and attributes, missing groups and datasets) and reads each in a forked child, which must
// end with a clean std::runtime_error / std::invalid_argument naming the file, or succeed with exactly
// the original content. A signal (crash, sanitizer abort), a hang (10 s), another exception type or a
// silently different content fails the test, listing the variants.
//
// Default: 200 variants (TAPEGRAD_FUZZ_VARIANTS overrides). The large run (1000 variants) is the CTest
// test framework/checkpoint_fuzz_large, opt-in: ctest --test-dir build -C fuzz -L fuzz
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "support/h5craft_support.h"
#include "support/test_support.h"
#include "tapegrad/framework/io/checkpoint.h"

using namespace tg;
using namespace tg::io;
namespace fs = std::filesystem;

namespace {

constexpr auto kTimeout = std::chrono::seconds(10);

CheckpointData original() {
  CheckpointData c;
  c.step = 17;
  c.model = StateDict{{"emb.weight", test::rand_tensor({96, 64}, 1, -1, 1, DType::Float32)},   // 24 KB: chunked
                      {"layers.0.linear.weight", test::rand_tensor({8, 4}, 2)},                   // compact
                      {"layers.0.linear.bias", test::rand_tensor({8}, 3, -1, 1, DType::Float32)},
                      {"mask", Tensor::from_bools({true, false, false, true}, {2, 2})}};
  c.optimizer = StateDict{{"state/emb.weight/step", Tensor::full({}, 17, DType::Int64)},
                          {"state/emb.weight/exp_avg", test::rand_tensor({96, 64}, 4, -1, 1, DType::Float32)},
                          {"groups/0/lr", Tensor::full({}, 1e-3, DType::Float64)}};
  // A group of more than 8 links, as a real optimizer's /optimizer/state (one group per parameter): HDF5
  // would keep it in dense storage, whose damaged form crashed libhdf5's reader (hdf5_handles.h).
  for (int i = 0; i < 12; ++i)
    c.optimizer->add(std::string("state/p").append(std::to_string(i)).append("/exp_avg"),
                     test::rand_tensor({4}, 10 + i, -1, 1, DType::Float32));
  c.scheduler = StateDict{{"last_step", Tensor::full({}, 17, DType::Int64)}};
  c.extra = {{"data", StateDict{{"vocabulary", Tensor::arange(20)}}}};
  c.generators = {{"model", {1337, 99}}, {"batches", {7, 123456}}};
  c.metadata = R"({"config": {"n_layer": 1, "n_embd": 64, "layer_norm_eps": 1e-05}, "vocabulary": "abc"})";
  return c;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

const char* const kKinds[] = {"byte flips", "truncation", "zeroed block", "random block", "appended garbage",
                              "wrong shape", "wrong dtype", "huge dimensions", "external storage", "virtual dataset",
                              "soft link", "external link", "edited string", "edited attribute", "missing object"};
constexpr int kKindCount = sizeof(kKinds) / sizeof(kKinds[0]);

// Byte-level damage of kinds 0-4 (flips, truncation, zeroed block, random block, appended garbage).
void damage_bytes(int kind, std::mt19937_64& rng, std::string& b) {
  auto pick = [&](uint64_t n) { return static_cast<size_t>(rng() % n); };
  switch (kind) {
    case 0:
      for (size_t i = 0, n = 1 + pick(4); i < n; ++i) b[pick(b.size())] ^= static_cast<char>(1 + pick(255));
      break;
    case 1: b.resize(pick(b.size())); break;
    case 2:
    case 3: {
      const size_t at = pick(b.size()), n = std::min(b.size() - at, 1 + pick(256));
      for (size_t i = 0; i < n; ++i) b[at + i] = kind == 2 ? '\0' : static_cast<char>(rng());
      break;
    }
    case 4: b.append(1 + pick(4096), static_cast<char>(rng())); break;
    default: break;
  }
}

// Crafted structure of kinds 5-14, through the HDF5 C API, on the file at path.
void craft(int kind, std::mt19937_64& rng, const std::vector<std::string>& datasets, const std::string& path,
           const std::string& source) {
  using test::CraftType;
  auto pick = [&](uint64_t n) { return static_cast<size_t>(rng() % n); };
  const std::string dset = datasets[pick(datasets.size())];
  const std::vector<std::string> groups = {"/model", "/optimizer", "/scheduler", "/rng", "/extra", "/metadata",
                                           "/model/layers", "/optimizer/state/emb.weight", "/extra/data"};
  const CraftType types[] = {CraftType::f32, CraftType::f64, CraftType::i32, CraftType::i64, CraftType::u8, CraftType::string};
  switch (kind) {
    case 5: test::craft_replace_dataset(path, dset, CraftType::f32, {1 + pick(9), 1 + pick(9)}); break;
    case 6: test::craft_replace_dataset(path, dset, types[pick(6)], {8}); break;
    case 7: {
      const uint64_t big = pick(2) ? (1ULL << 31) : (1ULL << (20 + pick(20)));
      test::craft_replace_dataset(path, dset, types[pick(5)], {big, big}, /*huge=*/true);
      break;
    }
    case 8: test::craft_external_storage(path, dset, pick(2) ? "/etc/passwd" : source, 8); break;
    case 9: test::craft_virtual(path, dset, source, "/data", 8); break;
    case 10: test::craft_soft_link(path, pick(2) ? dset : groups[pick(groups.size())], datasets[pick(datasets.size())]); break;
    case 11: test::craft_external_link(path, pick(2) ? dset : groups[pick(groups.size())], source, "/data"); break;
    case 12: {
      std::string text = original().metadata;
      text[pick(text.size())] = "0123456789abcdef{}\" ,"[pick(21)];
      test::craft_string(path, "/metadata", text, /*variable=*/pick(4) == 0);
      break;
    }
    case 13: {
      const int64_t values[] = {-1, 0, 1, 2, 3, 16, 18, int64_t(1) << 62, static_cast<int64_t>(rng())};
      const int64_t v = values[pick(9)];
      switch (pick(5)) {
        case 0: test::craft_int_attr(path, "/", "step", v); break;
        case 1: test::craft_int_attr(path, "/", "version", v); break;
        case 2: test::craft_int_attr(path, pick(2) ? "/" : dset, "digest", v); break;
        case 3: test::craft_string_attr(path, "/", "format", pick(2) ? "tapegrad-checkpoint " : ""); break;
        default:
          if (pick(2)) test::craft_delete_attr(path, "/", pick(2) ? "digest" : "step");
          else test::craft_delete_attr(path, dset, "digest");
          break;
      }
      break;
    }
    case 14: test::craft_delete(path, pick(2) ? dset : groups[pick(groups.size())]); break;
    default: break;
  }
}

// Writes variant `seed` of the base file (its bytes and dataset paths) to path; returns its kind.
int make_variant(uint64_t seed, const std::string& bytes, const std::vector<std::string>& datasets, const std::string& path,
                 const std::string& source) {
  std::mt19937_64 rng(seed);
  // Byte-level damage in about half of the variants, crafted structure in the others.
  const int kind = rng() % 2 == 0 ? static_cast<int>(rng() % 5) : 5 + static_cast<int>(rng() % (kKindCount - 5));
  std::string b = bytes;
  damage_bytes(kind, rng, b);
  write_bytes(path, b);
  craft(kind, rng, datasets, path, source);
  return kind;
}

// 0: identical content, 1: clean error naming the file, 2: silently different, 3: other exception,
// 4: error not naming the file.
int read_in_child(const std::string& path, const CheckpointData& expected) {
  int code = 3;
  try {
    code = read_checkpoint(path) == expected ? 0 : 2;
  } catch (const std::runtime_error& e) {
    code = std::string(e.what()).find(fs::path(path).filename().string()) != std::string::npos ? 1 : 4;
  } catch (const std::invalid_argument& e) {
    code = std::string(e.what()).find(fs::path(path).filename().string()) != std::string::npos ? 1 : 4;
  } catch (...) {
    code = 3;
  }
  return code;
}

// The child's outcome: its exit code, or "signal N" / "timeout".
std::string run_child(const std::string& path, const CheckpointData& expected, int* code) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Fresh and freed heap blocks filled with a pattern (as MALLOC_PERTURB_ would): a read of memory the
    // reader never initialised then fails the same way every run instead of depending on leftovers.
    mallopt(M_PERTURB, 0xa5);
    std::exit(read_in_child(path, expected));   // std::exit: HDF5's atexit handlers run too
  }
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return "timeout";
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  *code = WEXITSTATUS(status);
  return "";
}

int variant_count() {
  const char* env = std::getenv("TAPEGRAD_FUZZ_VARIANTS");
  return env ? std::max(1, std::atoi(env)) : 200;
}

}  // namespace

TEST_CASE("checkpoint fuzz: corrupted and crafted files load exactly or fail cleanly, never crash or hang",
          "[checkpoint][fuzz]") {
  const fs::path dir = tg::test::scratch_dir("checkpoint_fuzz");
  const std::string base = (dir / "base.h5").string(), source = (dir / "source.h5").string();
  const CheckpointData expected = original();
  write_checkpoint(base, expected);
  REQUIRE(read_checkpoint(base) == expected);
  test::craft_source_file(source, "/data", 8);
  const std::string bytes = read_bytes(base);
  const std::vector<std::string> datasets = test::craft_list_datasets(base);
  REQUIRE(datasets.size() == 24);

  const int n = variant_count();
  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, int> outcomes;   // "<kind>: <outcome>" -> count
  std::vector<std::string> failures;
  for (int i = 0; i < n; ++i) {
    const std::string path = (dir / ("variant_" + std::to_string(i) + ".h5")).string();
    const uint64_t seed = 0x5eed0000ULL + static_cast<uint64_t>(i);
    int kind = -1;
    try {
      kind = make_variant(seed, bytes, datasets, path, source);
    } catch (const std::exception& e) {
      FAIL("cannot craft variant " << i << ": " << e.what());
    }
    int code = -1;
    std::string abnormal = run_child(path, expected, &code);
    const char* names[] = {"identical", "clean error", "SILENTLY DIFFERENT", "other exception", "error without file name"};
    const std::string outcome = abnormal.empty() ? names[code >= 0 && code <= 4 ? code : 3] : abnormal;
    ++outcomes[std::string(kKinds[kind]) + ": " + outcome];
    if (!abnormal.empty() || code >= 2)
      failures.push_back("variant " + std::to_string(i) + " (seed " + std::to_string(seed) + ", " + kKinds[kind] + "): " + outcome);
    else
      fs::remove(path);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string summary = std::to_string(n) + " variants in " + std::to_string(seconds) + " s\n";
  for (const auto& [what, count] : outcomes) summary += "  " + what + ": " + std::to_string(count) + "\n";
  for (const std::string& f : failures) summary += "  FAILED " + f + "\n";
  INFO(summary);
  if (std::getenv("TAPEGRAD_FUZZ_VERBOSE")) WARN(summary);
  REQUIRE(failures.empty());
  REQUIRE(outcomes.size() > 10);   // the generator really produced many kinds and outcomes
}

TEST_CASE("checkpoint: groups of many entries keep their links in the object header (no dense storage, which "
          "libhdf5 can crash on when it is damaged)", "[checkpoint][fuzz]") {
  // HDF5 would move a group of more than 8 links into dense storage (a fractal heap and v2 B-trees), and
  // libhdf5 1.10.8 crashes (SIGSEGV / SIGABRT in its link-table cleanup) on some damaged dense groups --
  // a random fuzz of real checkpoints (an optimizer's /optimizer/state holds a group per parameter) found
  // 48 crashes in 3,100 damaged files. Checkpoints keep up to 65535 links per group compact
  // (io/hdf5_handles.h): none of dense storage's structures may appear in the file.
  CheckpointData c;
  c.step = 3;
  c.model = StateDict{};
  c.optimizer = StateDict{};
  for (int i = 0; i < 300; ++i) {
    const std::string name = std::string("p").append(std::to_string(i));
    c.model->add(name, test::rand_tensor({2}, 50 + i, -1, 1, DType::Float32));
    c.optimizer->add(std::string("state/").append(name).append("/exp_avg"),
                     test::rand_tensor({2}, 700 + i, -1, 1, DType::Float32));
  }
  c.generators = {{"model", {1, 2}}};
  c.metadata = "{}";
  const fs::path dir = tg::test::scratch_dir("checkpoint_links");
  const std::string path = (dir / "many.h5").string();
  write_checkpoint(path, c);
  REQUIRE(read_checkpoint(path) == c);
  const std::string bytes = read_bytes(path);
  for (const char* signature : {"FRHP", "FHDB", "FHIB", "BTHD", "BTLF", "BTIN"}) {
    INFO("signature " << signature);
    REQUIRE(bytes.find(signature) == std::string::npos);
  }
}
