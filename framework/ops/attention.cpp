#include "tapegrad/framework/ops/attention.h"

#include "tapegrad/framework/check.h"
#include "framework/kernels/attention.h"
#include "framework/kernels/bf16.h"
#include "framework/kernels/broadcast.h"

namespace tg {
namespace {

using kernels::HeadLayout;

// One attention call resolved to dims, layouts and the Vars that own the memory.
struct Plan {
  const char* op;
  kernels::AttentionDims dims;
  std::vector<Var> inputs;              // distinct operand Vars (q, k, v or qkv), then the mask if any
  int qi = 0, ki = 0, vi = 0;           // which input holds q, k, v
  HeadLayout ql, kl, vl, ol;
  Shape out_shape;
  Var mask;
  Shape mask4;                          // mask shape padded to rank 4
  kernels::AttentionConfig cfg;
  int64_t scores = 0;                   // N * H * L * S, checked
};

// Layout of heads inside a [T, N, C] (or [N, T, C]) tensor whose head h columns start at col0 + h*D.
HeadLayout seq_layout(bool batch_first, int64_t T, int64_t N, int64_t C, int64_t col0, int64_t D) {
  HeadLayout l;
  l.offset = col0;
  l.head = D;
  l.batch = batch_first ? T * C : C;
  l.row = batch_first ? C : N * C;
  return l;
}

void check_mask(Plan& p) {
  const auto& d = p.dims;
  if (!p.mask.defined()) return;
  const Shape& ms = p.mask.shape();
  Shape full{d.N, d.H, d.L, d.S};
  bool ok = ms.size() <= 4 && is_floating(p.mask.dtype());
  Shape m4(4, 1);
  for (size_t i = 0; ok && i < ms.size(); ++i) {
    size_t k = 4 - ms.size() + i;
    m4[k] = ms[i];
    ok = ms[i] == 1 || ms[i] == full[k];
  }
  TG_CHECK(ok, p.op, "attn_mask must be a float mask broadcastable to (N, H, L, S)=", to_string(full), "; got attn_mask=",
           describe(p.mask.value()));
  TG_CHECK(p.mask.dtype() == p.inputs[0].dtype(), p.op, "attn_mask dtype must match the inputs; got attn_mask=",
           describe(p.mask.value()), ", query dtype ", to_string(p.inputs[0].dtype()));
  p.mask4 = m4;
}

template <class T> kernels::MaskView<T> mask_view(const Plan& p) {
  kernels::MaskView<T> mv;
  if (!p.mask.defined()) return mv;
  Shape st = strides_of(p.mask4);
  mv.data = p.mask.value().template data<T>();
  mv.batch = p.mask4[0] == 1 ? 0 : st[0];
  mv.head = p.mask4[1] == 1 ? 0 : st[1];
  mv.row = p.mask4[2] == 1 ? 0 : st[2];
  mv.col = p.mask4[3] == 1 ? 0 : st[3];
  return mv;
}

// Dropout settings, and the size of the [N*H, L, S] score block (checked: it combines the dims of
// q and k, so it may be far larger than either).
void prepare_dropout(Plan& p, const AttentionArgs& a) {
  const auto& d = p.dims;
  p.scores = numel({d.N, d.H, d.L, d.S}, p.op);
  TG_CHECK(a.dropout_p >= 0.0 && a.dropout_p < 1.0, p.op, "dropout_p must be in [0, 1); got dropout_p=", a.dropout_p);
  p.cfg.causal = a.is_causal;
  p.cfg.dropout_p = a.dropout_p;
  if (a.dropout_p > 0) {
    TG_CHECK(a.generator != nullptr, p.op, "dropout_p=", a.dropout_p, " needs a Generator");
    const Reservation r = a.generator->reserve_blocks(static_cast<uint64_t>(p.scores));
    p.cfg.seed = r.seed;
    p.cfg.first = r.first;
  }
}

Var run(Plan p) {
  const auto& d = p.dims;
  bool needs_grad = false;
  if (grad_enabled())
    for (const Var& v : p.inputs) needs_grad = needs_grad || v.requires_grad();
  DType dt = p.inputs[0].dtype();
  p.cfg.products = detail::autocast_mode_for(dt);   // kept by the closure: backward uses the same products
  Tensor out(p.out_shape, dt, p.op);
  // [N*H, L, S] with rows probs_row apart (kernels/attention.h).
  Tensor probs = needs_grad ? Tensor({d.N * d.H, d.L, kernels::probs_row(d)}, dt, p.op) : Tensor();
  dispatch_floating(dt, p.op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::attention_forward<T>(d, p.inputs[p.qi].value().template data<T>(), p.ql,
                                  p.inputs[p.ki].value().template data<T>(), p.kl,
                                  p.inputs[p.vi].value().template data<T>(), p.vl, mask_view<T>(p), p.cfg,
                                  out.template data<T>(), p.ol, needs_grad ? probs.template data<T>() : nullptr);
  });
  std::vector<Tensor> values;
  for (const Var& v : p.inputs) values.push_back(v.value());
  return record(p.op, out, p.inputs, [p, values, probs](const Tensor& gy, Grads& g) {
    const auto& d = p.dims;
    const size_t nops = values.size() - (p.mask.defined() ? 1 : 0);
    std::vector<Tensor> grads;
    // Every element is written by the kernel (dq row by row, dk and dv zeroed per head first).
    for (size_t i = 0; i < nops; ++i) grads.push_back(Tensor(values[i].shape(), values[i].dtype()));
    bool mask_grad = p.mask.defined() && g.wants(nops);
    Tensor dscores = mask_grad ? Tensor({d.N * d.H, d.L, d.S}, gy.dtype()) : Tensor();
    dispatch_floating(gy.dtype(), p.op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      kernels::attention_backward<T>(
          d, values[p.qi].template data<T>(), p.ql, values[p.ki].template data<T>(), p.kl,
          values[p.vi].template data<T>(), p.vl, p.cfg, probs.template data<T>(), gy.template data<T>(), p.ol,
          grads[p.qi].template data<T>(), p.ql, grads[p.ki].template data<T>(), p.kl, grads[p.vi].template data<T>(),
          p.vl, mask_grad ? dscores.template data<T>() : nullptr);
    });
    for (size_t i = 0; i < nops; ++i) g.add(i, grads[i]);
    if (mask_grad)
      g.add(nops, kernels::sum_to(dscores.reshape({d.N, d.H, d.L, d.S}), p.mask4).reshape(p.mask.shape()));
  }, values);
}

