#include "tapegrad/framework/tensor.h"

#include <cmath>
#include <cstring>

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

void check_sizes(const char* op, const Shape& shape) {
  for (int64_t d : shape) TG_CHECK(d >= 0, op, "negative size in shape ", to_string(shape));
}

int64_t flat_index(const Tensor& t, const std::vector<int64_t>& index) {
  TG_CHECK(static_cast<int64_t>(index.size()) == t.dim(), "Tensor::at", "index has ", index.size(),
           " entries for a tensor of shape ", to_string(t.shape()));
  int64_t flat = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    int64_t n = t.shape()[i], k = index[i] < 0 ? index[i] + n : index[i];
    TG_CHECK(k >= 0 && k < n, "Tensor::at", "index ", index[i], " out of range for dim ", i, " of shape ",
             to_string(t.shape()));
    flat = flat * n + k;
  }
  return flat;
}

}  // namespace

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  check_sizes("Tensor", shape_);
  numel_ = tg::numel(shape_);
  storage_ = std::make_shared<Storage>(nbytes());
}

Tensor Tensor::empty(Shape shape, DType dtype) { return Tensor(std::move(shape), dtype); }
Tensor Tensor::zeros(Shape shape, DType dtype) { return Tensor(std::move(shape), dtype).zero_(); }
Tensor Tensor::ones(Shape shape, DType dtype) { return full(std::move(shape), 1.0, dtype); }
Tensor Tensor::full(Shape shape, double value, DType dtype) { return Tensor(std::move(shape), dtype).fill_(value); }
Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(int64_t end, DType dtype) { return arange(0.0, static_cast<double>(end), 1.0, dtype); }

Tensor Tensor::arange(double start, double end, double step, DType dtype) {
  TG_CHECK(step != 0.0, "arange", "step must be nonzero");
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t({n < 0 ? 0 : n}, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) t.set_flat(i, start + static_cast<double>(i) * step);
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, Shape shape, DType dtype) {
  Tensor t(std::move(shape), dtype);
  TG_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "from_vector", "got ", values.size(),
           " values for shape ", to_string(t.shape()));
  for (int64_t i = 0; i < t.numel(); ++i) t.set_flat(i, values[static_cast<size_t>(i)]);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, Shape shape) {
  Tensor t(std::move(shape), DType::Float32);
  TG_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "from_vector", "got ", values.size(),
           " values for shape ", to_string(t.shape()));
  if (t.nbytes()) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_vector(const std::vector<int64_t>& values, Shape shape) {
  Tensor t(std::move(shape), DType::Int64);
  TG_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "from_vector", "got ", values.size(),
           " values for shape ", to_string(t.shape()));
  if (t.nbytes()) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_bools(const std::vector<bool>& values, Shape shape) {
  Tensor t(std::move(shape), DType::Bool);
  TG_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "from_bools", "got ", values.size(),
           " values for shape ", to_string(t.shape()));
  bool* p = t.data<bool>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = values[static_cast<size_t>(i)];
  return t;
}

Tensor Tensor::uniform(Shape shape, double lo, double hi, Generator& gen, DType dtype) {
  Tensor t(std::move(shape), dtype);
  uint64_t seed = gen.seed(), first = gen.reserve(static_cast<uint64_t>(t.numel()));
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
  Tensor t(std::move(shape), dtype);
  uint64_t seed = gen.seed(), first = gen.reserve(static_cast<uint64_t>(t.numel()));
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

int64_t Tensor::size(int64_t d) const { return shape_[static_cast<size_t>(normalize_dim("size", d, dim()))]; }

double Tensor::flat(int64_t i) const {
  double v = 0;
  dispatch_all(dtype_, [&](auto tag) {
    using T = typename decltype(tag)::type;
    v = static_cast<double>(static_cast<const T*>(raw())[i]);
  });
  return v;
}

void Tensor::set_flat(int64_t i, double value) {
  dispatch_all(dtype_, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>) static_cast<T*>(raw())[i] = value != 0.0;
    else static_cast<T*>(raw())[i] = static_cast<T>(value);
  });
}

double Tensor::item() const {
  TG_CHECK(numel_ == 1, "item", "expected a one-element tensor; got shape ", to_string(shape_));
  return flat(0);
}

double Tensor::at(const std::vector<int64_t>& index) const { return flat(flat_index(*this, index)); }
void Tensor::set(const std::vector<int64_t>& index, double value) { set_flat(flat_index(*this, index), value); }

std::vector<double> Tensor::to_vector() const {
  std::vector<double> v(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) v[static_cast<size_t>(i)] = flat(i);
  return v;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out(shape_, dtype);
  out.copy_(*this);
  return out;
}

Tensor Tensor::clone() const {
  Tensor out(shape_, dtype_);
  std::memcpy(out.raw(), raw(), nbytes());
  return out;
}

Tensor Tensor::reshape(Shape shape) const {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      TG_CHECK(infer < 0, "reshape", "only one dimension can be -1; got shape ", to_string(shape));
      infer = static_cast<int64_t>(i);
    } else {
      TG_CHECK(shape[i] >= 0, "reshape", "invalid size in shape ", to_string(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    TG_CHECK(known != 0 && numel_ % known == 0, "reshape", "shape ", to_string(shape), " is invalid for input ",
             to_string(shape_));
    shape[static_cast<size_t>(infer)] = numel_ / known;
  }
  TG_CHECK(tg::numel(shape) == numel_, "reshape", "shape ", to_string(shape), " is invalid for input ",
           to_string(shape_));
  Tensor v = *this;
  v.shape_ = std::move(shape);
  return v;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  TG_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "rows", "range [", begin, ", ", end,
           ") invalid for shape ", to_string(shape_));
  Tensor v = *this;
  int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  v.offset_bytes_ += static_cast<size_t>(begin * row * element_size(dtype_));
  v.shape_[0] = end - begin;
  v.numel_ = (end - begin) * row;
  return v;
}

Tensor& Tensor::fill_(double value) {
  dispatch_all(dtype_, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T v;
    if constexpr (std::is_same_v<T, bool>) v = value != 0.0;
    else v = static_cast<T>(value);
    T* p = static_cast<T*>(raw());
    kernels::parallel_for(numel_, 65536, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = v;
    });
  });
  return *this;
}

Tensor& Tensor::zero_() {
  std::memset(raw(), 0, nbytes());
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  TG_CHECK(src.shape() == shape_, "copy_", "shapes differ; got self=", to_string(shape_), ", src=",
           to_string(src.shape()));
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
