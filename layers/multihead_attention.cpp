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

MultiheadAttention::MultiheadAttention(MultiheadAttentionOptions o, Generator gen, DType dtype)
    : options_((o.validate(), o)), gen_(gen) {
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
    in_proj_weight_ = &register_parameter("in_proj_weight", w_in);
  } else {
    q_proj_weight_ = &register_parameter("q_proj_weight", w_q);
    k_proj_weight_ = &register_parameter("k_proj_weight", w_k);
    v_proj_weight_ = &register_parameter("v_proj_weight", w_v);
  }
  if (o.bias) in_proj_bias_ = &register_parameter("in_proj_bias", Tensor::zeros({3 * E}, dtype));
  if (o.add_bias_kv) {
    bias_k_ = &register_parameter("bias_k", b_k);
    bias_v_ = &register_parameter("bias_v", b_v);
  }
  out_proj = register_module("out_proj", proj);
  if (o.bias) {
    Var b = out_proj->bias();
    b.value().zero_();
  }
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

// Everything one forward call decides before projecting: the checked shapes, the inputs as
// sequence/batch 3-D tensors, and the merged mask (or the fused kernel's causal flag instead).
struct MultiheadAttention::Call {
  std::string op;
  MhaShapes s;
  bool bf = false;                 // batch-first layout (false for unbatched input)
  bool self = false;               // query, key and value are one Var
  Var q_in, k_in, v_in;
  bool extra = false;              // bias_k / zero-attention columns are appended
  bool train_dropout = false;
  Var mask;                        // merged additive mask, undefined when nothing is masked
  bool causal_flag = false;        // the fused kernel's own causal masking replaces an explicit mask
};

MultiheadAttention::Call MultiheadAttention::prepare(const Var& query, const Var& key, const Var& value,
                                                     const MultiheadAttentionForwardOptions& f) {
  const auto& o = options_;
  Call c;
  c.op = error_op("MultiheadAttention");
  const DType param_dtype = packed_ ? in_proj_weight().dtype() : q_proj_weight().dtype();
  c.s = check_mha_inputs(c.op, o, param_dtype, query, key, value, f.key_padding_mask, f.attn_mask);
  // Unbatched input runs as a batch of one in sequence-first layout: (T, F) -> (T, 1, F).
  c.bf = c.s.batched && o.batch_first;
  auto batch = [&](const Var& x) { return c.s.batched ? x : reshape(x, {x.size(0), 1, x.size(1)}); };
  c.self = query.same(key) && key.same(value);
  c.q_in = batch(query);
  c.k_in = c.self ? c.q_in : batch(key);
  c.v_in = c.self ? c.q_in : (value.same(key) ? c.k_in : batch(value));
  c.extra = o.add_bias_kv || o.add_zero_attn;
  c.train_dropout = is_training() && o.dropout > 0;
  resolve_masks(c, f);
  return c;
}

void MultiheadAttention::resolve_masks(Call& c, const MultiheadAttentionForwardOptions& f) const {
  // Causal attention runs on the fused kernel's own flag (which skips fully hidden blocks) when the
  // mask need not be explicit: is_causal without a mask, or a constant 2-D mask that is exactly causal.
  const bool fused_ok = !f.need_weights && !c.extra;
  Var am = f.attn_mask;
  c.causal_flag = fused_ok && f.is_causal && !am.defined();
  if (fused_ok && am.defined() && !am.requires_grad() && am.dim() == 2 && is_causal_pattern(am.value())) {
    c.causal_flag = true;
    am = Var();
  }
  const bool explicit_causal = f.is_causal && !f.attn_mask.defined() && !c.causal_flag;
  const int64_t extra_cols = int64_t(options_.add_bias_kv) + int64_t(options_.add_zero_attn);
  c.mask = build_attention_mask(c.op, c.s, options_.num_heads, c.q_in.dtype(), am, f.key_padding_mask,
                                explicit_causal, extra_cols);
}

