#include "tapegrad/framework/tensor.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <type_traits>

#include "tapegrad/framework/check.h"
#include "framework/kernels/allocator.h"
#include "framework/kernels/parallel.h"

namespace tg {

Storage::Storage(size_t bytes) : ptr_(kernels::allocate(bytes)), bytes_(bytes) {}
Storage::~Storage() { kernels::release(ptr_, bytes_); }

namespace {

template <class F> void dispatch_all(DType d, F&& f) {
  switch (d) {
    case DType::Float32: f(TypeTag<float>{}); return;
    case DType::Float64: f(TypeTag<double>{}); return;
    case DType::Int64: f(TypeTag<int64_t>{}); return;
    case DType::Bool: f(TypeTag<bool>{}); return;
  }
}

// A double stored into an int64 tensor must be representable (NaN or out of range is UB in C++).
int64_t to_int64(const char* op, double v) {
  TG_CHECK(v >= -9223372036854775808.0 && v < 9223372036854775808.0, op, "value ", v, " does not fit in int64");
  return static_cast<int64_t>(v);
}

// Element i of t as double / set from double, unchecked index (callers check once per call).
double read_at(const Tensor& t, int64_t i) {
  double v = 0;
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    v = static_cast<double>(static_cast<const T*>(t.raw())[i]);
  });
  return v;
}

void write_at(const char* op, Tensor& t, int64_t i, double value) {
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>) static_cast<T*>(t.raw())[i] = value != 0.0;
    else if constexpr (std::is_same_v<T, int64_t>) static_cast<T*>(t.raw())[i] = to_int64(op, value);
    else static_cast<T*>(t.raw())[i] = static_cast<T>(value);
  });
}

int64_t flat_index(const char* op, const Tensor& t, const std::vector<int64_t>& index) {
  if (!t.defined()) detail::fail_logic(op, "called on an undefined Tensor");
  TG_CHECK(static_cast<int64_t>(index.size()) == t.dim(), op, "index has ", index.size(),
           " entries for a tensor of shape ", to_string(t.shape()));
  int64_t flat = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    int64_t n = t.shape()[i], k = index[i] < 0 ? index[i] + n : index[i];
    TG_CHECK(k >= 0 && k < n, op, "index ", index[i], " out of range for dim ", i, " of shape ",
             to_string(t.shape()));
    flat = flat * n + k;
  }
  return flat;
}

// The shape is checked (and the values counted) before anything is allocated.
template <class V> Tensor sized_for(const char* op, const std::vector<V>& values, Shape shape, DType dtype) {
  int64_t n = numel(shape, op);
  TG_CHECK(static_cast<int64_t>(values.size()) == n, op, "got ", values.size(), " values for shape ", to_string(shape));
  return Tensor(std::move(shape), dtype, op);
}

}  // namespace

Tensor::Tensor(Shape shape, DType dtype) : Tensor(std::move(shape), dtype, "Tensor") {}

Tensor::Tensor(Shape shape, DType dtype, const char* op) : shape_(std::move(shape)), dtype_(dtype) {
  size_t bytes = tg::nbytes(shape_, dtype_, op);   // throws before any allocation
  numel_ = tg::numel(shape_);
  storage_ = std::make_shared<Storage>(bytes);
}

void Tensor::undefined_call(const char* op) { detail::fail_logic(op, "called on an undefined Tensor"); }

void check_defined(const char* op, const char* name, const Tensor& t) {
  TG_CHECK(t.defined(), op, name, " is an undefined Tensor");
}

Tensor Tensor::empty(Shape shape, DType dtype) { return Tensor(std::move(shape), dtype, "Tensor::empty"); }
// A new tensor starts at version 0, as in PyTorch: creation fills without counting a change.
Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t(std::move(shape), dtype, "Tensor::zeros");
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}
Tensor Tensor::ones(Shape shape, DType dtype) {
  Tensor t(std::move(shape), dtype, "Tensor::ones");
  t.fill_values("Tensor::ones", 1.0);
  return t;
}
Tensor Tensor::full(Shape shape, double value, DType dtype) {
  if (dtype == DType::Int64) to_int64("Tensor::full", value);   // before allocating
  Tensor t(std::move(shape), dtype, "Tensor::full");
  t.fill_values("Tensor::full", value);
  return t;
}
Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(int64_t end, DType dtype) { return arange(0.0, static_cast<double>(end), 1.0, dtype); }

