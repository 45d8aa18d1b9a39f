#include "tapegrad/framework/shape.h"

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

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
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
  return out;
}

int64_t normalize_dim(const char* op, int64_t dim, int64_t rank) {
  int64_t lim = rank == 0 ? 1 : rank;
  TG_CHECK(dim >= -lim && dim < lim, op, "dim ", dim, " out of range for a ", rank, "-d tensor");
  return dim < 0 ? dim + lim : dim;
}

}  // namespace tg
