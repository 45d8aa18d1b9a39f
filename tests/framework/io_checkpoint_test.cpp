// Checkpoints: exact round trips (plain data and live objects), the documented layout, all-or-nothing
// restore, and every integrity check: version, digests, links, foreign storage, huge shapes, NaN/Inf,
// tied weights, step. Save faults are in checkpoint_faults_test.cpp, the fuzz run in checkpoint_fuzz_test.cpp.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "support/file_events.h"
#include "support/h5craft_support.h"
#include "support/test_support.h"
#include "tapegrad/framework/io/atomic_file.h"
#include "tapegrad/framework/io/checkpoint.h"
#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/lr_scheduler.h"

using namespace tg;
using namespace tg::io;
using tg::test::scratch_dir;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

CheckpointData sample(int64_t step, int64_t big = 4) {
  CheckpointData c;
  c.step = step;
  c.model = StateDict{{"layers.0.self_attn.in_proj_weight", test::rand_tensor({3 * big, big}, step, -1, 1, DType::Float32)},
                      {"tok_emb.weight", Tensor::full({big * 64, 64}, double(step), DType::Float32)},
                      {"head.bias", test::rand_tensor({5}, step + 1)},
                      {"mask", Tensor::from_bools({true, false, true}, {3})}};
  c.optimizer = StateDict{{"state/layers.0.self_attn.in_proj_weight/step", Tensor::full({}, double(step), DType::Int64)},
                          {"state/layers.0.self_attn.in_proj_weight/exp_avg", test::rand_tensor({3 * big, big}, step + 2)},
                          {"groups/0/lr", Tensor::full({}, 1e-3 / double(step + 1), DType::Float64)}};
  c.scheduler = StateDict{{"last_step", Tensor::full({}, double(step), DType::Int64)}};
  c.extra = {{"data", StateDict{{"position", Tensor::full({}, double(step * 7), DType::Int64)}}}};
  c.generators = {{"data", {1337, uint64_t(step) * 1000}}, {"dropout", {~uint64_t(0), uint64_t(1) << 63}}};
  c.metadata = R"({"n_layer": 4, "n_embd": 128, "name": "caf\u00e9"})";
  return c;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string write_sample(const fs::path& dir, const std::string& name = "ckpt.h5", int64_t step = 3) {
  const std::string path = (dir / name).string();
  write_checkpoint(path, sample(step));
  return path;
}

std::string copy_of(const std::string& path, const std::string& name) {
  const std::string out = (fs::path(path).parent_path() / name).string();
  fs::copy_file(path, out, fs::copy_options::overwrite_existing);
  return out;
}

// A small training setup: Linear + Adam (one step taken) + StepLR + a generator.
struct Run {
  Generator gen;
  Linear lin;
  optim::Adam opt;
  optim::StepLR sched;
  explicit Run(uint64_t seed)
      : gen(seed), lin({.in_features = 3, .out_features = 2}, gen, DType::Float64),
        opt(lin.named_parameters(), {.lr = 0.01}), sched(opt, {.step_size = 2, .gamma = 0.5}) {}
  void step() {
    Var x(test::rand_tensor({4, 3}, gen.next_u64()));
    Var loss = sum(lin.forward(x) * lin.forward(x));
    opt.zero_grad();
    loss.backward();
    opt.step();
    sched.step();
  }
};

bool same(const StateDict& a, const StateDict& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, t] : a)
    if (!b.contains(k) || !b.at(k).bit_equal(t)) return false;
  return true;
}

}  // namespace

TEST_CASE("StateDict: ordered, unique keys, at/contains/add", "[checkpoint][state_dict]") {
  StateDict sd{{"b", Tensor::scalar(1.0)}, {"a", Tensor::scalar(2.0)}};
  sd.add("c", Tensor::scalar(3.0));
  REQUIRE(sd.keys() == std::vector<std::string>{"b", "a", "c"});
  REQUIRE(sd.contains("a"));
  REQUIRE_FALSE(sd.contains("z"));
  REQUIRE(sd.at("c").item() == 3.0);
  REQUIRE(sd[0].first == "b");
  REQUIRE_THROWS_WITH(sd.add("a", Tensor::scalar(0.0)), Contains("[StateDict] duplicate key a"));
  REQUIRE_THROWS_WITH(sd.emplace_back("b", Tensor::scalar(0.0)), Contains("[StateDict] duplicate key b"));
  REQUIRE_THROWS_WITH(sd.at("z"), Contains("[StateDict] missing key z"));
  REQUIRE_THROWS_WITH((StateDict{{"x", Tensor::scalar(1.0)}, {"x", Tensor::scalar(1.0)}}), Contains("duplicate key x"));
}

