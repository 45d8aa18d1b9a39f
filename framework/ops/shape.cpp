#include "tapegrad/framework/ops/shape.h"

#include <algorithm>
#include <string>

#include "tapegrad/framework/check.h"
#include "framework/kernels/broadcast.h"
#include "framework/kernels/permute.h"
#include "framework/kernels/reduce.h"

namespace tg {
namespace {

// Normalises the argument `name` (a dim of x, -rank <= d < rank; a 0-d x accepts 0 and -1).
int64_t dim_arg(const char* op, const char* name, int64_t d, const Shape& s) {
  int64_t rank = static_cast<int64_t>(s.size()), lim = rank == 0 ? 1 : rank;
  TG_CHECK(d >= -lim && d < lim, op, name, " ", d, " out of range for a ", rank, "-d tensor; got x=", to_string(s));
  return d < 0 ? d + lim : d;
}

// A view of x with a new shape of the same numel; the gradient is reshaped back.
Var view_as(const char* op, const Var& x, Shape shape) {
  Tensor y = x.value().reshape(std::move(shape));
  return record(op, y, {x}, [xs = x.shape()](const Tensor& gy, Grads& g) { g.add(0, gy.reshape(xs)); });
}

int64_t outer_size(const Shape& s, int64_t dim) {
  int64_t n = 1;
  for (int64_t i = 0; i < dim; ++i) n *= s[static_cast<size_t>(i)];
  return n;
}

// x[.., start : start + length * step : step, ..] along dim (a range already checked): a view when
// step is 1 and every dim before `dim` has size 1, else a copy.
Tensor take_slabs(const Tensor& x, int64_t dim, int64_t start, int64_t length, int64_t step) {
  Shape os = x.shape();
  os[static_cast<size_t>(dim)] = length;
  if (step == 1 && outer_size(x.shape(), dim) == 1) {
    // [1, .., 1, n, *R] -> [n, numel(R)] -> rows start..start+length-1 -> [1, .., 1, length, *R]
    Shape rest(x.shape().begin() + dim + 1, x.shape().end());
    return x.reshape({x.size(dim), numel(rest)}).rows(start, start + length).reshape(os);
  }
  Tensor y(os, x.dtype());
  kernels::copy_slabs(x, start, step, y, 0, 1, dim, length);
  return y;
}

// The op behind narrow, slice and split: one strided range along dim; the gradient is written back
// into a zero tensor of x's shape.
Var slabs(const char* op, const Var& x, int64_t dim, int64_t start, int64_t length, int64_t step) {
  Tensor y = take_slabs(x.value(), dim, start, length, step);
  return record(op, y, {x}, [xs = x.shape(), dim, start, length, step](const Tensor& gy, Grads& g) {
    Tensor dx = Tensor::zeros(xs, gy.dtype());
    kernels::copy_slabs(gy, 0, 1, dx, start, step, dim, length);
    g.add(0, dx);
  });
}

// Checks an int64 index tensor against [0, size); `what` names the checked range in the message.
void check_indices(const char* op, const Tensor& index, int64_t size, const std::string& what, const std::string& got) {
  const int64_t* p = index.data<int64_t>();
  for (int64_t k = 0; k < index.numel(); ++k)
    TG_CHECK(p[k] >= 0 && p[k] < size, op, "index ", p[k], " out of range for ", what, "; got ", got);
}

}  // namespace

Var reshape(const Var& x, Shape shape) {
  check_defined("reshape", "x", x);
  return view_as("reshape", x, std::move(shape));
}

Var flatten(const Var& x, int64_t start_dim, int64_t end_dim) {
  check_defined("flatten", "x", x);
  const Shape& s = x.shape();
  int64_t a = dim_arg("flatten", "start_dim", start_dim, s), b = dim_arg("flatten", "end_dim", end_dim, s);
  TG_CHECK(a <= b, "flatten", "start_dim cannot come after end_dim; got start_dim=", start_dim,
           ", end_dim=", end_dim, ", x=", to_string(s));
  if (s.empty()) return view_as("flatten", x, {1});
  Shape out(s.begin(), s.begin() + a);
  out.push_back(numel(Shape(s.begin() + a, s.begin() + b + 1)));
  out.insert(out.end(), s.begin() + b + 1, s.end());
  return view_as("flatten", x, out);
}

Var unsqueeze(const Var& x, int64_t dim) {
  check_defined("unsqueeze", "x", x);
  int64_t rank = x.dim();
  TG_CHECK(dim >= -rank - 1 && dim <= rank, "unsqueeze", "dim ", dim, " out of range [", -rank - 1, ", ", rank,
           "]; got x=", to_string(x.shape()));
  Shape out = x.shape();
  out.insert(out.begin() + (dim < 0 ? dim + rank + 1 : dim), 1);
  return view_as("unsqueeze", x, out);
}

Var squeeze(const Var& x, int64_t dim) {
  check_defined("squeeze", "x", x);
  int64_t d = dim_arg("squeeze", "dim", dim, x.shape());
  Shape out = x.shape();
  if (!out.empty() && out[static_cast<size_t>(d)] == 1) out.erase(out.begin() + d);
  return view_as("squeeze", x, out);
}

Var transpose(const Var& x, int64_t dim0, int64_t dim1) {
  check_defined("transpose", "x", x);
  int64_t a = dim_arg("transpose", "dim0", dim0, x.shape()), b = dim_arg("transpose", "dim1", dim1, x.shape());
  std::vector<int64_t> dims(static_cast<size_t>(x.dim()));
  for (size_t i = 0; i < dims.size(); ++i) dims[i] = static_cast<int64_t>(i);
  if (!dims.empty()) std::swap(dims[static_cast<size_t>(a)], dims[static_cast<size_t>(b)]);
  // The swap is its own inverse: the gradient goes through the same permutation.
  Tensor y = kernels::permute(x.value(), dims);
  return record("transpose", y, {x}, [dims](const Tensor& gy, Grads& g) { g.add(0, kernels::permute(gy, dims)); });
}

Var permute(const Var& x, const std::vector<int64_t>& dims) {
  check_defined("permute", "x", x);
  int64_t rank = x.dim();
  std::vector<int64_t> nd;
  for (int64_t d : dims) nd.push_back(d < 0 && d >= -rank ? d + rank : d);
  bool ok = static_cast<int64_t>(dims.size()) == rank;
  for (size_t i = 0; ok && i < nd.size(); ++i)
    ok = nd[i] >= 0 && nd[i] < rank && std::count(nd.begin(), nd.end(), nd[i]) == 1;
  TG_CHECK(ok, "permute", "dims must list each of the ", rank, " dims once; got dims=", to_string(dims),
           ", x=", to_string(x.shape()));
  std::vector<int64_t> inverse(nd.size());
  for (size_t i = 0; i < nd.size(); ++i) inverse[static_cast<size_t>(nd[i])] = static_cast<int64_t>(i);
  Tensor y = kernels::permute(x.value(), nd);
  return record("permute", y, {x},
                [inverse](const Tensor& gy, Grads& g) { g.add(0, kernels::permute(gy, inverse)); });
}

Var expand(const Var& x, const Shape& shape) {
  check_defined("expand", "x", x);
  const Shape& s = x.shape();
  auto got = [&] { return "; got x=" + to_string(s) + ", shape=" + to_string(shape); };
  TG_CHECK(shape.size() >= s.size(), "expand", "shape has fewer dims than x", got());
  size_t lead = shape.size() - s.size();
  Shape out(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      TG_CHECK(shape[i] != -1, "expand", "-1 is not allowed in the leading new dim ", i, got());
      TG_CHECK(shape[i] >= 0, "expand", "invalid size ", shape[i], " at dim ", i, got());
      out[i] = shape[i];
      continue;
    }
    int64_t have = s[i - lead];
    out[i] = shape[i] == -1 ? have : shape[i];
    TG_CHECK(shape[i] >= -1, "expand", "invalid size ", shape[i], " at dim ", i, got());
    TG_CHECK(out[i] == have || have == 1, "expand", "the expanded size ", out[i], " must match the existing size ",
             have, " at non-singleton dim ", i, got());
  }
  TG_CHECK(try_numel(out).has_value(), "expand", "the number of elements overflows int64", got());
  try {
    nbytes(out, x.dtype(), "expand");   // the result must be allocatable
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(e.what() + got());
  }
  Tensor y = kernels::expand(x.value(), out);
  return record("expand", y, {x}, [s](const Tensor& gy, Grads& g) { g.add(0, kernels::sum_to(gy, s)); });
}

