#include "examples/tiny_lm/checkpointing.h"

#include <cstdio>
#include <utility>

#include <nlohmann/json.hpp>

#include "examples/common/resume_settings.h"
#include "examples/tiny_lm/limits.h"
#include "examples/tiny_lm/train.h"
#include "tapegrad/framework/io/checkpoint.h"

namespace tg::tiny_lm {
namespace {

std::vector<optim::ParamGroup<optim::AdamWOptions>> decay_groups(const TinyLM& model, const TrainOptions& o) {
  optim::AdamWOptions base{.lr = o.lr, .betas = {o.beta1, o.beta2}, .eps = 1e-8, .weight_decay = o.weight_decay};
  optim::ParamGroup<optim::AdamWOptions> decay{{}, base}, no_decay{{}, base};
  no_decay.options.weight_decay = 0.0;   // nanoGPT: decay matrices only, not biases and norms
  for (const auto& [name, p] : model.named_parameters()) (p.dim() >= 2 ? decay : no_decay).params.emplace_back(name, p);
  return {decay, no_decay};
}

TinyLM& initialised(TinyLM& m, Generator& gen) {
  m.init_weights(gen);
  return m;
}

// The extra section "data": the corpus sizes and batch shape the samplers' streams belong to (with the
// micro-batches per iteration, K = --grad-accum x processes), and the vocabulary as byte values (any bytes, which JSON text could not carry).
StateDict data_state(const Corpus& corpus, int64_t batch, int64_t block, int64_t micro_batches) {
  auto scalar = [](int64_t v) { return Tensor::full({}, static_cast<double>(v), DType::Int64); };
  std::vector<int64_t> bytes;
  for (unsigned char ch : corpus.vocab.chars()) bytes.push_back(ch);
  return {{"train_tokens", scalar(static_cast<int64_t>(corpus.train.size()))},
          {"val_tokens", scalar(static_cast<int64_t>(corpus.val.size()))},
          {"batch_size", scalar(batch)},
          {"block_size", scalar(block)},
          {"micro_batches", scalar(micro_batches)},
          {"vocabulary", Tensor::from_vector(bytes, {static_cast<int64_t>(bytes.size())})}};
}

std::string vocabulary_of(const StateDict& data, const std::string& path) {
  const Tensor& v = data.at("vocabulary");
  if (v.dtype() != DType::Int64 || v.dim() != 1)
    throw std::runtime_error(path + ": dataset /extra/data/vocabulary is not int64[V]");
  std::string chars;
  for (int64_t i = 0; i < v.numel(); ++i) {
    const int64_t b = v.data<int64_t>()[i];
    if (b < 0 || b > 255) throw std::runtime_error(path + ": dataset /extra/data/vocabulary holds " + std::to_string(b) + ", not a byte");
    chars += static_cast<char>(b);
  }
  return chars;
}

// The micro-batches per iteration a checkpoint was written with (1 when it predates --grad-accum) must be
// this run's: another K draws other batches and dropout streams, so the run would not be the one saved.
void check_micro_batches(const StateDict& data, const std::string& path, int64_t k, int processes) {
  int64_t stored = 1;
  if (data.contains("micro_batches")) {
    const Tensor& t = data.at("micro_batches");
    if (t.dtype() != DType::Int64 || t.dim() != 0)
      throw std::runtime_error(path + ": dataset /extra/data/micro_batches is not an int64 scalar");
    stored = t.data<int64_t>()[0];
  }
  if (stored == k) return;
  throw std::runtime_error(path + ": written by a run of " + std::to_string(stored) +
                           " micro-batches per iteration (--grad-accum x processes) but this run has " +
                           std::to_string(k) + " (--grad-accum " + std::to_string(k / processes) + " x " +
                           std::to_string(processes) + (processes == 1 ? " process" : " processes") +
                           "); resume with the same product, e.g. --grad-accum " + std::to_string(stored) +
                           " alone or mpirun -np " + std::to_string(stored) + " with --grad-accum 1");
}

// The metadata: {"tiny_lm": {"config": {...}, "precision": "f32", "resume_settings": {...}}}.
std::string metadata_of(const TinyLMConfig& c, Precision precision, const std::string& resume_settings) {
  return nlohmann::json{{"tiny_lm", {{"config", nlohmann::json::parse(config_to_json(c))},
                                     {"precision", to_string(precision)},
                                     {"resume_settings", nlohmann::json::parse(resume_settings)}}}}.dump();
}

// The flags a resume must keep, by flag name: the optimizer's and the schedule's, which their
// load_state_dict restores from the checkpoint (as PyTorch's do), and --grad-clip, so that a resumed run
// is the one saved.
std::string resume_settings_of(const TrainOptions& o) {
  return nlohmann::json{{"--lr", o.lr}, {"--min-lr", o.min_lr}, {"--warmup-iters", o.warmup_iters},
                        {"--lr-decay-iters", o.lr_decay_iters}, {"--weight-decay", o.weight_decay},
                        {"--beta1", o.beta1}, {"--beta2", o.beta2}, {"--grad-clip", o.grad_clip}}
      .dump();
}

// The checkpoint's stored flags against this run's (require_resume_settings); a checkpoint written
// before the settings were stored is not checked.
void check_resume_settings(const std::string& metadata, const std::string& mine, const std::string& path) {
  const nlohmann::json all = nlohmann::json::parse(metadata);
  if (!all.contains("tiny_lm") || !all["tiny_lm"].contains("resume_settings")) return;
  examples::require_resume_settings(all["tiny_lm"]["resume_settings"], nlohmann::json::parse(mine), path);
}

// The stored training precision; "f32" for checkpoints written before it was stored.
std::string precision_of(const std::string& metadata, const std::string& path) {
  try {
    const nlohmann::json j = nlohmann::json::parse(metadata).at("tiny_lm");
    return j.contains("precision") ? j.at("precision").get<std::string>() : "f32";
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": /metadata tiny_lm precision is not a string: " + e.what());
  }
}

std::string config_json_of(const std::string& metadata, const std::string& path) {
  try {
    return nlohmann::json::parse(metadata).at("tiny_lm").at("config").dump();
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": /metadata has no tiny_lm configuration: " + e.what());
  }
}

