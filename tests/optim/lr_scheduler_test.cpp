// Learning-rate schedules (optim/lr_scheduler.h): bitwise parity with the sequences recorded by
// tests/fixtures/gen/lr_schedules.py (PyTorch StepLR / ConstantLR, nanoGPT's get_lr), option checks,
// state round trips.
#include <cmath>
#include <memory>

#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/optim/lr_scheduler.h"
#include "tapegrad/optim/sgd.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::optim;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

const std::string kFixture = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/lr_schedules.h5";

// An SGD optimizer with one scalar parameter per group, group g having lr base_lrs[g].
std::unique_ptr<SGD> optimizer_with(const std::vector<double>& base_lrs) {
  std::vector<ParamGroup<SGDOptions>> groups;
  for (size_t g = 0; g < base_lrs.size(); ++g) {
    std::string name = "p";
    name += std::to_string(g);   // (not "p" + to_string: GCC 12 -Wrestrict false positive)
    groups.push_back({{{name, Var(Tensor::zeros({1}, DType::Float64), true)}}, {.lr = base_lrs[g]}});
  }
  return std::make_unique<SGD>(std::move(groups));
}

std::unique_ptr<LRScheduler> scheduler_from(const io::H5File& f, const std::string& c, Optimizer& opt) {
  std::string kind = f.attr_string(c, "kind");
  if (kind == "StepLR")
    return std::make_unique<StepLR>(opt, StepLROptions{.step_size = f.attr_int(c, "step_size"),
                                                       .gamma = f.attr_double(c, "gamma")});
  if (kind == "ConstantLR")
    return std::make_unique<ConstantLR>(opt, ConstantLROptions{.factor = f.attr_double(c, "factor"),
                                                               .total_iters = f.attr_int(c, "total_iters")});
  REQUIRE(kind == "WarmupCosine");
  return std::make_unique<WarmupCosine>(opt, WarmupCosineOptions{.learning_rate = f.attr_double(c, "learning_rate"),
                                                                 .warmup_iters = f.attr_int(c, "warmup_iters"),
                                                                 .lr_decay_iters = f.attr_int(c, "lr_decay_iters"),
                                                                 .min_lr = f.attr_double(c, "min_lr")});
}

}  // namespace

TEST_CASE("lr schedules: StepLR, ConstantLR and WarmupCosine reproduce the recorded sequences bitwise",
          "[optim][parity]") {
  io::H5File f(kFixture, io::H5File::Mode::read);
  std::vector<std::string> cases = f.children("/");
  REQUIRE(cases.size() == 7);
  for (const std::string& c : cases) {
    INFO("case " << c);
    std::vector<double> base_lrs = f.read(c + "/base_lrs").to_vector();
    Tensor lrs = f.read(c + "/lrs");
    const int64_t steps = lrs.size(0) - 1, groups = lrs.size(1);
    REQUIRE(groups == static_cast<int64_t>(base_lrs.size()));
    auto opt = optimizer_with(base_lrs);
    auto sched = scheduler_from(f, c, *opt);
    CHECK(sched->base_lrs() == base_lrs);
    for (int64_t k = 0; k <= steps; ++k) {
      if (k > 0) {
        opt->step();
        sched->step();
      }
      CHECK(sched->last_step() == k);
      std::vector<double> last = sched->get_last_lr();
      for (int64_t g = 0; g < groups; ++g) {
        INFO("step " << k << ", group " << g);
        CHECK(opt->lr(static_cast<size_t>(g)) == lrs.at({k, g}));
        CHECK(sched->lr_at(k, static_cast<size_t>(g)) == lrs.at({k, g}));
        CHECK(last[static_cast<size_t>(g)] == lrs.at({k, g}));
      }
    }
  }
}

