#pragma once
// Shapes: a vector of sizes, row-major. Broadcasting follows NumPy/PyTorch rules.
//
// Sizes are checked in one place: numel(shape, op) (and nbytes, which builds on it) is the only
// computation of a product of sizes that every allocation and every shape-taking op goes through, so a
// negative size, a product that overflows int64 or a byte size past kMaxTensorBytes is an
// std::invalid_argument naming the op, never a wrapped-around size.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tapegrad/framework/dtype.h"

namespace tg {

using Shape = std::vector<int64_t>;

// The largest tensor tapegrad allocates: 2^48 bytes (256 TiB, more than any x86-64 address space).
// A larger request is bad input, not an allocation attempt.
inline constexpr int64_t kMaxTensorBytes = int64_t{1} << 48;

std::string to_string(const Shape& s);   // "[2, 3]"; a 0-d shape prints "[]"

// The number of elements of shape s, checked. Throws std::invalid_argument
//   "[op] negative size -2 at dim 1; got shape=[3, -2]"
//   "[op] the number of elements overflows int64; got shape=[1099511627776, 1099511627776]"
// Every partial product of the sizes must fit as well (zero sizes counted as 1), so a shape such as
// [0, 2^40, 2^40] is rejected too: loops over its other dims would overflow.
int64_t numel(const Shape& s, const char* op = "numel");
// The same computation without throwing: nullopt on a negative size or an overflow.
std::optional<int64_t> try_numel(const Shape& s);
// Bytes of a dense tensor of shape s and dtype d: numel(s, op) * element_size(d), at most
// kMaxTensorBytes. Throws numel's errors and
//   "[op] a float32 tensor of 4611686018427387904 elements exceeds the size limit of 281474976710656 bytes; got shape=[..]"
size_t nbytes(const Shape& s, DType d, const char* op);

Shape strides_of(const Shape& s);        // contiguous row-major strides, in elements

// Broadcast result of a and b; throws std::invalid_argument "[op] shapes cannot be broadcast; got a=[..], b=[..]"
// (and numel's overflow error for a result too large to count).
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// Normalises a possibly negative dim against rank; throws "[op] dim D out of range for a R-d tensor".
int64_t normalize_dim(const char* op, int64_t dim, int64_t rank);

}  // namespace tg

namespace std {
inline ostream& operator<<(ostream& os, const tg::Shape& s) { return os << tg::to_string(s); }
}  // namespace std