Var concat(const std::vector<Var>& xs, int64_t dim) {
  TG_CHECK(!xs.empty(), "concat", "expected a non-empty list of tensors");
  auto name = [](size_t i) { return "xs[" + std::to_string(i) + "]="; };
  std::vector<size_t> used;   // inputs taking part (PyTorch 1.13 skips 1-d empty tensors)
  for (size_t i = 0; i < xs.size(); ++i) {
    check_defined("concat", ("xs[" + std::to_string(i) + "]").c_str(), xs[i]);
    TG_CHECK(xs[i].dtype() == xs[0].dtype(), "concat", "all tensors must have one dtype; got ", name(0),
             describe(xs[0].value()), ", ", name(i), describe(xs[i].value()));
    TG_CHECK(xs[i].dim() > 0, "concat", "a 0-d tensor cannot be concatenated; got ", name(i), "[]");
    if (!(xs[i].dim() == 1 && xs[i].numel() == 0)) used.push_back(i);
  }
  if (used.empty())   // nothing but skipped empty tensors: an empty result with no gradient to pass on
    return record("concat", Tensor::empty({0}, xs[0].dtype()), xs, [](const Tensor&, Grads&) {});
  const Shape& ref = xs[used[0]].shape();
  int64_t d = dim_arg("concat", "dim", dim, ref), total = 0;
  for (size_t i : used) {
    const Shape& s = xs[i].shape();
    TG_CHECK(s.size() == ref.size(), "concat", "tensors must have the same number of dims; got ", name(used[0]),
             to_string(ref), ", ", name(i), to_string(s));
    for (size_t k = 0; k < s.size(); ++k)
      TG_CHECK(static_cast<int64_t>(k) == d || s[k] == ref[k], "concat", "sizes must match except in dim ", d,
               "; got ", name(used[0]), to_string(ref), ", ", name(i), to_string(s));
    TG_CHECK(!__builtin_add_overflow(total, s[static_cast<size_t>(d)], &total), "concat",
             "the concatenated size of dim ", d, " overflows int64; got ", name(i), to_string(s));
  }
  Shape os = ref;
  os[static_cast<size_t>(d)] = total;
  Tensor y(os, xs[0].dtype(), "concat");
  std::vector<int64_t> offset(xs.size(), 0), length(xs.size(), 0);
  int64_t at = 0;
  for (size_t i : used) {
    offset[i] = at;
    length[i] = xs[i].size(d);
    kernels::copy_slabs(xs[i].value(), 0, 1, y, at, 1, d, length[i]);
    at += length[i];
  }
  return record("concat", y, xs, [d, offset, length, used](const Tensor& gy, Grads& g) {
    for (size_t i : used)
      if (g.wants(i)) g.add(i, take_slabs(gy, d, offset[i], length[i], 1));
  });
}

