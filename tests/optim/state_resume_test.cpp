// Checkpoint/resume: state_dict() -> load_state_dict() into fresh optimizers and schedulers (built with other
// options) continues bit-identically to an uninterrupted run, in memory and through an HDF5 file.
#include <cstdio>
#include <memory>

#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/lr_scheduler.h"
#include "tapegrad/optim/sgd.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::optim;
using namespace tg::test;

namespace {

constexpr int kSteps = 10, kSplit = 4;
enum class Kind { sgd_steplr, adam_constantlr, adamw_warmup_cosine };

struct Run {
  Var w, b;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<LRScheduler> sched;
};

// `alt` builds the same structure with different options, which load_state_dict must overwrite.
Run make_run(Kind kind, const Tensor& w0, const Tensor& b0, bool alt) {
  Run r{Var(w0.clone(), true), Var(b0.clone(), true), nullptr, nullptr};
  const double s = alt ? 3.0 : 1.0;
  if (kind == Kind::sgd_steplr) {
    r.opt = std::make_unique<SGD>(std::vector<ParamGroup<SGDOptions>>{
        {{{"layer.weight", r.w}}, {.lr = 0.1 * s, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true}},
        {{{"layer.bias", r.b}}, {.lr = 0.05 * s, .momentum = 0.5, .dampening = 0.2}}});
    r.sched = std::make_unique<StepLR>(*r.opt, StepLROptions{.step_size = alt ? 5 : 2, .gamma = 0.7});
  } else if (kind == Kind::adam_constantlr) {
    r.opt = std::make_unique<Adam>(NamedParams{{"layer.weight", r.w}, {"layer.bias", r.b}},
                                   AdamOptions{.lr = 0.01 * s, .weight_decay = 0.1, .amsgrad = !alt});
    r.sched = std::make_unique<ConstantLR>(*r.opt, ConstantLROptions{.factor = alt ? 0.9 : 0.5, .total_iters = 6});
  } else {
    r.opt = std::make_unique<AdamW>(std::vector<ParamGroup<AdamWOptions>>{
        {{{"layer.weight", r.w}}, {.lr = 0.01, .betas = {0.8, 0.95}, .weight_decay = 0.1 * s}},
        {{{"layer.bias", r.b}}, {.lr = 0.01, .betas = {0.8, 0.95}, .weight_decay = 0.0}}});
    r.sched = std::make_unique<WarmupCosine>(
        *r.opt, WarmupCosineOptions{.learning_rate = 0.01 * s, .warmup_iters = 2, .lr_decay_iters = 8, .min_lr = 1e-3});
  }
  return r;
}

// Step k of a fixed grad sequence; the bias has no grad at step 5 (its Adam step count falls behind).
void train_step(Run& r, int k) {
  r.w.set_grad(rand_tensor(r.w.shape(), 100 + k, -1, 1, r.w.dtype()));
  if (k == 5) r.b.zero_grad();
  else r.b.set_grad(rand_tensor(r.b.shape(), 200 + k, -1, 1, r.b.dtype()));
  r.opt->step();
  r.sched->step();
}

void write_state(io::H5File& f, const std::string& group, const StateDict& sd) {
  for (const auto& [key, t] : sd) f.write(group + "/" + key, t);
}

void read_state(const io::H5File& f, const std::string& path, const std::string& key, StateDict& out) {
  for (const std::string& child : f.children(path)) {
    std::string p = path + "/" + child, k = key.empty() ? child : key + "/" + child;
    if (f.is_group(p)) read_state(f, p, k, out);
    else out.add(k, f.read(p));
  }
}

bool same_state(const StateDict& a, const StateDict& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, t] : a)
    if (!b.contains(k) || !b.at(k).bit_equal(t)) return false;
  return true;
}