TEST_CASE("checkpoint: plain data round-trips exactly in the documented layout", "[checkpoint]") {
  fs::path dir = scratch_dir("ckpt_roundtrip");
  const std::string path = write_sample(dir);
  REQUIRE(read_checkpoint(path) == sample(3));
  REQUIRE_FALSE(read_checkpoint(path) == sample(4));
  REQUIRE(read_checkpoint_metadata(path) == sample(3).metadata);
  H5File f(path, H5File::Mode::read);
  REQUIRE(f.exists("/model/layers/0/self_attn/in_proj_weight"));
  REQUIRE(f.exists("/optimizer/state/layers.0.self_attn.in_proj_weight/exp_avg"));
  REQUIRE(f.exists("/extra/data/position"));
  REQUIRE(f.dataset_shape("/rng/dropout") == Shape{2});
  REQUIRE(f.attr_string("/", "format") == "tapegrad-checkpoint");
  REQUIRE(f.attr_int("/", "version") == 2);
  REQUIRE(f.attr_int("/", "step") == 3);
  REQUIRE(f.has_attr("/", "digest"));
  REQUIRE(f.has_attr("/model/head/bias", "digest"));
  REQUIRE(f.read_string("/metadata") == sample(3).metadata);
  REQUIRE(std::system(("h5dump -H " + path + " > /dev/null 2>&1").c_str()) == 0);
  // The same content gives the same bytes; overwriting leaves no temporary behind.
  const std::string bytes = read_bytes(path);
  write_checkpoint(path, sample(3));
  REQUIRE(read_bytes(path) == bytes);
  write_checkpoint(path, sample(4));
  REQUIRE(read_checkpoint(path).step == 4);
  REQUIRE(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
}

TEST_CASE("checkpoint: model, optimizer, scheduler and streams of a run resume bit-identically", "[checkpoint]") {
  fs::path dir = scratch_dir("ckpt_live");
  const std::string path = (dir / "ckpt.h5").string();
  Run a(11);
  a.step();
  a.step();
  save_checkpoint(path, {.model = &a.lin, .optimizer = &a.opt, .scheduler = &a.sched, .generators = {{"main", a.gen}},
                         .metadata = R"({"run": "a"})", .step = 2, .extra = {{"notes", StateDict{{"x", Tensor::scalar(5.0)}}}}});
  Run b(99);   // other initial weights, no optimizer state, other stream
  CheckpointInfo info = load_checkpoint(path, {.model = &b.lin, .optimizer = &b.opt, .scheduler = &b.sched,
                                               .generators = {{"main", b.gen}}, .extra = {"notes"}});
  REQUIRE(info.step == 2);
  REQUIRE(info.metadata == R"({"run": "a"})");
  REQUIRE(info.extra_section("notes").at("x").item() == 5.0);
  REQUIRE_THROWS_AS(info.extra_section("nope"), std::out_of_range);
  REQUIRE(b.gen.state() == a.gen.state());
  REQUIRE(b.sched.last_step() == 2);
  a.step();
  b.step();
  REQUIRE(same(a.lin.state_dict(), b.lin.state_dict()));
  REQUIRE(same(a.opt.state_dict(), b.opt.state_dict()));
  // Only the model: the other sections are verified and ignored.
  Run c(5);
  load_checkpoint(path, {.model = &c.lin});
  REQUIRE(c.lin.state_dict().at("weight").bit_equal(read_checkpoint(path).model->at("weight")));
}

TEST_CASE("checkpoint: load_checkpoint from data already read restores the same, checks finiteness", "[checkpoint]") {
  fs::path dir = scratch_dir("ckpt_from_data");
  const std::string path = (dir / "ckpt.h5").string();
  Run a(11);
  a.step();
  save_checkpoint(path, {.model = &a.lin, .optimizer = &a.opt, .scheduler = &a.sched, .generators = {{"main", a.gen}},
                         .step = 1});
  CheckpointData data = read_checkpoint(path);
  Run b(99), c(98);
  const CheckpointLoad into_b{
      .model = &b.lin, .optimizer = &b.opt, .scheduler = &b.sched, .generators = {{"main", b.gen}}};
  REQUIRE(load_checkpoint(data, into_b, "copy of " + path).step == 1);
  load_checkpoint(path, {.model = &c.lin, .optimizer = &c.opt, .scheduler = &c.sched, .generators = {{"main", c.gen}}});
  REQUIRE(same(b.lin.state_dict(), c.lin.state_dict()));
  REQUIRE(same(b.opt.state_dict(), c.opt.state_dict()));
  REQUIRE(b.gen.state() == c.gen.state());
  // Data from elsewhere gets read_checkpoint's finiteness check, naming the source given.
  data.model->at("weight").set_flat(3, std::nan(""));
  REQUIRE_THROWS_MATCHES(load_checkpoint(data, {.model = &b.lin}, "mine.h5"), std::runtime_error,
                         Catch::Matchers::Message("mine.h5: dataset /model/weight holds a non-finite value (nan) at "
                                                  "element 3; a checkpoint stores finite weights and state only"));
  REQUIRE(same(b.lin.state_dict(), c.lin.state_dict()));   // nothing changed
  // The path form checks the same way, once (its read leaves the check to the restore), naming the file.
  const std::string nan_path = (dir / "nan.h5").string();
  write_checkpoint(nan_path, data, /*allow_nonfinite=*/true);
  REQUIRE_THROWS_WITH(load_checkpoint(nan_path, {.model = &b.lin}),
                      nan_path + ": dataset /model/weight holds a non-finite value (nan) at element 3; a checkpoint "
                                 "stores finite weights and state only");
  REQUIRE(same(b.lin.state_dict(), c.lin.state_dict()));
  load_checkpoint(data, {.model = &b.lin, .allow_nonfinite = true}, "mine.h5");
  REQUIRE(std::isnan(b.lin.state_dict().at("weight").flat(3)));
}

TEST_CASE("checkpoint: restore is all-or-nothing across objects", "[checkpoint][errors]") {
  fs::path dir = scratch_dir("ckpt_all_or_nothing");
  const std::string path = (dir / "ckpt.h5").string();
  Run a(1);
  a.step();
  save_checkpoint(path, {.model = &a.lin, .optimizer = &a.opt, .step = 1});
  // An optimizer over other parameter names refuses the state: the model must be put back.
  Run b(2);
  Generator g(3);
  Linear other({.in_features = 3, .out_features = 2}, g, DType::Float64);
  optim::Adam wrong({{"w2", other.named_parameters()[0].second}});
  StateDict snapshot;
  for (const auto& [k, t] : b.lin.state_dict()) snapshot.add(k, t.clone());
  REQUIRE_THROWS_WITH(load_checkpoint(path, {.model = &b.lin, .optimizer = &wrong}), Contains("ckpt.h5: [Adam] load_state_dict"));
  REQUIRE(same(b.lin.state_dict(), snapshot));
  // A missing section or stream changes nothing either.
  REQUIRE_THROWS_WITH(load_checkpoint(path, {.model = &b.lin, .scheduler = &b.sched}), Contains("ckpt.h5: missing /scheduler"));
  REQUIRE_THROWS_WITH(load_checkpoint(path, {.model = &b.lin, .generators = {{"data", g}}}), Contains("ckpt.h5: missing /rng/data"));
  REQUIRE_THROWS_WITH(load_checkpoint(path, {.model = &b.lin, .extra = {"notes"}}), Contains("ckpt.h5: missing /extra/notes"));
  REQUIRE(same(b.lin.state_dict(), snapshot));
  const Linear& frozen = b.lin;
  REQUIRE_THROWS_AS(load_checkpoint(path, {.model = &frozen}), std::logic_error);
}

TEST_CASE("checkpoint save: bad input throws std::invalid_argument naming it", "[checkpoint][errors]") {
  fs::path dir = scratch_dir("ckpt_bad_save");
  const std::string path = (dir / "ckpt.h5").string();
  CheckpointData c = sample(1);
  c.step = -1;
  REQUIRE_THROWS_WITH(write_checkpoint(path, c), Contains("[save_checkpoint] step must be >= 0; got step=-1"));
  c = sample(1);
  c.metadata = "{not json";
  REQUIRE_THROWS_WITH(write_checkpoint(path, c), Contains("[save_checkpoint] metadata must be JSON text"));
  c = sample(1);
  c.generators.push_back({"a/b", {}});
  REQUIRE_THROWS_WITH(write_checkpoint(path, c), Contains("[save_checkpoint] generator name 'a/b'"));
  c = sample(1);
  c.model->add("bad..key", Tensor::scalar(1.0));
  REQUIRE_THROWS_WITH(write_checkpoint(path, c), Contains("[save_checkpoint] /model key 'bad..key' cannot be a dataset path"));
  c = sample(1);
  c.model->at("head.bias").data<double>()[2] = std::nan("");
  REQUIRE_THROWS_WITH(write_checkpoint(path, c), Contains("dataset /model/head/bias holds a non-finite value (nan) at element 2"));
  REQUIRE_FALSE(fs::exists(path));
  write_checkpoint(path, c, /*allow_nonfinite=*/true);
  REQUIRE_THROWS_WITH(read_checkpoint(path), Contains("ckpt.h5: dataset /model/head/bias holds a non-finite value (nan) at element 2"));
  REQUIRE(std::isnan(read_checkpoint(path, true).model->at("head.bias").data<double>()[2]));
}

TEST_CASE("checkpoint load: other versions, links, foreign storage and huge shapes are refused before reading data",
          "[checkpoint][errors]") {
  fs::path dir = scratch_dir("ckpt_hostile");
  const std::string path = write_sample(dir);
  auto variant = [&](const std::string& name) { return copy_of(path, name); };
  std::string v = variant("v1.h5");
  test::craft_int_attr(v, "/", "version", 1);
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("v1.h5: checkpoint version 1 is not supported; this tapegrad reads version 2"));
  v = variant("v3.h5");
  test::craft_int_attr(v, "/", "version", 3);
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("checkpoint version 3 is not supported"));
  v = variant("format.h5");
  test::craft_string_attr(v, "/", "format", "something-else");
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("format.h5: not a tapegrad checkpoint"));
  v = variant("external.h5");
  test::craft_external_storage(v, "/model/head/bias", "/etc/passwd", 32);
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("external.h5: dataset /model/head/bias: it has external raw storage"));
  const std::string source = (dir / "source.h5").string();
  test::craft_source_file(source, "/data", 5);
  v = variant("virtual.h5");
  test::craft_virtual(v, "/model/head/bias", source, "/data", 5);
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("virtual.h5: dataset /model/head/bias: it is a virtual dataset"));
  v = variant("soft.h5");
  test::craft_soft_link(v, "/model/head/bias", "/model/mask");
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("soft.h5: /model/head/bias is a soft link"));
  v = variant("elink.h5");
  test::craft_external_link(v, "/model/head/bias", source, "/data");
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("elink.h5: /model/head/bias is an external or user-defined link"));
  v = variant("huge.h5");
  test::craft_replace_dataset(v, "/model/head/bias", test::CraftType::f32, {1ULL << 31, 1ULL << 31}, /*huge=*/true);
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("huge.h5: dataset /model/head/bias: its shape has too many elements"));
  v = variant("large.h5");
  test::craft_replace_dataset(v, "/model/head/bias", test::CraftType::f32, {1ULL << 20, 1ULL << 20}, /*huge=*/true);
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("large.h5: dataset /model/head/bias: it declares 4398046511104 bytes of data "
                                                   "but the whole file has"));
  v = variant("unexpected.h5");
  test::craft_replace_dataset(v, "/notes", test::CraftType::f32, {2});
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("unexpected.h5: unexpected /notes"));
}

