// The seq2seq example's decoding: cached greedy decoding equals the uncached recomputation token for
// token, beam search of width 1 is greedy, beam search finds a better sequence than greedy where one
// exists, scores agree with teacher forcing, and the cached step equals the decoder's full forward.
#include "examples/seq2seq/decode.h"
#include "support/test_support.h"
#include "tapegrad/framework/ops/shape.h"

using Catch::Matchers::Contains;
using namespace tg;
using namespace tg::seq2seq;

namespace {

Seq2SeqConfig small_config() {
  return {.vocab_size = vocab_size(), .max_src_len = 32, .max_tgt_len = 12, .d_model = 16, .nhead = 2,
          .num_encoder_layers = 2, .num_decoder_layers = 2, .dim_feedforward = 24, .dropout = 0.1, .norm_first = true};
}

std::vector<std::vector<int64_t>> sources() {
  std::vector<std::vector<int64_t>> out;
  for (const Example& e : held_out_examples(6, 11)) out.push_back(encode(e.source));
  return out;
}

}  // namespace

TEST_CASE("seq2seq decode: a cached step equals the last row of the uncached decoder (float64 and float32)", "[seq2seq][decode]") {
  for (DType dt : {DType::Float64, DType::Float32}) {
    Seq2Seq model(small_config(), Generator(3), dt);
    model.eval();
    NoGradGuard no_grad;
    const Batch b = make_source_batch(sources());
    const int64_t B = b.src.size(0), V = vocab_size();
    Var memory = model.encode(b.src, b.src_pad);
    std::vector<int64_t> prefix;
    for (int64_t r = 0; r < B; ++r)
      for (int64_t t = 0; t < 7; ++t) prefix.push_back(t == 0 ? kBos : 3 + (5 * r + 7 * t) % (V - 3));
    Tensor tgt = Tensor::from_vector(prefix, {B, 7});
    Tensor full = model.decode(tgt, memory, b.src_pad).value();   // (B, 7, V)
    auto cache = model.make_cache();
    for (int64_t t = 0; t < 7; ++t) {
      Tensor step = model.decode_step(narrow(Var(tgt), 1, t, 1).value(), memory, b.src_pad, cache).value();
      tg::test::require_close(step, narrow(Var(full), 1, t, 1).value(), dt == DType::Float64 ? 1e-12 : 1e-5,
                              "step " + std::to_string(t));
    }
    CHECK(cache.length() == 7);
  }
}

TEST_CASE("seq2seq decode: cached greedy decoding equals uncached greedy decoding token for token", "[seq2seq][decode]") {
  for (uint64_t seed : {1, 2, 3}) {
    Seq2Seq model(small_config(), Generator(seed));
    const Batch b = make_source_batch(sources());
    const auto cached = greedy_decode(model, b, 12, true);
    const auto uncached = greedy_decode(model, b, 12, false);
    REQUIRE(cached.size() == 6);
    for (size_t r = 0; r < cached.size(); ++r) {
      REQUIRE(cached[r].tokens == uncached[r].tokens);
      REQUIRE(cached[r].finished == uncached[r].finished);
      CHECK(std::abs(cached[r].log_prob - uncached[r].log_prob) < 1e-4);
    }
    CHECK(model.is_training());   // decoding restores the training flag
  }
}

TEST_CASE("seq2seq decode: batched greedy equals one-by-one greedy, and its score is the teacher-forced one", "[seq2seq][decode]") {
  Seq2Seq model(small_config(), Generator(8));
  const auto src = sources();
  const auto batched = greedy_decode(model, make_source_batch(src), 12);
  for (size_t r = 0; r < src.size(); ++r) {
    const auto single = greedy_decode(model, make_source_batch({src[r]}), 12);
    REQUIRE(single[0].tokens == batched[r].tokens);
    CHECK(std::abs(sequence_log_prob(model, src[r], batched[r].tokens, batched[r].finished) - batched[r].log_prob) < 1e-4);
  }
}

