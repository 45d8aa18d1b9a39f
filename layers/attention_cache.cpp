// AttentionCache and MultiheadAttention::forward_step: incremental decoding over cached keys/values.
#include "tapegrad/layers/attention_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/ops/attention.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/multihead_attention.h"

namespace tg {

AttentionCache AttentionCache::self_attention(int64_t max_length) {
  TG_CHECK(max_length >= 0, "AttentionCache", "max_length must be >= 0 (0: unbounded); got max_length=", max_length);
  return AttentionCache(Kind::self_attention, max_length);
}

AttentionCache AttentionCache::cross_attention() { return AttentionCache(Kind::cross_attention, 0); }

void AttentionCache::reset() {
  key_buf_ = Tensor();
  value_buf_ = Tensor();
  written_.reset();
  length_ = 0;
  batched_ = true;
}

namespace {

// Rows [0, length) of a (capacity, N, E) buffer as (N, length, E): a view for N = 1, else a copy.
Tensor batch_major_prefix(const Tensor& buf, int64_t length) {
  if (!buf.defined()) return Tensor();
  Tensor seq = buf.rows(0, length);   // (S, N, E)
  if (buf.size(1) == 1) return seq.reshape({1, length, buf.size(2)});
  return permute(Var(seq), {1, 0, 2}).value();
}

// Writes `rows` into buf from row `at` on. Those rows are nobody else's (see append): no keys() or
// values() view shows them, so no tensor an op saved changes, and the buffer's version
// (Tensor::version) stays; a backward through attention over an earlier keys() view still runs.
void write_rows(const Tensor& buf, int64_t at, const Tensor& rows) {
  Tensor dst = buf.rows(at, at + rows.size(0));
  if (rows.dtype() != dst.dtype() || rows.shape() != dst.shape()) {
    dst.copy_(rows);   // converts, or throws copy_'s shape error
    return;
  }
  if (rows.numel() > 0) std::memcpy(dst.raw(), rows.raw(), rows.nbytes());
}

}  // namespace

Tensor AttentionCache::keys() const { return batch_major_prefix(key_buf_, length_); }
Tensor AttentionCache::values() const { return batch_major_prefix(value_buf_, length_); }

void AttentionCache::append(const Tensor& k, const Tensor& v) {
  const int64_t need = length_ + k.size(0);
  // Rows from length_ on that some copy has written may be read by it (a fork that stepped first) or
  // through a keys()/values() view: while anyone else holds the buffers, this copy then writes into
  // buffers of its own. Rows no copy wrote (a rolled-back step's are rewritten by its copy alone, once
  // the copy saved for the rollback is gone) are free.
  const bool overwrites_shared = !empty() && length_ < *written_ &&
                                 (key_buf_.storage_use_count() > 1 || value_buf_.storage_use_count() > 1);
  if (empty() || need > key_buf_.size(0) || overwrites_shared) {
    // A cross-attention cache is filled once; a self-attention cache doubles (from 16 positions) so
    // that n steps copy O(n) rows in all, never past max_length (the caller checked need <= it). A copy
    // taken on write keeps the capacity.
    int64_t capacity = need;
    if (kind_ == Kind::self_attention) {
      const int64_t had = empty() ? 0 : key_buf_.size(0);
      capacity = std::max<int64_t>({need, 16, need > had ? 2 * had : had});
      if (max_length_ > 0) capacity = std::min(capacity, max_length_);
    }
    Tensor kb({capacity, k.size(1), k.size(2)}, k.dtype()), vb({capacity, v.size(1), v.size(2)}, v.dtype());
    if (length_ > 0) {
      kb.rows(0, length_).copy_(key_buf_.rows(0, length_));
      vb.rows(0, length_).copy_(value_buf_.rows(0, length_));
    }
    key_buf_ = kb;
    value_buf_ = vb;
    written_ = std::make_shared<int64_t>(length_);
  }
  write_rows(key_buf_, length_, k);
  write_rows(value_buf_, length_, v);
  length_ = need;
  // Alone with the buffers, the rows past this copy's length are nobody's.
  const bool alone = key_buf_.storage_use_count() == 1 && value_buf_.storage_use_count() == 1;
  *written_ = alone ? need : std::max(*written_, need);
}

namespace {

std::string shape_of(const Var& v) { return v.defined() ? to_string(v.shape()) : std::string("undefined"); }

// (L, N, F) seq-first, (N, L, F) batch-first or (L, F) unbatched -> (L, N, F), the cache's layout
// (a reshape, not a copy, when N = 1 or L = 1).
Var to_seq_major(const Var& x, bool batched, bool batch_first) {
  if (!batched) return reshape(x, {x.size(0), 1, x.size(1)});
  if (!batch_first) return x;
  if (x.size(0) == 1 || x.size(1) == 1) return reshape(x, {x.size(1), x.size(0), x.size(2)});
  return permute(x, {1, 0, 2});
}

// (L, N, E) -> the caller's layout
Var from_seq_major(const Var& y, bool batched, bool batch_first) {
  if (!batched) return reshape(y, {y.size(0), y.size(2)});
  if (!batch_first) return y;
  if (y.size(0) == 1 || y.size(1) == 1) return reshape(y, {y.size(1), y.size(0), y.size(2)});
  return permute(y, {1, 0, 2});
}

// -inf where key j > P + i (query i of a step starting at cached length P), 0 elsewhere: (L, S).
Tensor offset_causal_mask(int64_t L, int64_t S, int64_t P, DType dtype) {
  Tensor m = Tensor::zeros({L, S}, dtype);
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = P + i + 1; j < S; ++j) m.set({i, j}, -std::numeric_limits<double>::infinity());
  return m;
}

// A cache is bound by its first use to batched/unbatched input, a batch size and a dtype.
void check_binding(const char* n, const AttentionCache& cache, const MhaShapes& s, const Var& query) {
  if (cache.empty()) return;
  TG_CHECK(cache.batched() == s.batched, n, "forward_step: the cache was filled with ",
           cache.batched() ? "batched" : "unbatched", " input; got query=", shape_of(query));
  TG_CHECK(cache.batch_size() == s.N, n, "forward_step: the cache holds batch size ", cache.batch_size(),
           "; got query=", shape_of(query), " (batch size ", s.N, ")");
  TG_CHECK(cache.dtype() == query.dtype(), n, "forward_step: the cache holds ", to_string(cache.dtype()),
           "; got query=", describe(query.value()));
}

// The step's additive mask over the S cached keys: the caller's masks, plus the causal rule with offset
// `past` for a self-attention cache.
Var step_mask(const std::string& op, const MhaShapes& s, int64_t S, int64_t past, bool self_kind, int64_t H, DType dtype,
              const MultiheadAttentionStepOptions& f) {
  const char* n = op.c_str();
  if (f.attn_mask.defined())
    TG_CHECK(f.attn_mask.shape() == (Shape{s.L, S}), n, "forward_step: attn_mask must be (L_step, S_total)=",
             to_string(Shape{s.L, S}), "; got attn_mask=", shape_of(f.attn_mask));
  if (f.key_padding_mask.defined()) {
    Shape want = s.batched ? Shape{s.N, S} : Shape{S};
    TG_CHECK(f.key_padding_mask.shape() == want, n, "forward_step: key_padding_mask must be ",
             s.batched ? "(N, S_total)=" : "(S_total)=", to_string(want), "; got key_padding_mask=",
             shape_of(f.key_padding_mask));
  }
  for (const Var* m : {&f.attn_mask, &f.key_padding_mask})
    TG_CHECK(!m->defined() || m->dtype() == DType::Bool || is_floating(m->dtype()), n,
             "forward_step: masks must be bool or floating; got ", describe(m->value()));
  const MhaShapes full{.batched = s.batched, .N = s.N, .L = s.L, .S = S};
  Var mask = build_attention_mask(op, full, H, dtype, f.attn_mask, f.key_padding_mask, false, 0);
  if (self_kind && s.L > 1) {
    Var c(offset_causal_mask(s.L, S, past, dtype).reshape({1, 1, s.L, S}));
    mask = mask.defined() ? mask + c : c;
  }
  return mask;
}

}  // namespace

