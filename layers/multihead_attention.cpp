#include "tapegrad/layers/multihead_attention.h"

#include <cmath>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/attention.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/init.h"

namespace tg {

void MultiheadAttentionOptions::validate() const {
  TG_CHECK(embed_dim > 0, "MultiheadAttention", "embed_dim must be positive; got embed_dim=", embed_dim);
  TG_CHECK(num_heads > 0, "MultiheadAttention", "num_heads must be positive; got num_heads=", num_heads);
  TG_CHECK(embed_dim % num_heads == 0, "MultiheadAttention", "embed_dim must be divisible by num_heads; got embed_dim=",
           embed_dim, ", num_heads=", num_heads);
  TG_CHECK(dropout >= 0.0 && dropout < 1.0, "MultiheadAttention", "dropout must be in [0, 1); got dropout=", dropout);
  TG_CHECK(!kdim || *kdim > 0, "MultiheadAttention", "kdim must be positive; got kdim=", kdim.value_or(0));
  TG_CHECK(!vdim || *vdim > 0, "MultiheadAttention", "vdim must be positive; got vdim=", vdim.value_or(0));
  TG_CHECK(!qdim || *qdim > 0, "MultiheadAttention", "qdim must be positive; got qdim=", qdim.value_or(0));
}

MultiheadAttention::MultiheadAttention(MultiheadAttentionOptions o, Generator& gen, DType dtype)
    : options_((o.validate(), o)), gen_(&gen) {
  const int64_t E = o.embed_dim, qd = o.qdim.value_or(E), kd = o.kdim.value_or(E), vd = o.vdim.value_or(E);
  packed_ = qd == E && kd == E && vd == E;
  // PyTorch's draw order: out_proj (a Linear: weight, then a bias later zeroed), then the
  // in-projection (xavier_uniform; packed as one (3E, E) matrix), then bias_k and bias_v (xavier_normal).
  auto proj = std::make_shared<Linear>(LinearOptions{.in_features = E, .out_features = E, .bias = o.bias}, gen, dtype);
  Tensor w_in, w_q, w_k, w_v, b_k, b_v;
  if (packed_) {
    w_in = init::xavier_uniform({3 * E, E}, gen, 1.0, dtype);
  } else {
    w_q = init::xavier_uniform({E, qd}, gen, 1.0, dtype);
    w_k = init::xavier_uniform({E, kd}, gen, 1.0, dtype);
    w_v = init::xavier_uniform({E, vd}, gen, 1.0, dtype);
  }
  if (o.add_bias_kv) {
    b_k = init::xavier_normal({1, 1, E}, gen, 1.0, dtype);
    b_v = init::xavier_normal({1, 1, E}, gen, 1.0, dtype);
  }
  if (packed_) {
    in_proj_weight = register_parameter("in_proj_weight", w_in);
  } else {
    q_proj_weight = register_parameter("q_proj_weight", w_q);
    k_proj_weight = register_parameter("k_proj_weight", w_k);
    v_proj_weight = register_parameter("v_proj_weight", w_v);
  }
  if (o.bias) in_proj_bias = register_parameter("in_proj_bias", Tensor::zeros({3 * E}, dtype));
  if (o.add_bias_kv) {
    bias_k = register_parameter("bias_k", b_k);
    bias_v = register_parameter("bias_v", b_v);
  }
  out_proj = register_module("out_proj", proj);
  if (o.bias) out_proj->bias.value().zero_();
}

namespace {

// Rows [r0, r0 + E) of a projection weight (or bias) as a differentiable slice; w itself when it
// is already the right block.
Var block(const Var& w, int64_t r0, int64_t E) {
  if (!w.defined()) return Var();
  if (r0 == 0 && w.size(0) == E) return w;
  return narrow(w, 0, r0, E);
}

// (T, N, F) or (N, T, F) -> (N, H, T, D)
Var split_heads(const Var& x, int64_t H, bool batch_first) {
  const int64_t a = x.size(0), b = x.size(1), E = x.size(2);
  Var r = reshape(x, {a, b, H, E / H});
  return batch_first ? permute(r, {0, 2, 1, 3}) : permute(r, {1, 2, 0, 3});
}

// (N, H, L, D) -> (L, N, E) or (N, L, E)
Var merge_heads(const Var& o, bool batch_first) {
  const int64_t N = o.size(0), H = o.size(1), L = o.size(2), D = o.size(3);
  return batch_first ? reshape(permute(o, {0, 2, 1, 3}), {N, L, H * D}) : reshape(permute(o, {2, 0, 1, 3}), {L, N, H * D});
}

// Appends the learned bias_k/bias_v position and/or the zero position along the sequence dim.
Var append_positions(const Var& x, const Var& bias, bool zero, bool batch_first) {
  if (!bias.defined() && !zero) return x;
  const int64_t N = x.size(batch_first ? 0 : 1), E = x.size(2);
  Shape one = batch_first ? Shape{N, 1, E} : Shape{1, N, E};
  std::vector<Var> parts{x};
  if (bias.defined()) parts.push_back(expand(bias, one));   // (1, 1, E) -> (1, N, E) or (N, 1, E)
  if (zero) parts.push_back(Var(Tensor::zeros(one, x.dtype())));
  return concat(parts, batch_first ? 1 : 0);
}

}  // namespace

MultiheadAttentionOutput MultiheadAttention::forward(const Var& query, const Var& key, const Var& value,
                                                     const Var& key_padding_mask, bool need_weights,
                                                     const Var& attn_mask, bool average_attn_weights, bool is_causal) {
  const std::string op = error_op("MultiheadAttention");
  const auto& o = options_;
  const int64_t E = o.embed_dim, H = o.num_heads;
  MhaShapes s = check_mha_inputs(op, o, in_proj_weight.defined() ? in_proj_weight.dtype() : q_proj_weight.dtype(),
                                 query, key, value, key_padding_mask, attn_mask);
  // Unbatched input runs as a batch of one in sequence-first layout.
  const bool bf = s.batched && o.batch_first;
  auto batch = [&](const Var& x) { return s.batched ? x : reshape(x, {x.size(0), 1, x.size(1)}); };
  const bool self = query.same(key) && key.same(value);
  const Var q_in = batch(query), k_in = self ? q_in : batch(key), v_in = self ? q_in : (value.same(key) ? k_in : batch(value));

  const bool extra = o.add_bias_kv || o.add_zero_attn;
  const bool train_dropout = is_training() && o.dropout > 0;
  // Causal attention runs on the fused kernel's own flag (which skips fully hidden blocks) when the
  // mask need not be explicit: is_causal without a mask, or a constant 2-D mask that is exactly causal.
  const bool fused_ok = !need_weights && !extra;
  Var am = attn_mask;
  bool causal_flag = fused_ok && is_causal && !am.defined();
  if (fused_ok && am.defined() && !am.requires_grad() && am.dim() == 2 && is_causal_pattern(am.value())) {
    causal_flag = true;
    am = Var();
  }
  const bool explicit_causal = is_causal && !attn_mask.defined() && !causal_flag;
  Var mask = build_attention_mask(op, s, H, query.dtype(), am, key_padding_mask, explicit_causal,
                                  int64_t(o.add_bias_kv) + int64_t(o.add_zero_attn));

  AttentionArgs args{.num_heads = H, .batch_first = bf, .attn_mask = mask, .is_causal = causal_flag,
                     .dropout_p = train_dropout ? o.dropout : 0.0, .generator = gen_};
  MultiheadAttentionOutput result;
  Var attended;
  if (packed_ && self && !extra && !need_weights) {
    attended = fused_attention_packed(linear(q_in, in_proj_weight, in_proj_bias), args);
  } else {
    const Var& wq = packed_ ? in_proj_weight : q_proj_weight;
    const Var& wk = packed_ ? in_proj_weight : k_proj_weight;
    const Var& wv = packed_ ? in_proj_weight : v_proj_weight;
    Var q = linear(q_in, block(wq, 0, E), block(in_proj_bias, 0, E));
    Var k = linear(k_in, packed_ ? block(wk, E, E) : wk, block(in_proj_bias, E, E));
    Var v = linear(v_in, packed_ ? block(wv, 2 * E, E) : wv, block(in_proj_bias, 2 * E, E));
    k = append_positions(k, bias_k, o.add_zero_attn, bf);
    v = append_positions(v, bias_v, o.add_zero_attn, bf);
    if (!need_weights) {
      attended = fused_attention(q, k, v, args);
    } else {
      // The weights are asked for: the same attention from basic ops, keeping P.
      const double root = std::sqrt(static_cast<double>(E / H));
      Var scores = matmul(split_heads(q, H, bf) / root, transpose(split_heads(k, H, bf), -2, -1));
      if (mask.defined()) scores = scores + mask;
      Var p = softmax(scores, -1);
      if (train_dropout) p = dropout(p, o.dropout, true, *gen_);
      attended = merge_heads(matmul(p, split_heads(v, H, bf)), bf);
      result.attn_weights = average_attn_weights ? mean(p, {1}) : p;
      if (!s.batched) result.attn_weights = squeeze(result.attn_weights, 0);
    }
  }
  Var out = out_proj->forward(attended);
  result.attn_output = s.batched ? out : reshape(out, {out.size(0), E});
  return result;
}

}  // namespace tg
