#include "examples/seq2seq/training_state.h"

#include <nlohmann/json.hpp>

#include "examples/common/resume_settings.h"
#include "tapegrad/framework/io/checkpoint.h"
#include "tapegrad/optim/clip_grad.h"

namespace tg::seq2seq {
namespace {

std::vector<optim::ParamGroup<optim::AdamWOptions>> decay_groups(const Seq2Seq& model, const TrainOptions& o) {
  optim::AdamWOptions base{.lr = o.lr, .betas = {o.beta1, o.beta2}, .eps = 1e-8, .weight_decay = o.weight_decay};
  optim::ParamGroup<optim::AdamWOptions> decay{{}, base}, no_decay{{}, base};
  no_decay.options.weight_decay = 0.0;   // matrices decay; biases, norms and nothing else do not
  for (const auto& [name, p] : model.named_parameters()) (p.dim() >= 2 ? decay : no_decay).params.emplace_back(name, p);
  return {decay, no_decay};
}

// The training run's settings that an exact resume depends on besides the model configuration.
nlohmann::json run_settings(const TrainOptions& o) {
  return {{"batch_size", o.batch_size}, {"label_smoothing", o.label_smoothing}, {"seed", std::to_string(o.seed)},
          {"eval_interval", o.eval_interval}, {"eval_examples", o.eval_examples}};
}

// The flags a resume must keep, by flag name: the optimizer's and the schedule's, which their
// load_state_dict restores from the checkpoint (as PyTorch's do), and --grad-clip.
nlohmann::json resume_settings(const TrainOptions& o) {
  return {{"--lr", o.lr}, {"--min-lr", o.min_lr}, {"--warmup-iters", o.warmup_iters},
          {"--weight-decay", o.weight_decay}, {"--beta1", o.beta1}, {"--beta2", o.beta2}, {"--grad-clip", o.grad_clip}};
}

std::string metadata_of(const Seq2SeqConfig& c, const TrainOptions& o) {
  return nlohmann::json{{"seq2seq", {{"task", "dates-to-iso-v1"}, {"config", nlohmann::json::parse(config_to_json(c))},
                                     {"train", run_settings(o)}, {"resume_settings", resume_settings(o)}}}}
      .dump();
}

StateDict log_state(double loss_sum, int64_t loss_count) {
  return {{"loss_sum", Tensor::full({}, loss_sum, DType::Float64)},
          {"loss_count", Tensor::full({}, static_cast<double>(loss_count), DType::Int64)}};
}

}  // namespace

TrainingState::TrainingState(const TrainOptions& o)
    : options(o), config(o.model_config()), model_gen(o.seed), model(config, model_gen),
      optimizer(decay_groups(model, o)),
      scheduler(optimizer, {.learning_rate = o.lr, .warmup_iters = o.warmup_iters, .lr_decay_iters = o.max_iters,
                            .min_lr = o.min_lr}),
      data_gen(o.seed + 1) {}

double TrainingState::train_step() {
  std::vector<Example> examples;
  for (int64_t i = 0; i < options.batch_size; ++i) examples.push_back(draw_train_example(data_gen));
  return train_step(make_batch(examples));
}

double TrainingState::train_step(const Batch& b) {
  Var loss = model.loss(b.src, b.src_pad, b.tgt_in, b.tgt_out, b.tgt_pad, options.label_smoothing);
  optimizer.zero_grad();
  loss.backward();
  if (options.grad_clip > 0) optim::clip_grad_norm_(model.named_parameters(), options.grad_clip);
  optimizer.step();
  scheduler.step();
  return loss.item();
}

void TrainingState::save(const std::string& path) const {
  io::save_checkpoint(path, {.model = &model, .optimizer = &optimizer, .scheduler = &scheduler,
                             .generators = {{"model", model_gen}, {"train_data", data_gen}},
                             .metadata = metadata_of(config, options), .step = step,
                             .extra = {{"log", log_state(loss_sum, loss_count)}}});
}

void TrainingState::load(const std::string& path) {
  const io::CheckpointData c = io::read_checkpoint(path);   // read once: what is checked is what is restored
  nlohmann::json stored = nlohmann::json::parse(c.metadata);
  nlohmann::json mine = nlohmann::json::parse(metadata_of(config, options));
  if (stored.contains("seq2seq") && stored["seq2seq"].contains("resume_settings")) {
    examples::require_resume_settings(stored["seq2seq"]["resume_settings"], mine["seq2seq"]["resume_settings"],
                                      path);
    stored["seq2seq"].erase("resume_settings");
  }
  mine["seq2seq"].erase("resume_settings");
  if (!stored.contains("seq2seq") || stored["seq2seq"] != mine["seq2seq"])
    throw std::runtime_error(path + ": /metadata " + stored.dump() + " differs from this run's " + mine.dump() +
                             " (another model configuration or run settings)");
  io::CheckpointInfo info = io::load_checkpoint(
      c, {.model = &model, .optimizer = &optimizer, .scheduler = &scheduler,
          .generators = {{"model", model_gen}, {"train_data", data_gen}}, .extra = {"log"}},
      path);
  const StateDict& log = info.extra_section("log");
  if (!log.contains("loss_sum") || !log.contains("loss_count"))
    throw std::runtime_error(path + ": missing dataset /extra/log/loss_sum or /extra/log/loss_count");
  loss_sum = log.at("loss_sum").item();
  loss_count = static_cast<int64_t>(log.at("loss_count").item());
  step = info.step;
}

}  // namespace tg::seq2seq