void check_resume(Kind kind, DType dtype, bool through_file) {
  Tensor w0 = rand_tensor({3, 4}, 1, -1, 1, dtype), b0 = rand_tensor({4}, 2, -1, 1, dtype);
  Run full = make_run(kind, w0, b0, false);
  for (int k = 0; k < kSteps; ++k) train_step(full, k);

  Run first = make_run(kind, w0, b0, false);
  for (int k = 0; k < kSplit; ++k) train_step(first, k);
  StateDict opt_state = first.opt->state_dict(), sched_state = first.sched->state_dict();
  if (through_file) {
    // One file per (kind, dtype): CTest may run the cases of this file in parallel processes.
    const std::string path = std::string(TAPEGRAD_BINARY_DIR) + "/optim_state_resume_test_" +
                             std::to_string(static_cast<int>(kind)) + "_" + to_string(dtype) + ".h5";
    {
      io::H5File f(path, io::H5File::Mode::truncate);
      write_state(f, "optimizer", opt_state);
      write_state(f, "scheduler", sched_state);
    }
    io::H5File f(path, io::H5File::Mode::read);
    opt_state = StateDict{};
    sched_state = StateDict{};
    read_state(f, "optimizer", "", opt_state);
    read_state(f, "scheduler", "", sched_state);
    std::remove(path.c_str());
  }
  // The checkpoint writer saves the parameters themselves; the resumed run starts from them.
  Run resumed = make_run(kind, first.w.value(), first.b.value(), true);
  resumed.opt->load_state_dict(opt_state);
  resumed.sched->load_state_dict(sched_state);
  for (int k = kSplit; k < kSteps; ++k) train_step(resumed, k);

  CHECK(resumed.w.value().bit_equal(full.w.value()));
  CHECK(resumed.b.value().bit_equal(full.b.value()));
  CHECK(same_state(resumed.opt->state_dict(), full.opt->state_dict()));
  CHECK(same_state(resumed.sched->state_dict(), full.sched->state_dict()));
  // Without the state the continuation differs (so the checks above can fail).
  Run cold = make_run(kind, first.w.value(), first.b.value(), false);
  for (int k = kSplit; k < kSteps; ++k) train_step(cold, k);
  CHECK_FALSE(cold.w.value().bit_equal(full.w.value()));
}

}  // namespace

TEST_CASE("resume: SGD + StepLR continue bit-identically after load_state_dict", "[optim][checkpoint]") {
  check_resume(Kind::sgd_steplr, DType::Float64, false);
  check_resume(Kind::sgd_steplr, DType::Float32, true);
}

TEST_CASE("resume: Adam + ConstantLR continue bit-identically after load_state_dict", "[optim][checkpoint]") {
  check_resume(Kind::adam_constantlr, DType::Float64, false);
  check_resume(Kind::adam_constantlr, DType::Float32, true);
}

TEST_CASE("resume: AdamW + WarmupCosine continue bit-identically after load_state_dict (also via HDF5)",
          "[optim][checkpoint]") {
  check_resume(Kind::adamw_warmup_cosine, DType::Float64, false);
  check_resume(Kind::adamw_warmup_cosine, DType::Float64, true);
  check_resume(Kind::adamw_warmup_cosine, DType::Float32, true);
}

TEST_CASE("resume: the Adam step count round-trips exactly beyond float precision", "[optim][checkpoint]") {
  Var w = rand_var({2}, 1);
  Adam src({{"w", w}});
  w.set_grad(rand_tensor({2}, 2));
  src.step();
  StateDict sd = src.state_dict();
  const int64_t big = (int64_t{1} << 53) + 1;   // not representable in float64 (PyTorch keeps a float32)
  for (auto& [k, t] : sd)
    if (k == "state/w/step") t = detail::scalar_i64(big);
  Adam dst({{"w", w}});
  dst.load_state_dict(sd);
  CHECK(dst.state_dict().at("state/w/step").data<int64_t>()[0] == big);
  dst.step();
  CHECK(dst.param_state("w")->find("step")->data<int64_t>()[0] == big + 1);
}
