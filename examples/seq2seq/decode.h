#pragma once
// Decoding a Seq2Seq model: batched greedy decoding with the decoder's KV cache (the memory's
// cross-attention keys/values projected once, one self-attention step per token) or by recomputing the
// whole prefix (use_cache = false, the reference), and beam search.
//
// Beam search keeps the beam_size best unfinished hypotheses by total log-probability; a candidate
// ending in EOS moves to the finished list. It stops at max_len or as soon as the best finished
// hypothesis scores at least the best unfinished one (a hypothesis's total log-probability can only
// decrease as it grows, so nothing better can follow: the best finished sequence is then the best the
// beam can reach). The finished hypotheses are returned best first (at most beam_size), ranked by
// total log-probability, or with length_norm by log-probability per scored token (EOS included): a
// re-ranking of what the search found, the search itself is the same. Ties are broken by the lower
// token id, as greedy's argmax, so beam_size 1 returns exactly greedy's sequence in both modes.
//
// Neither greedy decoding nor beam search ever emits PAD or BOS (as seq2seq toolkits set their scores
// to -inf): an untrained model may give them the highest probability, and decode() would silently drop
// them. They are left out of the argmax and of the beam's candidates, but the softmax is NOT renormalised
// over the remaining tokens: every score stays the model's full-softmax log-probability, so a
// hypothesis's log_prob equals sequence_log_prob (teacher forcing) exactly.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "examples/seq2seq/data.h"
#include "examples/seq2seq/model.h"

namespace tg::seq2seq {

// The tokens decoding may emit are kFirstEmitted (EOS) and above: every token but PAD and BOS.
static_assert(kPad < kEos && kBos < kEos, "PAD and BOS come before EOS and the characters");
inline constexpr int64_t kFirstEmitted = kEos;

struct Decoded {
  std::vector<int64_t> tokens;   // without BOS and EOS
  double log_prob = 0;           // sum of the chosen tokens' log-probabilities (EOS included when finished)
  bool finished = false;         // ended with EOS (false: stopped at max_len)
};

struct BeamOptions {
  int64_t beam_size = 4;
  int64_t max_len = 16;          // tokens generated at most (EOS included)
  bool length_norm = false;
};

// The score beam search ranks by.
double beam_score(const Decoded& d, bool length_norm);

// Greedy decoding of a batch of sources (make_source_batch), max_len tokens at most (<= max_tgt_len);
// the argmax is over EOS and the characters (never PAD or BOS).
// Runs in eval mode without a tape (the model's training flag is restored).
std::vector<Decoded> greedy_decode(Seq2Seq& model, const Batch& sources, int64_t max_len, bool use_cache = true);

// Beam search for one source (token ids); the finished hypotheses, best first (at least one entry).
std::vector<Decoded> beam_decode(Seq2Seq& model, const std::vector<int64_t>& source, const BeamOptions& options);

// The model's log-probability of `tokens` (then EOS when with_eos) given source, by teacher forcing.
double sequence_log_prob(Seq2Seq& model, const std::vector<int64_t>& source, const std::vector<int64_t>& tokens,
                         bool with_eos = true);

// Translates strings (encode()d; throws its std::invalid_argument for characters outside the
// vocabulary): greedy in batches of batch_size with the cache when beam_size == 1, else beam search.
std::vector<std::string> translate(Seq2Seq& model, const std::vector<std::string>& sources, const BeamOptions& options,
                                   int64_t batch_size = 256);

// The log-softmax of one row of n logits.
std::vector<double> log_softmax_row(const double* logits, int64_t n);

// The generic beam search. step(state, last_token) returns the log-probabilities of the next token
// (vocab entries; PAD and BOS are never candidates) and advances `state` past last_token; a child
// hypothesis gets a copy of its parent's state after that step. State must be copyable into independent
// states (a decoder cache is: its copies share the cached positions until one of them would overwrite
// another's, layers/attention_cache.h).
template <class State, class Step>
std::vector<Decoded> beam_search(State initial, Step&& step, const BeamOptions& o) {
  struct Live {
    Decoded d;
    State state;
    int64_t last;
  };
  struct Candidate {
    double log_prob;
    size_t parent;
    int64_t token;
  };
  std::vector<Live> live{{Decoded{}, std::move(initial), kBos}};
  std::vector<Decoded> finished;
  for (int64_t t = 0; t < o.max_len && !live.empty(); ++t) {
    std::vector<Candidate> cands;
    for (size_t i = 0; i < live.size(); ++i) {
      const std::vector<double> lp = step(live[i].state, live[i].last);
      for (size_t v = kFirstEmitted; v < lp.size(); ++v)   // never PAD or BOS (see above)
        cands.push_back({live[i].d.log_prob + lp[v], i, static_cast<int64_t>(v)});
    }
    // Best first; among equals the earlier (parent, token), like argmax's first maximum.
    std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) { return a.log_prob > b.log_prob; });
    std::vector<Live> next;
    for (const Candidate& c : cands) {
      if (static_cast<int64_t>(next.size()) == o.beam_size) break;
      Decoded d{live[c.parent].d.tokens, c.log_prob, c.token == kEos};
      if (d.finished) {
        finished.push_back(std::move(d));
        continue;
      }
      d.tokens.push_back(c.token);
      next.push_back({std::move(d), live[c.parent].state, c.token});
    }
    live = std::move(next);
    if (!finished.empty() && !live.empty()) {
      double best_finished = -INFINITY;
      for (const Decoded& f : finished) best_finished = std::max(best_finished, f.log_prob);
      if (best_finished >= live.front().d.log_prob) break;   // live scores only decrease from here
    }
  }
  if (finished.empty())
    for (Live& l : live) finished.push_back(std::move(l.d));   // max_len reached without EOS
  std::stable_sort(finished.begin(), finished.end(), [&](const Decoded& a, const Decoded& b) {
    return beam_score(a, o.length_norm) > beam_score(b, o.length_norm);
  });
  if (static_cast<int64_t>(finished.size()) > o.beam_size) finished.resize(static_cast<size_t>(o.beam_size));
  return finished;
}

}  // namespace tg::seq2seq