std::vector<Var> split(const Var& x, int64_t split_size, int64_t dim) {
  check_defined("split", "x", x);
  TG_CHECK(x.dim() > 0, "split", "cannot split a 0-d tensor; got x=[]");
  int64_t d = dim_arg("split", "dim", dim, x.shape()), n = x.size(d);
  TG_CHECK(split_size >= 0, "split", "split_size must be non-negative; got split_size=", split_size);
  TG_CHECK(split_size > 0 || n == 0, "split", "split_size can only be 0 if the dim size is 0; got split_size=",
           split_size, ", dim ", d, " of x=", to_string(x.shape()));
  std::vector<int64_t> sizes;
  for (int64_t at = 0; at < n; at += sizes.back()) sizes.push_back(std::min(split_size, n - at));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, d);
}

std::vector<Var> split(const Var& x, const std::vector<int64_t>& split_sizes, int64_t dim) {
  check_defined("split", "x", x);
  TG_CHECK(x.dim() > 0, "split", "cannot split a 0-d tensor; got x=[]");
  int64_t d = dim_arg("split", "dim", dim, x.shape()), n = x.size(d), total = 0;
  bool ok = true;
  for (int64_t s : split_sizes) ok = ok && s >= 0 && !__builtin_add_overflow(total, s, &total);
  TG_CHECK(ok && total == n, "split", "split_sizes must be non-negative and sum to ", n, ", the size of dim ", d,
           "; got split_sizes=", to_string(split_sizes), ", x=", to_string(x.shape()));
  std::vector<Var> pieces;
  int64_t at = 0;
  for (int64_t s : split_sizes) {
    pieces.push_back(slabs("split", x, d, at, s, 1));
    at += s;
  }
  return pieces;
}

Var narrow(const Var& x, int64_t dim, int64_t start, int64_t length) {
  check_defined("narrow", "x", x);
  TG_CHECK(x.dim() > 0, "narrow", "cannot narrow a 0-d tensor; got x=[]");
  int64_t d = dim_arg("narrow", "dim", dim, x.shape()), n = x.size(d);
  std::string got = "; got x=" + to_string(x.shape());
  TG_CHECK(start >= -n && start <= n, "narrow", "start ", start, " out of range for dim ", d, " of size ", n, got);
  TG_CHECK(length >= 0, "narrow", "length must be non-negative; got length=", length, ", x=", to_string(x.shape()));
  int64_t s = start < 0 ? start + n : start;
  TG_CHECK(length <= n - s, "narrow", "start ", s, " + length ", length, " exceeds the size ", n, " of dim ", d, got);
  return slabs("narrow", x, d, s, length, 1);
}