// A count that may exceed int64 (parameter_count of a crafted configuration), printed as an integer.
std::string count_text(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

}  // namespace

std::string config_to_json(const TinyLMConfig& c) {
  nlohmann::json j{{"vocab_size", c.vocab_size}, {"block_size", c.block_size}, {"n_layer", c.n_layer},
                   {"n_head", c.n_head}, {"n_embd", c.n_embd}, {"dim_feedforward", c.ff()}, {"dropout", c.dropout},
                   {"activation", c.activation == Activation::gelu ? "gelu" : "relu"},
                   {"layer_norm_eps", c.layer_norm_eps}, {"norm_first", c.norm_first}, {"head_bias", c.head_bias},
                   {"tie_weights", c.tie_weights}};
  return j.dump();
}

TinyLMConfig config_from_json(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text);
  return {.vocab_size = j.at("vocab_size"), .block_size = j.at("block_size"), .n_layer = j.at("n_layer"),
          .n_head = j.at("n_head"), .n_embd = j.at("n_embd"), .dim_feedforward = j.at("dim_feedforward"),
          .dropout = j.at("dropout"), .activation = parse_activation(j.at("activation").get<std::string>()),
          .layer_norm_eps = j.at("layer_norm_eps"), .norm_first = j.at("norm_first"), .head_bias = j.at("head_bias"),
          .tie_weights = j.at("tie_weights")};
}

TrainingState::TrainingState(const TinyLMConfig& c, const TrainOptions& o, const Corpus& data, Processes ps)
    : config(c), precision(o.precision), corpus(data), batch_size(o.batch_size), block_size(o.block_size),
      model_gen(o.seed), model(c, model_gen), optimizer(decay_groups(initialised(model, model_gen), o)),
      scheduler(optimizer, {.learning_rate = o.lr, .warmup_iters = o.warmup_iters, .lr_decay_iters = o.lr_decay_iters,
                            .min_lr = o.min_lr}),
      train_batches(&data.train, o.batch_size, o.block_size, o.seed + 1),
      eval_train(&data.train, o.batch_size, o.block_size, o.seed + 2),
      eval_val(&data.val, o.batch_size, o.block_size, o.seed + 3), processes(std::move(ps)),
      micro_batches(o.grad_accum * processes.size()), resume_settings(resume_settings_of(o)) {}