TEST_CASE("seq2seq decode: beam search of width 1 is greedy decoding", "[seq2seq][decode]") {
  for (uint64_t seed : {4, 5}) {
    Seq2Seq model(small_config(), Generator(seed));
    const auto src = sources();
    const auto greedy = greedy_decode(model, make_source_batch(src), 12);
    for (size_t r = 0; r < src.size(); ++r) {
      const auto beam = beam_decode(model, src[r], {.beam_size = 1, .max_len = 12});
      REQUIRE(beam.size() == 1);
      REQUIRE(beam[0].tokens == greedy[r].tokens);
      CHECK(beam[0].finished == greedy[r].finished);
      CHECK(std::abs(beam[0].log_prob - greedy[r].log_prob) < 1e-4);
    }
  }
}

TEST_CASE("seq2seq decode: wider beams report teacher-forced scores, best first", "[seq2seq][decode]") {
  Seq2Seq model(small_config(), Generator(6));
  const auto src = sources();
  for (bool norm : {false, true}) {
    const auto beams = beam_decode(model, src[0], {.beam_size = 4, .max_len = 12, .length_norm = norm});
    REQUIRE(!beams.empty());
    for (size_t i = 0; i < beams.size(); ++i) {
      CHECK(std::abs(sequence_log_prob(model, src[0], beams[i].tokens, beams[i].finished) - beams[i].log_prob) < 1e-4);
      if (i > 0) CHECK(beam_score(beams[i - 1], norm) >= beam_score(beams[i], norm));
    }
  }
}

TEST_CASE("seq2seq decode: every beam hypothesis's score is its teacher-forced log-probability (hypotheses fork "
          "the decoder cache)", "[seq2seq][decode]") {
  // Small float64 models whose beams fork the cache before it outgrows its first 16 positions: each child of
  // a hypothesis steps its own copy of the parent's cache at the same position, so a copy that wrote into
  // its siblings' buffers would show as a wrong score.
  int checked = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const Seq2SeqConfig cfg{.vocab_size = 5, .max_src_len = 4, .max_tgt_len = 3, .d_model = 4, .nhead = 1,
                            .num_encoder_layers = 1, .num_decoder_layers = 1, .dim_feedforward = 4, .dropout = 0.0,
                            .norm_first = seed % 2 == 0};
    Seq2Seq model(cfg, Generator(seed), DType::Float64);
    const std::vector<int64_t> src{3, 4};
    for (const Decoded& d : beam_decode(model, src, {.beam_size = 3, .max_len = 3})) {
      INFO("seed " << seed << ", " << d.tokens.size() << " tokens, finished " << d.finished);
      REQUIRE(std::abs(sequence_log_prob(model, src, d.tokens, d.finished) - d.log_prob) < 1e-12);
      ++checked;
    }
  }
  REQUIRE(checked >= 60);   // 74 hypotheses in all
}