Var slice(const Var& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check_defined("slice", "x", x);
  TG_CHECK(x.dim() > 0, "slice", "cannot slice a 0-d tensor; got x=[]");
  TG_CHECK(step > 0, "slice", "step must be positive; got step=", step, ", x=", to_string(x.shape()));
  int64_t d = dim_arg("slice", "dim", dim, x.shape()), n = x.size(d);
  auto clamp = [n](int64_t i) { return std::clamp(i < 0 ? (i < -n ? 0 : i + n) : i, int64_t{0}, n); };
  int64_t a = clamp(start), b = clamp(end);
  int64_t length = b > a ? 1 + (b - a - 1) / step : 0;   // no overflow for any step
  return slabs("slice", x, d, a, length, step);
}

Var index_select(const Var& x, int64_t dim, const Tensor& index) {
  check_defined("index_select", "x", x);
  check_defined("index_select", "index", index);
  TG_CHECK(index.dtype() == DType::Int64 && index.dim() <= 1, "index_select",
           "index must be an int64 tensor with at most one dim; got index=", describe(index));
  int64_t d = dim_arg("index_select", "dim", dim, x.shape()), m = index.numel();
  bool scalar = x.dim() == 0;
  TG_CHECK(!scalar || m == 1, "index_select", "a 0-d x takes exactly one index; got x=[], index=",
           to_string(index.shape()));
  Tensor xv = scalar ? x.value().reshape({1}) : x.value();   // 0-d: as [1]
  int64_t n = xv.size(d);
  Shape os = xv.shape();
  os[static_cast<size_t>(d)] = m;
  nbytes(os, x.dtype(), "index_select");   // [.., m, ..]: m rows of x may be far more than x
  check_indices("index_select", index, n, "dim " + std::to_string(d) + " of size " + std::to_string(n),
                "x=" + to_string(x.shape()) + ", index=" + to_string(index.shape()));
  Tensor y = kernels::gather_slabs(xv, d, index.data<int64_t>(), m);
  if (scalar) y = y.reshape({});
  return record("index_select", y, {x}, [xs = x.shape(), d, n, index](const Tensor& gy, Grads& g) {
    Shape gs = xs.empty() ? Shape{1} : xs;
    gs[static_cast<size_t>(d)] = index.numel();
    // Rows of gy go back to x's rows, repeated indices adding in increasing position.
    g.add(0, kernels::scatter_add_slabs(gy.reshape(gs), d, index.data<int64_t>(), n).reshape(xs));
  }, {index});
}

Var embedding(const Var& weight, const Tensor& indices, std::optional<int64_t> padding_idx) {
  check_defined("embedding", "weight", weight);
  check_defined("embedding", "indices", indices);
  TG_CHECK(weight.dim() == 2, "embedding", "weight must be 2-d; got weight=", to_string(weight.shape()));
  TG_CHECK(indices.dtype() == DType::Int64, "embedding", "indices must be int64; got indices=", describe(indices));
  int64_t N = weight.size(0), D = weight.size(1), M = indices.numel();
  std::string got = "weight=" + to_string(weight.shape());
  int64_t pad = -1;
  if (padding_idx) {
    TG_CHECK(*padding_idx >= -N && *padding_idx < N, "embedding", "padding_idx ", *padding_idx,
             " out of range for num_embeddings=", N, "; got ", got);
    pad = *padding_idx < 0 ? *padding_idx + N : *padding_idx;
  }
  check_indices("embedding", indices, N, "num_embeddings=" + std::to_string(N),
                got + ", indices=" + to_string(indices.shape()));
  Shape os = indices.shape();
  os.push_back(D);
  nbytes(os, weight.dtype(), "embedding");   // [*I, D]
  // [*I] indices -> [M, D] rows of weight -> [*I, D]
  Tensor y = kernels::gather_slabs(weight.value(), 0, indices.data<int64_t>(), M).reshape(os);
  return record("embedding", y, {weight}, [indices, N, D, M, pad](const Tensor& gy, Grads& g) {
    // [*I, D] -> [M, D], scattered into the [N, D] weight gradient; the padding row stays zero.
    g.add(0, kernels::scatter_add_slabs(gy.reshape({M, D}), 0, indices.data<int64_t>(), N, pad));
  }, {indices});
}

}  // namespace tg