Var MultiheadAttention::project_step(const Var& x, int64_t which) const {
  // Inference only: the row block of in_proj_weight (3E, E) / in_proj_bias (3E) is a view, not a copy.
  const int64_t E = options_.embed_dim;
  const Var& b = in_proj_bias();
  Var bias = b.defined() ? Var(b.value().rows(which * E, (which + 1) * E)) : Var();
  if (packed_) return linear(x, Var(in_proj_weight().value().rows(which * E, (which + 1) * E)), bias);
  return linear(x, which == 0 ? q_proj_weight() : which == 1 ? k_proj_weight() : v_proj_weight(), bias);
}

Var MultiheadAttention::forward_step(const Var& query, const Var& key, const Var& value, AttentionCache& cache,
                                     const MultiheadAttentionStepOptions& f) {
  NoGradGuard no_grad;
  const auto& o = options_;
  const std::string op = error_op("MultiheadAttention");
  const char* n = op.c_str();
  TG_CHECK(!o.add_bias_kv && !o.add_zero_attn, n, "forward_step does not support add_bias_kv or add_zero_attn");
  const bool self_kind = cache.kind() == AttentionCache::Kind::self_attention;
  const bool project_kv = self_kind || cache.empty();
  TG_CHECK(query.defined() && (query.dim() == 2 || query.dim() == 3), n,
           "forward_step: query must be unbatched 2-D (L, E) or batched 3-D; got query=", shape_of(query));
  Var k = key.defined() ? key : query, v = value.defined() ? value : k;
  if (project_kv) {
    TG_CHECK(key.defined() && value.defined(), n, "forward_step: key and value are required ",
             self_kind ? "for a self-attention cache" : "to fill an empty cross-attention cache");
  }
  if (!project_kv && !key.defined()) {
    // Memory already projected and not passed again: a one-position stand-in keeps the query checks.
    Shape ks = query.shape();
    ks[ks.size() - 1] = o.kdim.value_or(o.embed_dim);
    ks[(query.dim() == 3 && o.batch_first) ? 1 : 0] = 1;
    k = Var(Tensor::zeros(ks, query.dtype()));
    ks[ks.size() - 1] = o.vdim.value_or(o.embed_dim);
    v = Var(Tensor::zeros(ks, query.dtype()));
  }
  const MhaShapes s =
      check_mha_inputs(op, o, packed_ ? in_proj_weight().dtype() : q_proj_weight().dtype(), query, k, v, Var(), Var());
  if (self_kind)
    TG_CHECK(s.S == s.L, n, "forward_step with a self-attention cache: key and value must hold the same positions ",
             "as query; got query=", shape_of(query), ", key=", shape_of(key));
  const DType dtype = query.dtype();
  check_binding(n, cache, s, query);
  const int64_t past = self_kind ? cache.length() : 0;
  if (self_kind && cache.max_length() > 0)
    TG_CHECK(past + s.L <= cache.max_length(), n, "forward_step: the step would pass the cache's max_length=",
             cache.max_length(), "; got cached=", past, ", query=", shape_of(query));
  // Checked and built before the cache changes, so a rejected step leaves the cache as it was.
  const int64_t S_total = self_kind ? past + s.L : (project_kv ? s.S : cache.length());
  Var mask = step_mask(op, s, S_total, past, self_kind, o.num_heads, dtype, f);
  const bool bf = s.batched && o.batch_first;
  const int64_t E = o.embed_dim;
  Var xq = to_seq_major(query, s.batched, bf), q;   // (L, N, E)
  if (project_kv && packed_ && self_kind && key.same(query) && value.same(query)) {
    // Self-attention on one input: q, k and v from one product with in_proj_weight, as forward does.
    Var qkv = linear(xq, in_proj_weight(), in_proj_bias());   // (L, N, 3E)
    q = narrow(qkv, 2, 0, E);
    cache.append(narrow(qkv, 2, E, E).value(), narrow(qkv, 2, 2 * E, E).value());
  } else {
    q = project_step(xq, 0);
    if (project_kv)
      cache.append(project_step(to_seq_major(k, s.batched, bf), 1).value(),    // (S_new, N, E)
                   project_step(to_seq_major(v, s.batched, bf), 2).value());
  }
  if (project_kv) cache.batched_ = s.batched;
  // The cached positions are a prefix view of the cache's buffers, (S_total, N, E).
  Var keys(cache.key_buf_.rows(0, cache.length_)), values(cache.value_buf_.rows(0, cache.length_));
  Var attended = fused_attention(q, keys, values,
                                 AttentionArgs{.num_heads = o.num_heads, .batch_first = false, .attn_mask = mask});
  return from_seq_major(out_proj->forward(attended), s.batched, bf);
}

}  // namespace tg
