#include "examples/tiny_lm/checkpointing.h"

#include <nlohmann/json.hpp>

#include "examples/tiny_lm/train.h"
#include "tapegrad/framework/io/checkpoint.h"
#include "tapegrad/optim/clip_grad.h"

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

io::NamedTensors data_state(int64_t train_tokens, int64_t val_tokens, int64_t batch, int64_t block) {
  auto scalar = [](int64_t v) { return Tensor::full({}, static_cast<double>(v), DType::Int64); };
  return {{"train_tokens", scalar(train_tokens)}, {"val_tokens", scalar(val_tokens)}, {"batch_size", scalar(batch)},
          {"block_size", scalar(block)}};
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

TrainingState::TrainingState(const TinyLMConfig& c, const TrainOptions& o, const Corpus& data)
    : config(c), corpus(data), batch_size(o.batch_size), block_size(o.block_size), model_gen(o.seed),
      model(c, model_gen), optimizer(decay_groups(initialised(model, model_gen), o)),
      scheduler(optimizer, {.learning_rate = o.lr, .warmup_iters = o.warmup_iters, .lr_decay_iters = o.lr_decay_iters,
                            .min_lr = o.min_lr}),
      train_batches(&data.train, o.batch_size, o.block_size, o.seed + 1),
      eval_train(&data.train, o.batch_size, o.block_size, o.seed + 2),
      eval_val(&data.val, o.batch_size, o.block_size, o.seed + 3) {}

double TrainingState::train_step(const Tensor& x, const Tensor& y, double grad_clip) {
  Var loss = model.loss(x, y);
  optimizer.zero_grad();
  loss.backward();
  if (grad_clip > 0) optim::clip_grad_norm_(model.named_parameters(), grad_clip);
  optimizer.step();
  scheduler.step();
  return loss.item();
}

void TrainingState::save(const std::string& path) const {
  io::Checkpoint c;
  c.model = model.state_dict();
  c.optimizer = optimizer.state().tensors;
  c.scheduler = scheduler.state().tensors;
  c.data = data_state(static_cast<int64_t>(corpus.train.size()), static_cast<int64_t>(corpus.val.size()), batch_size,
                      block_size);
  c.generators = {{"model", model_gen.state()},
                  {"train_batches", train_batches.generator().state()},
                  {"eval_train", eval_train.generator().state()},
                  {"eval_val", eval_val.generator().state()}};
  c.step = step;
  c.config = config_to_json(config);
  c.vocabulary = corpus.vocab.chars();
  io::save_checkpoint(path, c);
}

void TrainingState::load(const std::string& path) {
  io::Checkpoint c = io::load_checkpoint(path);
  if (c.vocabulary != corpus.vocab.chars())
    throw std::runtime_error(path + ": /vocabulary differs from the data's vocabulary (another corpus?)");
  if (c.config != config_to_json(config))
    throw std::runtime_error(path + ": /config " + c.config + " differs from this run's model " + config_to_json(config));
  io::NamedTensors expected = data_state(static_cast<int64_t>(corpus.train.size()), static_cast<int64_t>(corpus.val.size()),
                                         batch_size, block_size);
  for (const auto& [name, t] : expected) {
    const Tensor& got = io::find_entry(c.data, name, path, "data");
    if (!got.bit_equal(t))
      throw std::runtime_error(path + ": /data/" + name + " is " + std::to_string(static_cast<int64_t>(got.item())) +
                               " but this run has " + std::to_string(static_cast<int64_t>(t.item())));
  }
  try {
    model.load_state_dict(c.model);
    optimizer.load_state({c.optimizer});
    scheduler.load_state({c.scheduler});
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  model_gen.set_state(io::find_generator(c, "model", path));
  train_batches.generator().set_state(io::find_generator(c, "train_batches", path));
  eval_train.generator().set_state(io::find_generator(c, "eval_train", path));
  eval_val.generator().set_state(io::find_generator(c, "eval_val", path));
  step = c.step;
}

std::unique_ptr<TinyLM> load_model(const std::string& path, Vocabulary* vocab) {
  io::Checkpoint c = io::load_checkpoint(path);
  TinyLMConfig config;
  try {
    config = config_from_json(c.config);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": /config is not a tiny_lm configuration: " + e.what());
  }
  static Generator scratch(0);   // initial values are overwritten by the checkpoint
  auto model = std::make_unique<TinyLM>(config, scratch);
  try {
    model->load_state_dict(c.model);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  model->eval();
  *vocab = Vocabulary::from_text(c.vocabulary);
  if (vocab->size() != config.vocab_size)
    throw std::runtime_error(path + ": /vocabulary has " + std::to_string(vocab->size()) + " characters but /config says " +
                             std::to_string(config.vocab_size));
  return model;
}

}  // namespace tg::tiny_lm