TEST_CASE("lr schedules: options are validated with the field named", "[optim][errors]") {
  auto opt = optimizer_with({0.1});
  REQUIRE_THROWS_WITH(StepLR(*opt, {.step_size = 0}), Contains("[StepLR] step_size must be >= 1; got step_size=0"));
  REQUIRE_THROWS_WITH(StepLR(*opt, {.step_size = 2, .gamma = -1}),
                      Contains("[StepLR] gamma must be finite and >= 0; got gamma=-1"));
  REQUIRE_THROWS_WITH(StepLR(*opt, {.step_size = 2, .gamma = NAN}), Contains("[StepLR] gamma must be finite"));
  REQUIRE_THROWS_WITH(ConstantLR(*opt, {.factor = 1.5}), Contains("[ConstantLR] factor must be in (0, 1]; got factor=1.5"));
  REQUIRE_THROWS_WITH(ConstantLR(*opt, {.factor = 0.0}), Contains("[ConstantLR] factor must be in (0, 1]; got factor=0"));
  REQUIRE_THROWS_WITH(ConstantLR(*opt, {.factor = 0.5, .total_iters = -1}),
                      Contains("[ConstantLR] total_iters must be >= 0; got total_iters=-1"));
  WarmupCosineOptions ok{.learning_rate = 1e-3, .warmup_iters = 10, .lr_decay_iters = 100, .min_lr = 1e-4};
  REQUIRE_NOTHROW(ok.validate());
  auto bad = ok;
  bad.learning_rate = -1;
  REQUIRE_THROWS_WITH(WarmupCosine(*opt, bad),
                      Contains("[WarmupCosine] learning_rate must be finite and >= 0; got learning_rate=-1"));
  bad = ok;
  bad.min_lr = NAN;
  REQUIRE_THROWS_WITH(WarmupCosine(*opt, bad), Contains("[WarmupCosine] min_lr must be finite and >= 0; got min_lr=nan"));
  bad = ok;
  bad.warmup_iters = -2;
  REQUIRE_THROWS_WITH(WarmupCosine(*opt, bad), Contains("[WarmupCosine] warmup_iters must be >= 0; got warmup_iters=-2"));
  bad = ok;
  bad.lr_decay_iters = 10;
  REQUIRE_THROWS_WITH(WarmupCosine(*opt, bad),
                      Contains("[WarmupCosine] lr_decay_iters must be > warmup_iters; got lr_decay_iters=10, warmup_iters=10"));
  CHECK(opt->lr(0) == 0.1);   // failed constructions leave the optimizer's lr alone
}

TEST_CASE("lr schedules: lr_at rejects a negative step or a missing group", "[optim][errors]") {
  auto opt = optimizer_with({0.1, 0.2});
  StepLR sched(*opt, {.step_size = 2});
  REQUIRE_THROWS_WITH(sched.lr_at(-1), Contains("[StepLR] step must be >= 0; got step=-1"));
  REQUIRE_THROWS_WITH(sched.lr_at(0, 2), Contains("[StepLR] group index out of range; got group=2 for 2 param groups"));
  CHECK(sched.lr_at(4, 1) == 0.2 * 0.1 * 0.1);
  CHECK(sched.options().step_size == 2);
}

TEST_CASE("lr schedules: ConstantLR with factor 1 is a constant schedule", "[optim]") {
  auto opt = optimizer_with({0.3});
  ConstantLR sched(*opt, {.factor = 1.0, .total_iters = 0});
  for (int k = 0; k < 5; ++k, sched.step()) CHECK(opt->lr(0) == 0.3);
  CHECK(ConstantLROptions{}.factor == 1.0 / 3);
  CHECK(ConstantLROptions{}.total_iters == 5);
  CHECK(sched.options().factor == 1.0);
}

TEST_CASE("lr schedules: the schedule overrides lrs written by others at its next step", "[optim]") {
  auto opt = optimizer_with({0.1});
  StepLR sched(*opt, {.step_size = 1, .gamma = 0.5});
  opt->set_lr(0, 7.0);
  sched.step();
  CHECK(opt->lr(0) == 0.05);
}