void TrainingState::save(const std::string& path) const {
  io::save_checkpoint(path, {.model = &model, .optimizer = &optimizer, .scheduler = &scheduler,
                             .generators = {{"model", model_gen}, {"train_batches", train_batches.generator()},
                                            {"eval_train", eval_train.generator()}, {"eval_val", eval_val.generator()}},
                             .metadata = metadata_of(config, precision, resume_settings), .step = step,
                             .extra = {{"data", data_state(corpus, batch_size, block_size, micro_batches)}}});
}

void TrainingState::load(const std::string& path) {
  // Check that the file belongs to this run before anything changes.
  const io::CheckpointData c = io::read_checkpoint(path);
  const std::string stored = config_json_of(c.metadata, path);
  if (stored != config_to_json(config))
    throw std::runtime_error(path + ": /metadata config " + stored + " differs from this run's model " + config_to_json(config));
  if (const std::string p = precision_of(c.metadata, path); p != to_string(precision))
    throw std::runtime_error(path + ": /metadata precision " + p + " differs from this run's --precision " +
                             to_string(precision));
  check_resume_settings(c.metadata, resume_settings, path);
  const StateDict* data = nullptr;
  for (const auto& [name, sd] : c.extra)
    if (name == "data") data = &sd;
  if (!data) throw std::runtime_error(path + ": missing /extra/data");
  const StateDict expected = data_state(corpus, batch_size, block_size, micro_batches);
  for (const auto& [name, t] : expected) {
    if (name == "micro_batches") {
      check_micro_batches(*data, path, micro_batches, processes.size());
      continue;
    }
    if (!data->contains(name)) throw std::runtime_error(path + ": missing dataset /extra/data/" + name);
    if (name == "vocabulary") {
      if (vocabulary_of(*data, path) != corpus.vocab.chars())
        throw std::runtime_error(path + ": /extra/data/vocabulary differs from the data's vocabulary (another corpus?)");
    } else if (!data->at(name).bit_equal(t)) {
      const Tensor& got = data->at(name);
      const bool scalar = got.dtype() == DType::Int64 && got.dim() == 0;
      throw std::runtime_error(path + ": dataset /extra/data/" + name + " is " +
                               (scalar ? std::to_string(got.data<int64_t>()[0]) : describe(got)) + " but this run has " +
                               std::to_string(static_cast<int64_t>(t.item())));
    }
  }
  io::CheckpointInfo info = io::load_checkpoint(   // from the content just checked: the file is read once
      c, {.model = &model, .optimizer = &optimizer, .scheduler = &scheduler,
             .generators = {{"model", model_gen}, {"train_batches", train_batches.generator()},
                            {"eval_train", eval_train.generator()}, {"eval_val", eval_val.generator()}},
             .extra = {"data"}},
      path);
  step = info.step;
}

std::unique_ptr<TinyLM> load_model(const std::string& path, Vocabulary* vocab) {
  const io::CheckpointData c = io::read_checkpoint(path);
  TinyLMConfig config;
  try {
    config = config_from_json(config_json_of(c.metadata, path));
  } catch (const std::runtime_error&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": /metadata is not a tiny_lm configuration: " + e.what());
  }
  if (!c.model) throw std::runtime_error(path + ": missing /model");
  const StateDict* data = nullptr;
  for (const auto& [name, sd] : c.extra)
    if (name == "data") data = &sd;
  if (!data || !data->contains("vocabulary")) throw std::runtime_error(path + ": missing dataset /extra/data/vocabulary");
  // Limits before anything is built: the configuration's own bounds (TinyLMConfig::validate), and no more
  // parameters than the file holds (a crafted /metadata cannot make us build a model larger than the file).
  try {
    config.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": /metadata holds an invalid tiny_lm configuration: " + e.what());
  }
  double stored = 0;
  for (const auto& [name, t] : *c.model) stored += static_cast<double>(t.numel());
  if (parameter_count(config) > stored)
    throw std::runtime_error(path + ": /metadata describes a model of " + count_text(parameter_count(config)) +
                             " parameters but /model holds " + count_text(stored) + " values");
  auto model = std::make_unique<TinyLM>(config, Generator(0));   // initial values are overwritten below
  try {
    model->load_state_dict(*c.model);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  model->eval();
  *vocab = Vocabulary::from_text(vocabulary_of(*data, path));
  if (vocab->size() != config.vocab_size)
    throw std::runtime_error(path + ": /extra/data/vocabulary has " + std::to_string(vocab->size()) +
                             " characters but the configuration says " + std::to_string(config.vocab_size));
  return model;
}

}  // namespace tg::tiny_lm
