#pragma once
// Reductions with autograd, PyTorch semantics: sum, mean, max (full), amax (over dims) and max along
// one dim with indices. Inputs are float32 or float64 Vars; results have the input's dtype.
//
// dims: any order, negative entries count from the end (dim d of an R-d tensor is valid for
// -R <= d < R; a 0-d tensor accepts 0 and -1 and is returned unchanged). An empty dims list reduces
// every dim, as torch.sum(x, dim=[]) in PyTorch 1.13. keepdim keeps the reduced dims with size 1.
// Shapes: x [*S] -> S without the reduced dims (or with them set to 1 when keepdim).
//
// Determinism: sums and means accumulate in double in a fixed order (kernels/reduce.h), so values and
// gradients are bitwise identical for any thread count.
//
// Errors (std::invalid_argument), e.g. for sum:
//   "[sum] expected a float tensor; got x=int64[2, 3]"
//   "[sum] dim 2 out of range for a 2-d tensor; got x=[2, 3]"
//   "[sum] dim 1 appears more than once in dims=[1, -1]; got x=[2, 3]"
//   "[amax] cannot reduce over the zero-size dim 0; got x=[0, 3]"   (max and amax only)
#include <cstdint>
#include <vector>

#include "tapegrad/framework/tape.h"

namespace tg {

// torch.sum(x): the sum of all elements, 0-d. An empty tensor sums to 0.
Var sum(const Var& x);
// torch.sum(x, dims, keepdim).
Var sum(const Var& x, const std::vector<int64_t>& dims, bool keepdim = false);

// torch.mean(x): 0-d (NaN for an empty tensor, as PyTorch).
Var mean(const Var& x);
// torch.mean(x, dims, keepdim): the sum divided by the number of reduced elements.
Var mean(const Var& x, const std::vector<int64_t>& dims, bool keepdim = false);

// torch.max(x) (= torch.amax(x)): the largest element, 0-d; NaN if any element is NaN. The gradient
// is split evenly among all elements equal to the maximum (among the NaNs if it is NaN), as PyTorch.
// Throws "[max] cannot reduce an empty tensor; got x=[0, 3]".
Var max(const Var& x);
// torch.amax(x, dims, keepdim): the maximum over dims; NaN propagates. The gradient of each output is
// split evenly among its tied maxima. Every reduced dim must have a non-zero size.
Var amax(const Var& x, const std::vector<int64_t>& dims, bool keepdim = false);

// torch.max(x, dim, keepdim): the maximum along dim and the int64 index of its first occurrence (a
// NaN wins, with its first index). The gradient goes to the element at the index only.
// x.size(dim) must be non-zero ("[max] cannot reduce over the zero-size dim 1; got x=[2, 0]").
struct MaxResult {
  Var values;       // x's dtype, reduced shape
  Tensor indices;   // int64, same shape as values
};
MaxResult max(const Var& x, int64_t dim, bool keepdim = false);

}  // namespace tg
