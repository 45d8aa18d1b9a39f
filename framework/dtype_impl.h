#pragma once
// Inline implementation of the dispatch helpers declared in dtype.h.
#include <stdexcept>

namespace tg {

template <class F> decltype(auto) dispatch_floating(DType d, const char* op, F&& f) {
  if (d == DType::Float32) return f(TypeTag<float>{});
  if (d == DType::Float64) return f(TypeTag<double>{});
  throw std::invalid_argument(std::string("[") + op + "] expected a floating tensor (float32 or float64); got " +
                              to_string(d));
}

}  // namespace tg