// A constructed distribution over the tokens {PAD, BOS, EOS, a=3, b=4} (the state is the last token):
// after BOS a 0.6, b 0.4; after a: EOS 0.4, a 0.3, b 0.3; after b: EOS 0.9, a 0.05, b 0.05.
// Greedy takes "a" then EOS (0.6 * 0.4 = 0.24); the best sequence is "b" EOS (0.4 * 0.9 = 0.36).
TEST_CASE("seq2seq decode: beam search finds a higher-scoring sequence than greedy on a constructed case", "[seq2seq][decode]") {
  auto step = [](int64_t& state, int64_t last) {
    state = last;
    const double z = -1e9;
    if (last == kBos) return std::vector<double>{z, z, z, std::log(0.6), std::log(0.4)};
    if (last == 3) return std::vector<double>{z, z, std::log(0.4), std::log(0.3), std::log(0.3)};
    return std::vector<double>{z, z, std::log(0.9), std::log(0.05), std::log(0.05)};
  };
  const auto greedy = beam_search(int64_t{0}, step, {.beam_size = 1, .max_len = 5});
  REQUIRE(greedy[0].tokens == std::vector<int64_t>{3});
  CHECK(greedy[0].log_prob == Approx(std::log(0.24)).epsilon(1e-12));
  const auto beam = beam_search(int64_t{0}, step, {.beam_size = 2, .max_len = 5});
  REQUIRE(beam[0].tokens == std::vector<int64_t>{4});
  CHECK(beam[0].finished);
  CHECK(beam[0].log_prob == Approx(std::log(0.36)).epsilon(1e-12));
  REQUIRE(beam.size() == 2);
  CHECK(beam[1].tokens == std::vector<int64_t>{3});
  // Length normalisation re-ranks what the search finished: "b" EOS (-0.511 per token) before "a" EOS
  // (-0.714); with max_len 1 nothing finishes and the unfinished beams are returned. The third beam's
  // first token is EOS at -1e9 ("" EOS, last): PAD and BOS are never candidates, so it cannot be a PAD.
  const auto norm = beam_search(int64_t{0}, step, {.beam_size = 3, .max_len = 5, .length_norm = true});
  REQUIRE(norm.size() == 3);
  CHECK(norm[0].tokens == std::vector<int64_t>{4});
  CHECK(norm[1].tokens == std::vector<int64_t>{3});
  CHECK(norm[2].tokens.empty());
  CHECK(norm[2].log_prob == -1e9);
  const auto cut = beam_search(int64_t{0}, step, {.beam_size = 2, .max_len = 1});
  REQUIRE(cut.size() == 2);
  CHECK_FALSE(cut[0].finished);
  CHECK(cut[0].tokens == std::vector<int64_t>{3});
}

// Early, unlikely EOS candidates must not end the search: "a a a" EOS (0.9^3 * 0.99 = 0.72) is the best
// sequence although "" EOS and "a" EOS finish first (0.05, 0.045).
TEST_CASE("seq2seq decode: beam search does not stop on unlikely early EOS candidates", "[seq2seq][decode]") {
  auto step = [](int64_t& length, int64_t last) {
    if (last != kBos) ++length;
    const double z = -1e9;
    if (length < 3) return std::vector<double>{z, z, std::log(0.05), std::log(0.9), std::log(0.05)};
    return std::vector<double>{z, z, std::log(0.99), std::log(0.005), std::log(0.005)};
  };
  for (int64_t k : {1, 2, 3, 5}) {
    const auto beams = beam_search(int64_t{0}, step, {.beam_size = k, .max_len = 8});
    INFO("beam_size " << k);
    REQUIRE(beams[0].tokens == std::vector<int64_t>{3, 3, 3});
    CHECK(beams[0].finished);
    CHECK(beams[0].log_prob == Approx(std::log(0.9 * 0.9 * 0.9 * 0.99)).epsilon(1e-12));
    CHECK(static_cast<int64_t>(beams.size()) <= k);
  }
}

TEST_CASE("seq2seq decode: bad lengths and inputs throw naming the argument", "[seq2seq][decode]") {
  Seq2Seq model(small_config(), Generator(1));
  const Batch b = make_source_batch(sources());
  REQUIRE_THROWS_WITH(greedy_decode(model, b, 13), Contains("[seq2seq decode] max_len must be in [1, 12] (the model's max_tgt_len); got max_len=13"));
  REQUIRE_THROWS_WITH(beam_decode(model, encode("3.3.2021"), {.beam_size = 0, .max_len = 4}),
                      Contains("beam_size must be >= 1; got beam_size=0"));
  const std::vector<int64_t> too_long(33, encode("1")[0]);
  REQUIRE_THROWS_WITH(greedy_decode(model, make_source_batch({too_long}), 4), Contains("[Seq2Seq] src length 33 exceeds max_src_len=32"));
  auto cache = model.make_cache();
  Var memory = model.encode(b.src, b.src_pad);
  REQUIRE_THROWS_WITH(model.decode_step(Tensor::full({6, 13}, 3, DType::Int64), memory, b.src_pad, cache),
                      Contains("[Seq2Seq] tokens length 13 exceeds max_tgt_len=12"));
  REQUIRE_THROWS_WITH(translate(model, {"3rd of mär"}, {.beam_size = 1, .max_len = 4}), Contains("outside the vocabulary"));
}

