// A program written as a tapegrad user would write it: one include, a small model of tapegrad layers
// trained with AdamW. Exit code 0 only if the version macros are consistent and training lowered the
// loss to less than half of its start.
#include <tapegrad/tapegrad.h>

#include <cstdio>
#include <memory>
#include <string>

static_assert(TAPEGRAD_VERSION_MAJOR == 0 && TAPEGRAD_VERSION_MINOR == 2);   // as the README shows

namespace {

// x [B, T, E] -> self-attention -> mean over T -> Linear -> [B, 1]
class Regressor : public tg::Module {
 public:
  Regressor(int64_t embed_dim, tg::Generator& gen) {
    attn_ = register_module("attn", std::make_shared<tg::MultiheadAttention>(
                                        tg::MultiheadAttentionOptions{.embed_dim = embed_dim, .num_heads = 2,
                                                                      .batch_first = true},
                                        gen));
    head_ = register_module("head", std::make_shared<tg::Linear>(
                                        tg::LinearOptions{.in_features = embed_dim, .out_features = 1}, gen));
  }
  tg::Var forward(const tg::Var& x) const {
    tg::Var h = attn_->forward(x, x, x, tg::Var(), /*need_weights=*/false).attn_output;   // [B, T, E]
    return head_->forward(tg::mean(h, {1}));                                            // [B, E] -> [B, 1]
  }

 private:
  std::shared_ptr<tg::MultiheadAttention> attn_;
  std::shared_ptr<tg::Linear> head_;
};

bool version_is_consistent() {
  const std::string pieces = std::to_string(TAPEGRAD_VERSION_MAJOR) + "." + std::to_string(TAPEGRAD_VERSION_MINOR) +
                             "." + std::to_string(TAPEGRAD_VERSION_PATCH);
  const std::string info = tg::runtime_info();
  std::printf("%s\n", info.c_str());
  bool ok = pieces == TAPEGRAD_VERSION_STRING && TAPEGRAD_VERSION_MAJOR == 0 && TAPEGRAD_VERSION_MINOR == 2 &&
            info.rfind(std::string("tapegrad ") + TAPEGRAD_VERSION_STRING + " ", 0) == 0;
#ifdef TAPEGRAD_EXPECTED_VERSION
  ok = ok && std::string(TAPEGRAD_EXPECTED_VERSION) == TAPEGRAD_VERSION_STRING;   // the package's own version
#endif
  std::printf("TAPEGRAD_VERSION_STRING %s: %s\n", TAPEGRAD_VERSION_STRING, ok ? "consistent" : "INCONSISTENT");
  return ok;
}

}  // namespace

int main() {
  if (!version_is_consistent()) return 1;
#if TAPEGRAD_HAS_MPI
  // tapegrad::distributed links, with its MPI dependency (MPI itself starts only with a tg::dist::Environment).
  std::printf("tapegrad::distributed: started by mpirun: %s\n", tg::dist::launched_by_mpi() ? "yes" : "no");
#endif
  tg::set_num_threads(2);
  const int64_t B = 16, T = 5, E = 8;
  tg::Generator gen(2024);
  Regressor model(E, gen);
  // Target: the mean over time of the first feature, a function the model can learn.
  tg::Var x(tg::Tensor::normal({B, T, E}, 0, 1, gen));
  tg::Tensor target = tg::Tensor::zeros({B, 1});
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t t = 0; t < T; ++t) s += x.value().at({b, t, 0});
    target.set({b, 0}, s / T);
  }
  tg::optim::AdamW opt(model.named_parameters(), {.lr = 1e-2, .weight_decay = 0.0});
  double first = 0, last = 0;
  const int steps = 60;
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    tg::Var diff = model.forward(x) - tg::Var(target);
    tg::Var loss = tg::mean(diff * diff);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  const bool learned = last < 0.5 * first;
  std::printf("consumer: %lld parameters, MSE %.6f -> %.6f after %d AdamW steps: %s\n",
              static_cast<long long>(tg::parameter_count(model)), first, last, steps, learned ? "learned" : "DID NOT LEARN");
  return learned ? 0 : 1;
}