TEST_CASE("checkpoint load: edited, removed or retyped content is a digest error naming the dataset", "[checkpoint][errors]") {
  fs::path dir = scratch_dir("ckpt_digest");
  const std::string path = write_sample(dir);
  auto variant = [&](const std::string& name) { return copy_of(path, name); };
  std::string v = variant("metadata.h5");
  test::craft_string(v, "/metadata", R"({"n_layer": 5, "n_embd": 128, "name": "caf\u00e9"})");
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("metadata.h5: checksum mismatch in dataset /metadata"));
  REQUIRE_THROWS_WITH(read_checkpoint_metadata(v), Contains("checksum mismatch in dataset /metadata"));
  v = variant("vlen.h5");   // the global heap has no checksum, and a damaged one can hang HDF5: refused
  test::craft_string(v, "/metadata", sample(3).metadata, /*variable=*/true);
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("vlen.h5: cannot read string /metadata: it is a variable-length string"));
  v = variant("state.h5");
  test::craft_delete(v, "/optimizer/state/layers.0.self_attn.in_proj_weight/exp_avg");
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("state.h5: digest mismatch"));
  v = variant("rng.h5");
  test::craft_delete(v, "/rng/data");
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("rng.h5: digest mismatch"));
  v = variant("shape.h5");
  test::craft_replace_dataset(v, "/model/head/bias", test::CraftType::f64, {5, 1});
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("shape.h5: checksum mismatch in dataset /model/head/bias"));
  v = variant("dtype.h5");
  test::craft_replace_dataset(v, "/model/head/bias", test::CraftType::string, {5});
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("dtype.h5: cannot read dataset /model/head/bias"));
  v = variant("nodigest.h5");
  test::craft_delete_attr(v, "/model/mask", "digest");
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("nodigest.h5: dataset /model/mask has no digest attribute"));
  for (int64_t step : {int64_t{-1}, int64_t{4}, int64_t{1} << 62}) {
    v = variant("step.h5");
    test::craft_int_attr(v, "/", "step", step);
    REQUIRE_THROWS_WITH(read_checkpoint(v), Contains(step < 0 ? "step.h5: attribute /step is -1, expected >= 0" : "step.h5: digest mismatch"));
  }
  v = variant("missing.h5");
  test::craft_delete(v, "/metadata");
  REQUIRE_THROWS_WITH(read_checkpoint(v), Contains("missing.h5: missing /metadata"));
  REQUIRE_THROWS_WITH(read_checkpoint((dir / "absent.h5").string()), Contains("absent.h5"));
}