MultiheadAttention::Projected MultiheadAttention::project(const Call& c) const {
  const int64_t E = options_.embed_dim;
  const Var& b = in_proj_bias();
  Projected p;
  if (packed_) {
    // Row blocks [0, E), [E, 2E), [2E, 3E) of in_proj_weight (3E, E) project q, k, v.
    const Var& w = in_proj_weight();
    p.q = linear(c.q_in, block(w, 0, E), block(b, 0, E));
    p.k = linear(c.k_in, block(w, E, E), block(b, E, E));
    p.v = linear(c.v_in, block(w, 2 * E, E), block(b, 2 * E, E));
  } else {
    p.q = linear(c.q_in, q_proj_weight(), block(b, 0, E));
    p.k = linear(c.k_in, k_proj_weight(), block(b, E, E));
    p.v = linear(c.v_in, v_proj_weight(), block(b, 2 * E, E));
  }
  // (S, N, E) -> (S + extra, N, E), or along dim 1 batch-first.
  p.k = append_positions(p.k, bias_k(), options_.add_zero_attn, c.bf);
  p.v = append_positions(p.v, bias_v(), options_.add_zero_attn, c.bf);
  return p;
}

AttentionArgs MultiheadAttention::attention_args(const Call& c) {
  return AttentionArgs{.num_heads = options_.num_heads, .batch_first = c.bf, .attn_mask = c.mask,
                       .is_causal = c.causal_flag, .dropout_p = c.train_dropout ? options_.dropout : 0.0,
                       .generator = &gen_};
}

Var MultiheadAttention::attend_with_weights(const Call& c, const Projected& p, const MultiheadAttentionForwardOptions& f,
                                            Var* attn_weights) {
  // The weights are asked for: the same attention from basic ops, keeping P.
  const int64_t E = options_.embed_dim, H = options_.num_heads;
  const double root = std::sqrt(static_cast<double>(E / H));
  // (N, H, L, D) x (N, H, D, S') -> scores (N, H, L, S')
  Var scores = matmul(split_heads(p.q, H, c.bf) / root, transpose(split_heads(p.k, H, c.bf), -2, -1));
  if (c.mask.defined()) scores = scores + c.mask;
  Var probs = softmax(scores, -1);
  if (c.train_dropout) probs = dropout(probs, options_.dropout, true, gen_);
  *attn_weights = f.average_attn_weights ? mean(probs, {1}) : probs;   // (N, L, S') or (N, H, L, S')
  if (!c.s.batched) *attn_weights = squeeze(*attn_weights, 0);
  return merge_heads(matmul(probs, split_heads(p.v, H, c.bf)), c.bf);
}

Var MultiheadAttention::attend(const Call& c, const MultiheadAttentionForwardOptions& f, Var* attn_weights) {
  if (packed_ && c.self && !c.extra && !f.need_weights)   // one (3E, E) projection, read in place by the kernel
    return fused_attention_packed(linear(c.q_in, in_proj_weight(), in_proj_bias()), attention_args(c));
  Projected p = project(c);
  if (f.need_weights) return attend_with_weights(c, p, f, attn_weights);
  return fused_attention(p.q, p.k, p.v, attention_args(c));
}

MultiheadAttentionOutput MultiheadAttention::forward(const Var& query, const Var& key, const Var& value,
                                                     const MultiheadAttentionForwardOptions& f) {
  Call c = prepare(query, key, value, f);
  MultiheadAttentionOutput result;
  Var out = out_proj->forward(attend(c, f, &result.attn_weights));
  result.attn_output = c.s.batched ? out : reshape(out, {out.size(0), options_.embed_dim});
  return result;
}

Var MultiheadAttention::forward_residual(const Var& residual, const Var& query, const Var& key, const Var& value,
                                         const MultiheadAttentionForwardOptions& f) {
  MultiheadAttentionForwardOptions g = f;
  g.need_weights = false;
  Call c = prepare(query, key, value, g);
  check_defined(c.op.c_str(), "residual", residual);
  Shape want = query.shape();
  want.back() = options_.embed_dim;
  TG_CHECK(residual.shape() == want && residual.dtype() == query.dtype(), c.op.c_str(),
           "residual must have the output's shape and dtype ", to_string(query.dtype()), to_string(want),
           "; got query=", describe(query.value()), ", residual=", describe(residual.value()));
  const Var attended = attend(c, g, nullptr);
  if (!c.s.batched) return residual + reshape(out_proj->forward(attended), {attended.size(0), options_.embed_dim});
  return out_proj->forward_residual(attended, residual);
}

}  // namespace tg
