// Checkpoints: exact round trip of every section, atomic writes under SIGKILL, and clear errors for
// truncated, corrupted or incomplete files.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tapegrad/framework/io/checkpoint.h"
#include "tapegrad/framework/io/hdf5_file.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::io;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path scratch_dir(const std::string& name) {
  fs::path d = fs::path(TAPEGRAD_BINARY_DIR) / "test_scratch" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

Checkpoint sample(int64_t step, int64_t big = 4) {
  Checkpoint c;
  c.step = step;
  c.model = {{"layers.0.self_attn.in_proj_weight", test::rand_tensor({3 * big, big}, step, -1, 1, DType::Float32)},
             {"tok_emb.weight", Tensor::full({big * 64, 64}, double(step), DType::Float32)},
             {"head.bias", test::rand_tensor({5}, step + 1)}};
  c.optimizer = {{"state/layers.0.self_attn.in_proj_weight/step", Tensor::full({}, double(step), DType::Int64)},
                 {"state/layers.0.self_attn.in_proj_weight/exp_avg", test::rand_tensor({3 * big, big}, step + 2)},
                 {"groups/0/lr", Tensor::full({}, 1e-3 / double(step + 1), DType::Float64)}};
  c.scheduler = {{"last_step", Tensor::full({}, double(step), DType::Int64)}};
  c.data = {{"position", Tensor::full({}, double(step * 7), DType::Int64)}};
  c.generators = {{"data", {1337, uint64_t(step) * 1000}}, {"dropout", {~uint64_t(0), uint64_t(1) << 63}}};
  c.config = R"({"n_layer": 4, "n_embd": 128})";
  c.vocabulary = "\n !abc\xc3\xa9";
  return c;
}

void require_equal(const NamedTensors& a, const NamedTensors& b) {
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : a) REQUIRE(find_entry(b, name, "x", "y").bit_equal(t));
}

void require_equal(const Checkpoint& a, const Checkpoint& b) {
  REQUIRE(a.step == b.step);
  require_equal(a.model, b.model);
  require_equal(a.optimizer, b.optimizer);
  require_equal(a.scheduler, b.scheduler);
  require_equal(a.data, b.data);
  REQUIRE(a.generators.size() == b.generators.size());
  for (const auto& [name, s] : a.generators) REQUIRE(find_generator(b, name, "x") == s);
  REQUIRE(a.config == b.config);
  REQUIRE(a.vocabulary == b.vocabulary);
}

}  // namespace

TEST_CASE("checkpoint: every section round-trips exactly", "[checkpoint]") {
  fs::path dir = scratch_dir("roundtrip");
  std::string path = (dir / "ckpt.h5").string();
  Checkpoint c = sample(3);
  save_checkpoint(path, c);
  require_equal(c, load_checkpoint(path));
  // The documented layout: dotted names become groups, readable by h5dump.
  H5File f(path, H5File::Mode::read);
  REQUIRE(f.exists("/model/layers/0/self_attn/in_proj_weight"));
  REQUIRE(f.exists("/optimizer/state/layers.0.self_attn.in_proj_weight/exp_avg"));
  REQUIRE(f.attr_string("/", "format") == "tapegrad-checkpoint");
  REQUIRE(std::system(("h5dump -H " + path + " > /dev/null 2>&1").c_str()) == 0);
  // Overwriting replaces the file and leaves no temporary behind.
  save_checkpoint(path, sample(4));
  REQUIRE(load_checkpoint(path).step == 4);
  REQUIRE(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
}

TEST_CASE("checkpoint: a process killed at any moment of a save leaves the previous checkpoint loadable", "[checkpoint]") {
  fs::path dir = scratch_dir("kill");
  std::string path = (dir / "ckpt.h5").string();
  // Two prepared versions (large enough that a save takes a while); the child alternates them.
  const Checkpoint even = sample(10, 48), odd = sample(11, 48);
  save_checkpoint(path, even);
  std::srand(12345);
  int killed_mid_save = 0;
  for (int round = 0; round < 25; ++round) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (int i = 0;; ++i) save_checkpoint(path, i % 2 ? odd : even);   // until killed
    }
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + std::rand() % 40000));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().string().find(".tmp.") != std::string::npos) {
        ++killed_mid_save;
        fs::remove(e.path());
      }
    Checkpoint got = load_checkpoint(path);
    REQUIRE((got.step == 10 || got.step == 11));
    require_equal(got.step == 10 ? even : odd, got);
  }
  INFO("rounds killed in the middle of a save: " << killed_mid_save);
  REQUIRE(killed_mid_save > 0);
}

TEST_CASE("checkpoint errors: truncated, corrupted, incomplete and missing files name the file and dataset", "[checkpoint][errors]") {
  fs::path dir = scratch_dir("errors");
  std::string path = (dir / "ckpt.h5").string();
  save_checkpoint(path, sample(5, 16));
  const auto size = fs::file_size(path);

  std::string truncated = (dir / "truncated.h5").string();
  fs::copy_file(path, truncated);
  fs::resize_file(truncated, size / 2);
  REQUIRE_THROWS_AS(load_checkpoint(truncated), std::runtime_error);
  REQUIRE_THROWS_WITH(load_checkpoint(truncated), Contains("truncated.h5"));

  std::string corrupted = (dir / "corrupted.h5").string();
  fs::copy_file(path, corrupted);
  {
    std::fstream f(corrupted, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    std::string garbage(512, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  REQUIRE_THROWS_WITH(load_checkpoint(corrupted), Contains("corrupted.h5"));

  std::string incomplete = (dir / "incomplete.h5").string();
  {
    H5File f(incomplete, H5File::Mode::truncate);
    f.set_attr("/", "format", "tapegrad-checkpoint");
    f.set_attr("/", "version", int64_t{1});
    f.set_attr("/", "step", int64_t{1});
    f.create_group("/model");
  }
  REQUIRE_THROWS_WITH(load_checkpoint(incomplete), Contains("incomplete.h5: missing /optimizer"));
  REQUIRE_THROWS_WITH(load_checkpoint((dir / "absent.h5").string()), Contains("absent.h5"));
  Checkpoint c = load_checkpoint(path);
  REQUIRE_THROWS_WITH(find_entry(c.model, "nope.weight", path, "model"), Contains("ckpt.h5: no dataset /model/nope.weight"));
  REQUIRE_THROWS_WITH(find_generator(c, "eval", path), Contains("ckpt.h5: no dataset /rng/eval"));
}
