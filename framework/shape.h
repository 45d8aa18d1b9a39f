#pragma once
// Shapes: a vector of sizes, row-major. Broadcasting follows NumPy/PyTorch rules.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace tg {

using Shape = std::vector<int64_t>;

std::string to_string(const Shape& s);   // "[2, 3]"; a 0-d shape prints "[]"
int64_t numel(const Shape& s);
Shape strides_of(const Shape& s);        // contiguous row-major strides, in elements

// Broadcast result of a and b; throws std::invalid_argument "[op] shapes cannot be broadcast; got a=[..], b=[..]".
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// Normalises a possibly negative dim against rank; throws "[op] dim D out of range for a R-d tensor".
int64_t normalize_dim(const char* op, int64_t dim, int64_t rank);

}  // namespace tg

namespace std {
inline ostream& operator<<(ostream& os, const tg::Shape& s) { return os << tg::to_string(s); }
}  // namespace std
