#pragma once
// Tensor: a dense, contiguous, row-major n-d array of float32, float64, int64 or bool, whose storage
// is shared between views (reshape, detach, slices along dim 0). Values only: autograd lives in Var
// (framework/tape.h). Copy is shallow (shares storage); clone() copies.
//
// Sizes: every shape is checked by numel/nbytes (shape.h) before anything is allocated, so a negative
// size, an element count that overflows int64 or more than kMaxTensorBytes throws std::invalid_argument
// "[Tensor::zeros] ... got shape=[..]" naming the creating function; a request under the limit that the
// system cannot satisfy throws std::bad_alloc.
// Undefined tensors: Tensor() is undefined (defined() == false; shape() is [], numel() 0). Every
// method that reads or writes elements (data, raw, item, at, set, flat, to, clone, reshape, rows,
// fill_, zero_, copy_, size) throws std::logic_error "[Tensor::item] called on an undefined Tensor".
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tapegrad/framework/dtype.h"
#include "tapegrad/framework/random.h"
#include "tapegrad/framework/shape.h"

namespace tg {

// Raw, 64-byte aligned, reusable memory block (see kernels/allocator.h). Throws std::bad_alloc when the
// memory cannot be had (also for more than kMaxTensorBytes).
class Storage {
 public:
  explicit Storage(size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  // How many times the contents were changed in place (see Tensor::version).
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void increment_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* ptr_;
  size_t bytes_;
  std::atomic<uint64_t> version_{0};
};

class Tensor {
 public:
  Tensor() = default;   // undefined tensor
  Tensor(Shape shape, DType dtype);   // uninitialised contents
  // The same, with size errors naming `op` (ops allocating a result shape they computed).
  Tensor(Shape shape, DType dtype, const char* op);

  // ---- creation ----
  static Tensor empty(Shape shape, DType dtype = DType::Float32);
  static Tensor zeros(Shape shape, DType dtype = DType::Float32);
  static Tensor ones(Shape shape, DType dtype = DType::Float32);
  static Tensor full(Shape shape, double value, DType dtype = DType::Float32);
  static Tensor scalar(double value, DType dtype = DType::Float32);                 // 0-d
  static Tensor arange(int64_t end, DType dtype = DType::Int64);                    // 0..end-1
  static Tensor arange(double start, double end, double step, DType dtype);   // start, end, step finite
  // From a flat vector (converted to dtype); throws if the vector size is not numel(shape).
  static Tensor from_vector(const std::vector<double>& values, Shape shape, DType dtype = DType::Float64);
  static Tensor from_vector(const std::vector<float>& values, Shape shape);
  static Tensor from_vector(const std::vector<int64_t>& values, Shape shape);
  static Tensor from_bools(const std::vector<bool>& values, Shape shape);
  // Seeded random: U[lo, hi) and N(mean, std^2), element i drawn from block (offset + i) of gen.
  static Tensor uniform(Shape shape, double lo, double hi, Generator& gen, DType dtype = DType::Float32);
  static Tensor normal(Shape shape, double mean, double std, Generator& gen, DType dtype = DType::Float32);

  // ---- properties ----
  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t numel() const { return numel_; }
  int64_t size(int64_t d) const;   // negative d counts from the end; throws for a 0-d tensor
  size_t nbytes() const { return static_cast<size_t>(numel_) * element_size(dtype_); }

  // ---- raw data (contiguous); data<T>() checks that T matches dtype() ----
  template <class T> T* data();
  template <class T> const T* data() const;
  void* raw() {
    if (!storage_) undefined_call("Tensor::raw");
    return static_cast<char*>(storage_->data()) + offset_bytes_;
  }
  const void* raw() const {
    if (!storage_) undefined_call("Tensor::raw");
    return static_cast<const char*>(storage_->data()) + offset_bytes_;
  }
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }
  // How many tensors share this storage (1: this tensor is its only user and may be changed in place).
  long storage_use_count() const { return storage_.use_count(); }

  // ---- element access for tests and small loops (converts to/from double) ----
  // Indices are checked ("[Tensor::at] index 2 out of range ..."); writing a value that does not fit an
  // int64 tensor (NaN, +-inf, |v| >= 2^63) throws "[Tensor::set] value nan does not fit in int64".
  double item() const;                                   // a one-element tensor
  double at(const std::vector<int64_t>& index) const;    // full index, negative entries allowed
  void set(const std::vector<int64_t>& index, double value);
  double flat(int64_t i) const;                          // i-th element in row-major order
  void set_flat(int64_t i, double value);
  std::vector<double> to_vector() const;

  // ---- conversions and views ----
  Tensor to(DType dtype) const;                 // a copy unless dtype is already dtype()
  Tensor clone() const;
  Tensor reshape(Shape shape) const;            // a view; one entry may be -1
  Tensor rows(int64_t begin, int64_t end) const;   // view of dim-0 slice [begin, end)

  // ---- in place ----
  // Each of these (and set, set_flat) increments version(): the tape refuses a backward that would
  // read a tensor changed after its op saved it (framework/tape.h).
  Tensor& fill_(double value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);             // same shape; converts dtype (float -> int64 range-checked)

  // PyTorch's tensor._version: how many in-place changes the storage has seen, shared by every view of
  // it (0 for an undefined tensor). Writes through data<T>() or raw() are not counted, as in PyTorch
  // (data_ptr): code that changes a tensor that way and wants the tape to notice calls
  // increment_version() (tapegrad's optimizers and collectives do).
  uint64_t version() const { return storage_ ? storage_->version() : 0; }
  void increment_version() {
    if (!storage_) undefined_call("Tensor::increment_version");
    storage_->increment_version();
  }

  // Bitwise equality of shape, dtype and contents (for determinism tests).
  bool bit_equal(const Tensor& other) const;

 private:
  [[noreturn]] static void undefined_call(const char* op);   // throws std::logic_error
  void fill_values(const char* op, double value);            // fill_ without counting a version
  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::Float32;
};

std::string describe(const Tensor& t);   // "float32[2, 3]"; "undefined" for Tensor()

// For ops taking Tensor arguments: throws std::invalid_argument "[op] name is an undefined Tensor".
void check_defined(const char* op, const char* name, const Tensor& t);

template <class T> T* Tensor::data() {
  if (!storage_) undefined_call("Tensor::data");
  if (dtype_ != dtype_of<T>())
    throw std::invalid_argument("[Tensor::data] requested " + to_string(dtype_of<T>()) + " from a " +
                                to_string(dtype_) + " tensor");
  return static_cast<T*>(raw());
}
template <class T> const T* Tensor::data() const {
  if (!storage_) undefined_call("Tensor::data");
  if (dtype_ != dtype_of<T>())
    throw std::invalid_argument("[Tensor::data] requested " + to_string(dtype_of<T>()) + " from a " +
                                to_string(dtype_) + " tensor");
  return static_cast<const T*>(raw());
}

}  // namespace tg