void check_qkv(const char* op, const Var& q, const Var& k, const Var& v) {
  check_defined(op, "query", q);
  check_defined(op, "key", k);
  check_defined(op, "value", v);
  TG_CHECK(is_floating(q.dtype()) && q.dtype() == k.dtype() && q.dtype() == v.dtype(), op,
           "query, key and value must share one float dtype; got query=", describe(q.value()), ", key=",
           describe(k.value()), ", value=", describe(v.value()));
}

}  // namespace

Var fused_attention(const Var& q, const Var& k, const Var& v, const AttentionArgs& a) {
  const char* op = "fused_attention";
  check_qkv(op, q, k, v);
  TG_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, op, "query, key and value must be 3-D; got query=",
           to_string(q.shape()), ", key=", to_string(k.shape()), ", value=", to_string(v.shape()));
  const int64_t bdim = a.batch_first ? 0 : 1, tdim = a.batch_first ? 1 : 0;
  const int64_t N = q.size(bdim), L = q.size(tdim), E = q.size(2), S = k.size(tdim);
  TG_CHECK(k.shape() == v.shape() && k.size(bdim) == N && k.size(2) == E, op,
           "key and value must be (S, N, E) matching query (L, N, E); got query=", to_string(q.shape()), ", key=",
           to_string(k.shape()), ", value=", to_string(v.shape()));
  TG_CHECK(a.num_heads > 0 && E % a.num_heads == 0, op, "embed dim ", E, " is not divisible by num_heads=", a.num_heads);
  Plan p{op, {N, a.num_heads, L, S, E / a.num_heads}, {q, k, v}, 0, 1, 2, {}, {}, {}, {}, q.shape(), a.attn_mask, {}, {}};
  const int64_t D = p.dims.D;
  p.ql = seq_layout(a.batch_first, L, N, E, 0, D);
  p.kl = seq_layout(a.batch_first, S, N, E, 0, D);
  p.vl = p.kl;
  p.ol = p.ql;
  if (p.mask.defined()) p.inputs.push_back(p.mask);
  check_mask(p);
  prepare_dropout(p, a);
  return run(std::move(p));
}