Tensor Tensor::arange(double start, double end, double step, DType dtype) {
  TG_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step) && step != 0.0, "arange",
           "start, end and step must be finite and step nonzero; got start=", start, ", end=", end, ", step=", step);
  double count = std::ceil((end - start) / step);   // may be inf when end - start overflows
  TG_CHECK(count < 9223372036854775808.0, "arange", "too many elements (", count, "); got start=", start,
           ", end=", end, ", step=", step);
  Tensor t({count > 0 ? static_cast<int64_t>(count) : 0}, dtype, "arange");
  for (int64_t i = 0; i < t.numel(); ++i) write_at("arange", t, i, start + static_cast<double>(i) * step);
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, Shape shape, DType dtype) {
  Tensor t = sized_for("from_vector", values, std::move(shape), dtype);
  for (int64_t i = 0; i < t.numel(); ++i) write_at("from_vector", t, i, values[static_cast<size_t>(i)]);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, Shape shape) {
  Tensor t = sized_for("from_vector", values, std::move(shape), DType::Float32);
  if (t.nbytes()) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_vector(const std::vector<int64_t>& values, Shape shape) {
  Tensor t = sized_for("from_vector", values, std::move(shape), DType::Int64);
  if (t.nbytes()) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_bools(const std::vector<bool>& values, Shape shape) {
  Tensor t = sized_for("from_bools", values, std::move(shape), DType::Bool);
  bool* p = t.data<bool>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = values[static_cast<size_t>(i)];
  return t;
}

Tensor Tensor::uniform(Shape shape, double lo, double hi, Generator& gen, DType dtype) {
  dispatch_floating(dtype, "uniform", [](auto) {});   // the dtype before the allocation
  Tensor t(std::move(shape), dtype, "uniform");
  const auto [seed, first] = gen.reserve_blocks(static_cast<uint64_t>(t.numel()));
  dispatch_floating(dtype, "uniform", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    kernels::parallel_for(t.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        PhiloxBlock r = philox_block(seed, first + static_cast<uint64_t>(i));
        p[i] = static_cast<T>(lo + (hi - lo) * u01_from(r.w[0], r.w[1]));
      }
    });
  });
  return t;
}

Tensor Tensor::normal(Shape shape, double mean, double std, Generator& gen, DType dtype) {
  dispatch_floating(dtype, "normal", [](auto) {});
  Tensor t(std::move(shape), dtype, "normal");
  const auto [seed, first] = gen.reserve_blocks(static_cast<uint64_t>(t.numel()));
  dispatch_floating(dtype, "normal", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    kernels::parallel_for(t.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        // Box-Muller on the block's two 53-bit uniforms; u1 in (0, 1] keeps log finite.
        PhiloxBlock r = philox_block(seed, first + static_cast<uint64_t>(i));
        double u1 = 1.0 - u01_from(r.w[0], r.w[1]), u2 = u01_from(r.w[2], r.w[3]);
        double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
        p[i] = static_cast<T>(mean + std * z);
      }
    });
  });
  return t;
}

int64_t Tensor::size(int64_t d) const {
  if (!storage_) undefined_call("Tensor::size");
  TG_CHECK(dim() > 0, "Tensor::size", "a 0-d tensor has no dims; got d=", d);
  return shape_[static_cast<size_t>(normalize_dim("Tensor::size", d, dim()))];
}

double Tensor::flat(int64_t i) const {
  if (!storage_) undefined_call("Tensor::flat");
  TG_CHECK(i >= 0 && i < numel_, "Tensor::flat", "index ", i, " out of range for ", numel_, " elements; got shape ",
           to_string(shape_));
  return read_at(*this, i);
}

void Tensor::set_flat(int64_t i, double value) {
  if (!storage_) undefined_call("Tensor::set_flat");
  TG_CHECK(i >= 0 && i < numel_, "Tensor::set_flat", "index ", i, " out of range for ", numel_,
           " elements; got shape ", to_string(shape_));
  write_at("Tensor::set_flat", *this, i, value);
  increment_version();
}

double Tensor::item() const {
  if (!storage_) undefined_call("Tensor::item");
  TG_CHECK(numel_ == 1, "item", "expected a one-element tensor; got shape ", to_string(shape_));
  return read_at(*this, 0);
}

double Tensor::at(const std::vector<int64_t>& index) const { return read_at(*this, flat_index("Tensor::at", *this, index)); }
void Tensor::set(const std::vector<int64_t>& index, double value) {
  write_at("Tensor::set", *this, flat_index("Tensor::set", *this, index), value);
  increment_version();
}

std::vector<double> Tensor::to_vector() const {
  if (!storage_) undefined_call("Tensor::to_vector");
  std::vector<double> v(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) v[static_cast<size_t>(i)] = read_at(*this, i);
  return v;
}

