#pragma once
// Element types of tapegrad tensors and the run-time dispatch from a DType to a C++ type.
#include <cstdint>
#include <string>
#include <type_traits>

namespace tg {

// Float32/Float64 carry values and gradients; Int64 holds indices and tokens; Bool holds masks
// (stored one byte per element, true = set).
enum class DType : uint8_t { Float32, Float64, Int64, Bool };

std::string to_string(DType d);
int64_t element_size(DType d);
inline bool is_floating(DType d) { return d == DType::Float32 || d == DType::Float64; }

template <class T> struct TypeTag { using type = T; };

template <class T> constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::Float32;
  else if constexpr (std::is_same_v<T, double>) return DType::Float64;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::Int64;
  else { static_assert(std::is_same_v<T, bool>); return DType::Bool; }
}

// Calls f(TypeTag<float>{}) or f(TypeTag<double>{}); throws for non-floating dtypes.
template <class F> decltype(auto) dispatch_floating(DType d, const char* op, F&& f);

}  // namespace tg

#include "tapegrad/framework/dtype_impl.h"
