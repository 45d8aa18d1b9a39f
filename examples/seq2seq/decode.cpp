#include "examples/seq2seq/decode.h"

#include "tapegrad/framework/check.h"

namespace tg::seq2seq {
namespace {

// Eval mode for the scope (no dropout), restoring the previous flag.
class EvalScope {
 public:
  explicit EvalScope(Module& m) : module_(m), was_training_(m.is_training()) { m.eval(); }
  ~EvalScope() { module_.train(was_training_); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  Module& module_;
  bool was_training_;
};

void check_max_len(const Seq2Seq& model, int64_t max_len) {
  TG_CHECK(max_len >= 1 && max_len <= model.config().max_tgt_len, "seq2seq decode", "max_len must be in [1, ",
           model.config().max_tgt_len, "] (the model's max_tgt_len); got max_len=", max_len);
}

}  // namespace

std::vector<double> log_softmax_row(const double* logits, int64_t n) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, logits[i]);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += std::exp(logits[i] - mx);
  const double log_total = std::log(total) + mx;
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = logits[i] - log_total;
  return out;
}

double beam_score(const Decoded& d, bool length_norm) {
  if (!length_norm) return d.log_prob;
  const double scored = static_cast<double>(d.tokens.size()) + (d.finished ? 1.0 : 0.0);
  return scored > 0 ? d.log_prob / scored : d.log_prob;
}

std::vector<Decoded> greedy_decode(Seq2Seq& model, const Batch& sources, int64_t max_len, bool use_cache) {
  check_max_len(model, max_len);
  EvalScope eval(model);
  NoGradGuard no_grad;
  const int64_t B = sources.src.size(0), V = model.config().vocab_size;
  Var memory = model.encode(sources.src, sources.src_pad);   // (B, S, E), once
  TransformerDecoder::Cache cache = model.make_cache();
  std::vector<Decoded> out(static_cast<size_t>(B));
  std::vector<int64_t> prefix(static_cast<size_t>(B), kBos);   // (B, t + 1) row-major, uncached path
  std::vector<int64_t> last(static_cast<size_t>(B), kBos);
  std::vector<bool> done(static_cast<size_t>(B), false);
  for (int64_t t = 0; t < max_len; ++t) {
    Tensor logits;   // (B, 1, V) cached, (B, t + 1, V) uncached
    if (use_cache) {
      logits = model.decode_step(Tensor::from_vector(last, {B, 1}), memory, sources.src_pad, cache).value();
    } else {
      logits = model.decode(Tensor::from_vector(prefix, {B, t + 1}), memory, sources.src_pad).value();
    }
    logits = logits.to(DType::Float64);
    const int64_t rows = logits.size(1);
    int64_t remaining = 0;
    std::vector<int64_t> next_prefix;
    for (int64_t r = 0; r < B; ++r) {
      const size_t ru = static_cast<size_t>(r);
      int64_t pick = kPad;   // what finished rows are fed; their outputs are ignored
      if (!done[ru]) {
        const std::vector<double> lp = log_softmax_row(logits.data<double>() + (r * rows + rows - 1) * V, V);
        pick = kFirstEmitted + (std::max_element(lp.begin() + kFirstEmitted, lp.end()) -
                                (lp.begin() + kFirstEmitted));   // never PAD or BOS
        out[ru].log_prob += lp[static_cast<size_t>(pick)];
        if (pick == kEos) {
          out[ru].finished = true;
          done[ru] = true;
        } else {
          out[ru].tokens.push_back(pick);
          ++remaining;
        }
      }
      last[ru] = pick;
      next_prefix.insert(next_prefix.end(), prefix.begin() + r * (t + 1), prefix.begin() + (r + 1) * (t + 1));
      next_prefix.push_back(pick);
    }
    prefix = std::move(next_prefix);
    if (remaining == 0) break;
  }
  return out;
}

std::vector<Decoded> beam_decode(Seq2Seq& model, const std::vector<int64_t>& source, const BeamOptions& o) {
  check_max_len(model, o.max_len);
  TG_CHECK(o.beam_size >= 1, "seq2seq decode", "beam_size must be >= 1; got beam_size=", o.beam_size);
  EvalScope eval(model);
  NoGradGuard no_grad;
  const Batch src = make_source_batch({source});
  Var memory = model.encode(src.src, src.src_pad);   // (1, S, E), shared by every hypothesis
  const int64_t V = model.config().vocab_size;
  auto step = [&](TransformerDecoder::Cache& cache, int64_t last) {
    Tensor logits = model.decode_step(Tensor::from_vector(std::vector<int64_t>{last}, {1, 1}), memory, src.src_pad, cache).value().to(DType::Float64);
    return log_softmax_row(logits.data<double>(), V);
  };
  return beam_search(model.make_cache(), step, o);
}

double sequence_log_prob(Seq2Seq& model, const std::vector<int64_t>& source, const std::vector<int64_t>& tokens,
                         bool with_eos) {
  EvalScope eval(model);
  NoGradGuard no_grad;
  const Batch src = make_source_batch({source});
  std::vector<int64_t> in{kBos};
  in.insert(in.end(), tokens.begin(), tokens.end());
  std::vector<int64_t> targets = tokens;
  if (with_eos) targets.push_back(kEos);
  else in.pop_back();
  TG_CHECK(!targets.empty(), "seq2seq decode", "nothing to score: tokens is empty and with_eos is false");
  const int64_t T = static_cast<int64_t>(in.size()), V = model.config().vocab_size;
  Tensor logits = model.decode(Tensor::from_vector(in, {1, T}), model.encode(src.src, src.src_pad), src.src_pad).value().to(DType::Float64);
  double total = 0;
  for (int64_t t = 0; t < T; ++t) total += log_softmax_row(logits.data<double>() + t * V, V)[static_cast<size_t>(targets[static_cast<size_t>(t)])];
  return total;
}

std::vector<std::string> translate(Seq2Seq& model, const std::vector<std::string>& sources, const BeamOptions& o,
                                   int64_t batch_size) {
  TG_CHECK(batch_size >= 1, "seq2seq decode", "batch_size must be >= 1; got batch_size=", batch_size);
  std::vector<std::vector<int64_t>> encoded;
  for (const std::string& s : sources) encoded.push_back(encode(s));
  std::vector<std::string> out;
  for (size_t first = 0; first < encoded.size(); first += static_cast<size_t>(batch_size)) {
    const size_t last = std::min(encoded.size(), first + static_cast<size_t>(batch_size));
    if (o.beam_size == 1) {
      const std::vector<std::vector<int64_t>> chunk(encoded.begin() + static_cast<std::ptrdiff_t>(first),
                                                    encoded.begin() + static_cast<std::ptrdiff_t>(last));
      for (const Decoded& d : greedy_decode(model, make_source_batch(chunk), o.max_len)) out.push_back(decode(d.tokens));
    } else {
      for (size_t i = first; i < last; ++i) out.push_back(decode(beam_decode(model, encoded[i], o).front().tokens));
    }
  }
  return out;
}

}  // namespace tg::seq2seq