TEST_CASE("lr schedules: state round trip restores the position and writes the lrs", "[optim]") {
  auto opt = optimizer_with({0.1, 0.2});
  WarmupCosine src(*opt, {.learning_rate = 1e-2, .warmup_iters = 2, .lr_decay_iters = 9, .min_lr = 1e-3});
  for (int k = 0; k < 5; ++k) src.step();
  StateDict sd = src.state_dict();
  CHECK(sd.at("last_step").item() == 5.0);
  CHECK(sd.at("last_step").dtype() == DType::Int64);
  CHECK(sd.at("base_lrs").to_vector() == std::vector<double>{0.1, 0.2});
  CHECK(sd.at("warmup_iters").item() == 2.0);

  auto opt2 = optimizer_with({0.5, 0.5});
  WarmupCosine dst(*opt2, {.learning_rate = 1.0, .warmup_iters = 0, .lr_decay_iters = 3, .min_lr = 0.0});
  dst.load_state_dict(sd);
  CHECK(dst.last_step() == 5);
  CHECK(dst.base_lrs() == std::vector<double>{0.1, 0.2});
  CHECK(dst.options().lr_decay_iters == 9);
  CHECK(opt2->lr(0) == src.lr_at(5));
  CHECK(opt2->lr(1) == src.lr_at(5, 1));
  for (int k = 0; k < 6; ++k) {
    src.step();
    dst.step();
    CHECK(opt2->lr(0) == opt->lr(0));
  }

  StepLR step_src(*opt, {.step_size = 3, .gamma = 0.5});
  step_src.step();
  StepLR step_dst(*opt2, {.step_size = 1});
  step_dst.load_state_dict(step_src.state_dict());
  CHECK(step_dst.options().step_size == 3);
  CHECK(step_dst.options().gamma == 0.5);
  ConstantLR const_src(*opt, {.factor = 0.5, .total_iters = 2});
  ConstantLR const_dst(*opt2);
  const_dst.load_state_dict(const_src.state_dict());
  CHECK(const_dst.options().factor == 0.5);
  CHECK(const_dst.options().total_iters == 2);
}

TEST_CASE("lr schedules: load_state_dict rejects mismatched state and changes nothing", "[optim][errors]") {
  auto opt = optimizer_with({0.1, 0.2});
  StepLR sched(*opt, {.step_size = 2, .gamma = 0.5});
  StateDict good = sched.state_dict();
  auto one_group = optimizer_with({0.1});
  StepLR other(*one_group, {.step_size = 2});
  REQUIRE_THROWS_WITH(other.load_state_dict(good), Contains("[StepLR] load_state_dict: base_lrs has float64[2], expected float64[1]"));
  StateDict bad;
  for (const auto& [k, t] : good)
    bad.add(k, k == "gamma" ? Tensor::scalar(-2.0, DType::Float64) : t);
  REQUIRE_THROWS_WITH(sched.load_state_dict(bad), Contains("[StepLR] gamma must be finite and >= 0; got gamma=-2"));
  bad = StateDict{};
  for (const auto& [k, t] : good)
    if (k != "step_size") bad.add(k, t);
  REQUIRE_THROWS_WITH(sched.load_state_dict(bad), Contains("[StepLR] load_state_dict: missing key step_size"));
  bad = StateDict{};
  for (const auto& [k, t] : good)
    bad.add(k, k == "last_step" ? detail::scalar_i64(-1) : t);
  REQUIRE_THROWS_WITH(sched.load_state_dict(bad), Contains("[StepLR] load_state_dict: last_step must be >= 0; got last_step=-1"));
  bad = StateDict{};
  for (const auto& [k, t] : good)
    bad.add(k, k == "base_lrs" ? Tensor::from_vector(std::vector<double>{0.1, -0.2}, {2}) : t);
  REQUIRE_THROWS_WITH(sched.load_state_dict(bad), Contains("[StepLR] load_state_dict: base_lrs must be finite and >= 0; got -0.2"));
  CHECK(other.last_step() == 0);
  CHECK(sched.options().gamma == 0.5);
  CHECK(sched.base_lrs() == std::vector<double>{0.1, 0.2});
}