TEST_CASE("checkpoint load: weights tied in the model must be identical in the file", "[checkpoint][errors]") {
  fs::path dir = scratch_dir("ckpt_tied");
  const std::string path = (dir / "ckpt.h5").string();
  struct Tied : Module {
    Var a = register_parameter("a", Tensor::full({2, 2}, 1.0, DType::Float64));
    Var b = register_parameter("b", Tensor::full({2, 2}, 2.0, DType::Float64));
  };
  Tied m;
  m.set_parameter("b", m.a);   // b is a: tied
  CheckpointData c;
  c.model = StateDict{{"a", Tensor::full({2, 2}, 3.0, DType::Float64)}, {"b", Tensor::full({2, 2}, 4.0, DType::Float64)}};
  write_checkpoint(path, c);
  REQUIRE_THROWS_WITH(load_checkpoint(path, {.model = &m}),
                      Contains("ckpt.h5: datasets /model/a and /model/b hold weights that are tied in the model but differ in the file"));
  REQUIRE(m.a.value().data<double>()[0] == 1.0);
  c.model->at("b").data<double>()[0] = 3.0;
  c.model->at("b").fill_(3.0);
  write_checkpoint(path, c);
  load_checkpoint(path, {.model = &m});
  REQUIRE(m.a.value().data<double>()[3] == 3.0);
}

