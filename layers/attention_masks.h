#pragma once
// Input validation and mask canonicalisation for MultiheadAttention (spec §4.3, §5.2-5.8, with
// tapegrad's decisions): every check names the argument and the caller's own shapes; both masks
// become additive float masks and are merged by addition.
#include <cstdint>
#include <string>

#include "tapegrad/framework/tape.h"

namespace tg {

struct MultiheadAttentionOptions;

struct MhaShapes {
  bool batched = true;
  int64_t N = 1, L = 0, S = 0;
};

// Validates query/key/value/key_padding_mask/attn_mask against the options; throws
// std::invalid_argument "[<op>] ...; got query=[..], key=[..]" on the first failed check.
MhaShapes check_mha_inputs(const std::string& op, const MultiheadAttentionOptions& o, DType param_dtype,
                           const Var& query, const Var& key, const Var& value, const Var& key_padding_mask,
                           const Var& attn_mask);

// The merged additive mask as a rank-4 Var broadcastable to (N, H, L, S + extra_cols), or an
// undefined Var when there is nothing to mask. Bool true -> -inf, false -> 0; float masks are used
// as given (and keep their gradient); `causal` adds -inf where key j > query i; the extra_cols
// appended key positions (bias_k, zero attention) are never masked.
Var build_attention_mask(const std::string& op, const MhaShapes& s, int64_t num_heads, DType dtype,
                         const Var& attn_mask, const Var& key_padding_mask, bool causal, int64_t extra_cols);

// True when m is a 2-D causal mask: bool with true exactly where j > i, or float with -inf exactly
// where j > i and 0 elsewhere. Lets the attention kernel skip the hidden blocks instead of adding -inf.
bool is_causal_pattern(const Tensor& m);

// A (L, S) float tensor with -inf above the diagonal (key j > query i) and 0 elsewhere.
Tensor causal_mask(int64_t L, int64_t S, DType dtype);

}  // namespace tg