Tensor Tensor::to(DType dtype) const {
  if (!storage_) undefined_call("Tensor::to");
  if (dtype == dtype_) return *this;
  Tensor out(shape_, dtype, "Tensor::to");
  out.copy_(*this);
  return out;
}

Tensor Tensor::clone() const {
  if (!storage_) undefined_call("Tensor::clone");
  Tensor out(shape_, dtype_, "Tensor::clone");
  std::memcpy(out.raw(), raw(), nbytes());
  return out;
}

Tensor Tensor::reshape(Shape shape) const {
  if (!storage_) undefined_call("Tensor::reshape");
  int64_t infer = -1;
  Shape known = shape;   // shape with the -1 entry counted as 1
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      TG_CHECK(infer < 0, "reshape", "only one dimension can be -1; got shape ", to_string(shape), " for input ",
               to_string(shape_));
      infer = static_cast<int64_t>(i);
      known[i] = 1;
    } else {
      TG_CHECK(shape[i] >= 0, "reshape", "invalid size in shape ", to_string(shape), " for input ", to_string(shape_));
    }
  }
  std::optional<int64_t> n = try_numel(known);   // checked: (2^62 + 1) * 4 must not wrap around to 4
  TG_CHECK(n.has_value(), "reshape", "shape ", to_string(shape), " is invalid for input ", to_string(shape_),
           " (the number of elements overflows int64)");
  if (infer >= 0) {
    TG_CHECK(*n != 0 && numel_ % *n == 0, "reshape", "shape ", to_string(shape), " is invalid for input ",
             to_string(shape_));
    shape[static_cast<size_t>(infer)] = numel_ / *n;
  }
  TG_CHECK(try_numel(shape) == numel_, "reshape", "shape ", to_string(shape), " is invalid for input ",
           to_string(shape_));
  Tensor v = *this;
  v.shape_ = std::move(shape);
  return v;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  if (!storage_) undefined_call("Tensor::rows");
  TG_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "rows", "range [", begin, ", ", end,
           ") invalid for shape ", to_string(shape_));
  Tensor v = *this;
  int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  v.offset_bytes_ += static_cast<size_t>(begin * row * element_size(dtype_));
  v.shape_[0] = end - begin;
  v.numel_ = (end - begin) * row;
  return v;
}

void Tensor::fill_values(const char* op, double value) {
  if (!storage_) undefined_call(op);
  dispatch_all(dtype_, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T v;
    if constexpr (std::is_same_v<T, bool>) v = value != 0.0;
    else if constexpr (std::is_same_v<T, int64_t>) v = to_int64(op, value);
    else v = static_cast<T>(value);
    T* p = static_cast<T*>(raw());
    kernels::parallel_for(numel_, 65536, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = v;
    });
  });
}

Tensor& Tensor::fill_(double value) {
  fill_values("Tensor::fill_", value);
  increment_version();
  return *this;
}

Tensor& Tensor::zero_() {
  if (!storage_) undefined_call("Tensor::zero_");
  increment_version();
  std::memset(raw(), 0, nbytes());
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  if (!storage_) undefined_call("Tensor::copy_");
  check_defined("copy_", "src", src);
  TG_CHECK(src.shape() == shape_, "copy_", "shapes differ; got self=", to_string(shape_), ", src=",
           to_string(src.shape()));
  increment_version();
  if (src.dtype() == dtype_) {
    std::memmove(raw(), src.raw(), nbytes());
    return *this;
  }
  dispatch_all(dtype_, [&](auto dst_tag) {
    using D = typename decltype(dst_tag)::type;
    dispatch_all(src.dtype(), [&](auto src_tag) {
      using S = typename decltype(src_tag)::type;
      const S* s = static_cast<const S*>(src.raw());
      D* d = static_cast<D*>(raw());
      for (int64_t i = 0; i < numel_; ++i) {
        if constexpr (std::is_same_v<D, bool>) d[i] = s[i] != S(0);
        else if constexpr (std::is_same_v<D, int64_t> && std::is_floating_point_v<S>) d[i] = to_int64("copy_", s[i]);
        else d[i] = static_cast<D>(s[i]);
      }
    });
  });
  return *this;
}

bool Tensor::bit_equal(const Tensor& other) const {
  if (defined() != other.defined()) return false;
  if (!defined()) return true;
  return dtype_ == other.dtype_ && shape_ == other.shape_ && std::memcmp(raw(), other.raw(), nbytes()) == 0;
}

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return to_string(t.dtype()) + to_string(t.shape());
}

}  // namespace tg
