#include "tapegrad/framework/shape.h"

#include <algorithm>

#include "tapegrad/framework/check.h"
#include "tapegrad/framework/dtype.h"

namespace tg {

std::string to_string(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return "unknown";
}

int64_t element_size(DType d) {
  switch (d) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
  }
  return 0;
}

std::string to_string(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

std::optional<int64_t> try_numel(const Shape& s) {
  // bound: the product with zero sizes counted as 1, so every partial product fits as well
  int64_t n = 1, bound = 1;
  for (int64_t d : s) {
    if (d < 0 || __builtin_mul_overflow(bound, d == 0 ? 1 : d, &bound)) return std::nullopt;
    n = d == 0 ? 0 : n * d;   // n <= bound
  }
  return n;
}

int64_t numel(const Shape& s, const char* op) {
  if (std::optional<int64_t> n = try_numel(s)) return *n;
  for (size_t i = 0; i < s.size(); ++i)
    TG_CHECK(s[i] >= 0, op, "negative size ", s[i], " at dim ", i, "; got shape=", to_string(s));
  detail::fail_invalid(op, "the number of elements overflows int64; got shape=", to_string(s));
}

size_t nbytes(const Shape& s, DType d, const char* op) {
  int64_t n = numel(s, op), bytes = 0;
  TG_CHECK(!__builtin_mul_overflow(n, element_size(d), &bytes) && bytes <= kMaxTensorBytes, op, "a ", to_string(d),
           " tensor of ", n, " elements exceeds the size limit of ", kMaxTensorBytes, " bytes; got shape=",
           to_string(s));
  return static_cast<size_t>(bytes);
}

Shape strides_of(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    TG_CHECK(da == db || da == 1 || db == 1, op, "shapes cannot be broadcast; got a=", to_string(a),
             ", b=", to_string(b));
    out[i] = da == 1 ? db : da;
  }
  numel(out, op);   // a result too large to count (sizes from two tensors multiply)
  return out;
}

int64_t normalize_dim(const char* op, int64_t dim, int64_t rank) {
  int64_t lim = rank == 0 ? 1 : rank;
  TG_CHECK(dim >= -lim && dim < lim, op, "dim ", dim, " out of range for a ", rank, "-d tensor");
  return dim < 0 ? dim + lim : dim;
}

}  // namespace tg
