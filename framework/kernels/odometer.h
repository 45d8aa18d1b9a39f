#pragma once
// Row-major index walking shared by the permute and reduce kernels.
#include <cstdint>
#include <vector>

#include "tapegrad/framework/shape.h"

namespace tg::kernels {

// Walks a row-major index over size[0, rank) while tracking offset = sum(idx[i] * stride[i]).
class Odometer {
 public:
  Odometer(const Shape& size, const Shape& stride, size_t rank, int64_t start)
      : size_(size), stride_(stride), idx_(rank, 0) {
    for (size_t i = rank; i-- > 0;) {
      idx_[i] = start % size_[i];
      start /= size_[i];
      offset_ += idx_[i] * stride_[i];
    }
  }
  int64_t offset() const { return offset_; }
  void next() {
    for (size_t i = idx_.size(); i-- > 0;) {
      offset_ += stride_[i];
      if (++idx_[i] < size_[i]) return;
      offset_ -= stride_[i] * size_[i];
      idx_[i] = 0;
    }
  }

 private:
  const Shape& size_;
  const Shape& stride_;
  std::vector<int64_t> idx_;
  int64_t offset_ = 0;
};

}  // namespace tg::kernels