TEST_CASE("checkpoint save: stale temporary files of dead writers are removed, live ones kept", "[checkpoint]") {
  fs::path dir = scratch_dir("ckpt_stale");
  const std::string path = (dir / "ckpt.h5").string();
  // A pid that certainly is dead: a child that has exited and been reaped.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  int status = 0;
  waitpid(dead, &status, 0);
  const std::string stale = path + ".tmp." + std::to_string(dead);
  const std::string live = path + ".tmp." + std::to_string(getppid());
  const std::string unrelated = path + ".tmp.notapid";
  for (const std::string& f : {stale, live, unrelated}) std::ofstream(f) << "partial";
  REQUIRE(stale_temp_files(path) == std::vector<std::string>{stale});
  write_checkpoint(path, sample(1));
  REQUIRE_FALSE(fs::exists(stale));
  REQUIRE(fs::exists(live));
  REQUIRE(fs::exists(unrelated));
  REQUIRE(read_checkpoint(path) == sample(1));
}

TEST_CASE("checkpoint save: the checkpoint it replaces is never opened, so never read into memory", "[checkpoint]") {
  // HDF5's H5Fcreate first opens a file of the given name without truncating it; the in-memory file of
  // a save was created under the checkpoint's own name, so every save read the whole previous
  // checkpoint (its size in memory and IO, twice the memory at the moment a big model is saved).
  fs::path dir = scratch_dir("ckpt_not_reread");
  const std::string path = (dir / "ckpt.h5").string();
  write_checkpoint(path, sample(1));
  test::FileEvents events;
  const int wd = events.watch(dir, IN_OPEN | IN_ACCESS | IN_MODIFY);
  write_checkpoint(path, sample(2));   // writes ckpt.h5.tmp.<pid>, renames it over ckpt.h5
  // Before: IN_OPEN and IN_ACCESS of ckpt.h5 (a read of the whole file).
  CHECK(test::FileEvents::count(events.read_all(), wd, IN_OPEN | IN_ACCESS | IN_MODIFY, "ckpt.h5") == 0);
  REQUIRE(read_checkpoint(path) == sample(2));
}