Var fused_attention_packed(const Var& qkv, const AttentionArgs& a) {
  const char* op = "fused_attention_packed";
  check_defined(op, "qkv", qkv);
  TG_CHECK(is_floating(qkv.dtype()) && qkv.dim() == 3 && qkv.size(2) % 3 == 0, op,
           "qkv must be a float (T, N, 3E) tensor; got qkv=", describe(qkv.value()));
  const int64_t N = qkv.size(a.batch_first ? 0 : 1), L = qkv.size(a.batch_first ? 1 : 0), E = qkv.size(2) / 3;
  TG_CHECK(a.num_heads > 0 && E % a.num_heads == 0, op, "embed dim ", E, " is not divisible by num_heads=", a.num_heads);
  Shape out_shape = qkv.shape();
  out_shape[2] = E;
  Plan p{op, {N, a.num_heads, L, L, E / a.num_heads}, {qkv}, 0, 0, 0, {}, {}, {}, {}, out_shape, a.attn_mask, {}, {}};
  const int64_t D = p.dims.D;
  p.ql = seq_layout(a.batch_first, L, N, 3 * E, 0, D);
  p.kl = seq_layout(a.batch_first, L, N, 3 * E, E, D);
  p.vl = seq_layout(a.batch_first, L, N, 3 * E, 2 * E, D);
  p.ol = seq_layout(a.batch_first, L, N, E, 0, D);
  if (p.mask.defined()) p.inputs.push_back(p.mask);
  check_mask(p);
  prepare_dropout(p, a);
  return run(std::move(p));
}

Var scaled_dot_product_attention(const Var& q, const Var& k, const Var& v, const Var& attn_mask, double dropout_p,
                                 bool is_causal, Generator* generator) {
  const char* op = "scaled_dot_product_attention";
  check_qkv(op, q, k, v);
  TG_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op, "query, key and value must be (N, H, T, D); got query=",
           to_string(q.shape()), ", key=", to_string(k.shape()), ", value=", to_string(v.shape()));
  const int64_t N = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3), S = k.size(2);
  TG_CHECK(k.shape() == v.shape() && k.size(0) == N && k.size(1) == H && k.size(3) == D, op,
           "key and value must be (N, H, S, D) matching query (N, H, L, D); got query=", to_string(q.shape()),
           ", key=", to_string(k.shape()), ", value=", to_string(v.shape()));
  Plan p{op, {N, H, L, S, D}, {q, k, v}, 0, 1, 2, {}, {}, {}, {}, q.shape(), attn_mask, {}, {}};
  p.ql = {0, H * L * D, L * D, D};
  p.kl = {0, H * S * D, S * D, D};
  p.vl = p.kl;
  p.ol = p.ql;
  if (p.mask.defined()) p.inputs.push_back(p.mask);
  check_mask(p);
  AttentionArgs a;
  a.dropout_p = dropout_p;
  a.is_causal = is_causal;
  a.generator = generator;
  prepare_dropout(p, a);
  return run(std::move(p));
}

}  // namespace tg