namespace {

// Untrained models (the fuzzer's `train --max-iters` 0..few runs) often rate PAD or BOS highest.
Seq2SeqConfig untrained_config(int64_t layers) {
  return {.vocab_size = vocab_size(), .max_src_len = 32, .max_tgt_len = 16, .d_model = 16, .nhead = 2,
          .num_encoder_layers = layers, .num_decoder_layers = layers, .dim_feedforward = 32, .dropout = 0.1,
          .norm_first = true};
}

bool holds_pad_or_bos(const std::vector<int64_t>& tokens) {
  return std::any_of(tokens.begin(), tokens.end(), [](int64_t t) { return t == kPad || t == kBos; });
}

}  // namespace

TEST_CASE("seq2seq decode: untrained models never emit PAD or BOS, and their scores stay teacher-forced",
          "[seq2seq][decode]") {
  const auto src = sources();
  int64_t greedy_outputs = 0, beams = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    Seq2Seq model(untrained_config(seed % 2 + 1), Generator(seed));
    const auto cached = greedy_decode(model, make_source_batch(src), 16, true);
    const auto uncached = greedy_decode(model, make_source_batch(src), 16, false);
    for (size_t r = 0; r < src.size(); ++r, ++greedy_outputs) {
      INFO("seed " << seed << ", source " << r);
      REQUIRE_FALSE(holds_pad_or_bos(cached[r].tokens));
      REQUIRE(cached[r].tokens == uncached[r].tokens);
      CHECK(std::abs(sequence_log_prob(model, src[r], cached[r].tokens, cached[r].finished) - cached[r].log_prob) <
            1e-4);
    }
    for (const Decoded& d : beam_decode(model, src[seed % src.size()], {.beam_size = 3, .max_len = 16})) {
      INFO("seed " << seed << ", beam");
      REQUIRE_FALSE(holds_pad_or_bos(d.tokens));
      CHECK(std::abs(sequence_log_prob(model, src[seed % src.size()], d.tokens, d.finished) - d.log_prob) < 1e-4);
      ++beams;
    }
  }
  CHECK(greedy_outputs == 72);
  CHECK(beams >= 12);
}

// On a constructed distribution that rates PAD, then BOS, highest at every step, greedy (beam 1) and
// wider beams pick among EOS and the characters only, with full-softmax scores.
TEST_CASE("seq2seq decode: beam search leaves PAD and BOS out of its candidates", "[seq2seq][decode]") {
  auto step = [](int64_t& state, int64_t last) {
    state = last;
    return std::vector<double>{std::log(0.5), std::log(0.3), std::log(0.05), std::log(0.1), std::log(0.05)};
  };
  const auto greedy = beam_search(int64_t{0}, step, {.beam_size = 1, .max_len = 2});
  REQUIRE(greedy[0].tokens == std::vector<int64_t>{3, 3});
  CHECK_FALSE(greedy[0].finished);
  CHECK(greedy[0].log_prob == Approx(2 * std::log(0.1)).epsilon(1e-12));
  const auto beam = beam_search(int64_t{0}, step, {.beam_size = 3, .max_len = 1});
  REQUIRE(beam.size() == 1);   // the only finished one: EOS
  CHECK(beam[0].tokens.empty());
  CHECK(beam[0].finished);
  CHECK(beam[0].log_prob == Approx(std::log(0.05)).epsilon(1e-12));
}
