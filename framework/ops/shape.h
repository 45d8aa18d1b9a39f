#pragma once
// Shape and indexing ops with autograd, PyTorch semantics. They move data without arithmetic, so they
// accept Vars of any dtype (gradients flow only through float Vars) and give the same bits for any
// thread count; the scatter-adds of the index_select and embedding gradients add repeated indices
// in a fixed order (increasing position), also bitwise reproducible.
//
// Views and copies: reshape, flatten, unsqueeze and squeeze return views sharing x's storage (as
// PyTorch's view ops); narrow, slice and split also return views when every dim before `dim` has
// size 1 (their result is then a contiguous block of x). All other results are fresh contiguous
// tensors (tapegrad tensors have no strides), e.g. transpose/permute copy through kernels::permute.
//
// Dims may be negative (counted from the end). Every error is std::invalid_argument "[op] ...; got
// x=[..]" naming the PyTorch argument and printing every shape involved; the exact texts are below.
#include <cstdint>
#include <optional>
#include <vector>

#include "tapegrad/framework/tape.h"

namespace tg {

// ---- views ----

// torch.reshape: same elements in row-major order; one size may be -1 (inferred). A view.
// Throws "[reshape] shape [4, 4] is invalid for input [2, 3]".
Var reshape(const Var& x, Shape shape);

// torch.flatten(x, start_dim, end_dim): merges dims start_dim..end_dim into one; a 0-d x gives [1].
// Throws "[flatten] start_dim cannot come after end_dim; got start_dim=1, end_dim=0, x=[2, 3]" and
// "[flatten] end_dim 2 out of range for a 2-d tensor; got x=[2, 3]".
Var flatten(const Var& x, int64_t start_dim = 0, int64_t end_dim = -1);

// torch.unsqueeze: inserts a size-1 dim at dim, -rank-1 <= dim <= rank.
// Throws "[unsqueeze] dim 3 out of range [-3, 2]; got x=[2, 3]".
Var unsqueeze(const Var& x, int64_t dim);

// torch.squeeze(x, dim): removes dim if its size is 1, else returns x's shape unchanged.
// Throws "[squeeze] dim 2 out of range for a 2-d tensor; got x=[2, 1]".
Var squeeze(const Var& x, int64_t dim);

// ---- copies into a new layout ----

// torch.transpose(x, dim0, dim1), materialised contiguously: [.., A, .., B, ..] -> [.., B, .., A, ..].
// Throws "[transpose] dim1 5 out of range for a 3-d tensor; got x=[2, 3, 4]".
Var transpose(const Var& x, int64_t dim0, int64_t dim1);

// torch.permute(x, dims).contiguous(): out.shape[i] = x.shape[dims[i]], e.g. splitting attention
// heads [B, T, H, D] -> [B, H, T, D] with dims {0, 2, 1, 3}. The gradient is the inverse permutation.
// Throws "[permute] dims must list each of the 3 dims once; got dims=[0, 0, 1], x=[2, 3, 4]".
Var permute(const Var& x, const std::vector<int64_t>& dims);

// torch.expand(x, shape) materialised: size-1 dims (and new leading dims) repeat; -1 keeps a size.
// The gradient sums over the repeated dims (kernels::sum_to). Throws e.g.
// "[expand] the expanded size 4 must match the existing size 3 at non-singleton dim 1; got x=[2, 3], shape=[2, 4]",
// "[expand] -1 is not allowed in the leading new dim 0; got x=[2, 3], shape=[-1, 2, 3]",
// "[expand] shape has fewer dims than x; got x=[2, 3], shape=[3]".
Var expand(const Var& x, const Shape& shape);

// ---- joining and cutting along one dim ----

// torch.cat(xs, dim): all xs share dtype, rank and every size except at dim. Inputs that do not
// require grad are fine; as in PyTorch 1.13, 1-d empty tensors (shape [0]) are skipped.
// Throws "[concat] expected a non-empty list of tensors",
// "[concat] sizes must match except in dim 1; got xs[0]=[2, 3], xs[1]=[3, 3]",
// "[concat] tensors must have the same number of dims; got xs[0]=[2, 3], xs[1]=[3]",
// "[concat] all tensors must have one dtype; got xs[0]=float64[2, 3], xs[1]=float32[2, 3]",
// "[concat] a 0-d tensor cannot be concatenated; got xs[1]=[]".
Var concat(const std::vector<Var>& xs, int64_t dim);

// torch.split(x, split_size, dim): pieces of split_size along dim, the last possibly smaller (one
// empty piece when the dim has size 0). Gradients flow through whichever pieces are used.
// Note: split(x, {2}) calls this overload (C++ prefers int64_t); write split(x, std::vector<int64_t>{2}).
// Throws "[split] split_size must be non-negative; got split_size=-1",
// "[split] split_size can only be 0 if the dim size is 0; got split_size=0, dim 0 of x=[4, 3]".
std::vector<Var> split(const Var& x, int64_t split_size, int64_t dim = 0);

// torch.split(x, split_sizes, dim): pieces of the given sizes, which must sum to x.size(dim).
// Throws "[split] split_sizes must be non-negative and sum to 4, the size of dim 0; got split_sizes=[1, 2], x=[4, 3]".
std::vector<Var> split(const Var& x, const std::vector<int64_t>& split_sizes, int64_t dim = 0);

// torch.narrow(x, dim, start, length): elements start..start+length-1 along dim; start may be negative
// (counted from the end), -size <= start <= size. Throws "[narrow] start 5 out of range for dim 0 of
// size 4; got x=[4, 3]", "[narrow] start 1 + length 4 exceeds the size 4 of dim 0; got x=[4, 3]",
// "[narrow] cannot narrow a 0-d tensor; got x=[]".
Var narrow(const Var& x, int64_t dim, int64_t start, int64_t length);

// Python slicing x[..., start:end:step] along dim: negative start/end count from the end and both are
// clamped to [0, size] (an empty result when end <= start), step > 0.
// Throws "[slice] step must be positive; got step=0, x=[4, 3]", "[slice] cannot slice a 0-d tensor; got x=[]".
Var slice(const Var& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);

// ---- gathering rows ----

// torch.index_select(x, dim, index): out has x's shape with index.numel() at dim and
// out[.., k, ..] = x[.., index[k], ..]. index is an int64 tensor with at most one dim; repeated
// indices are fine (their gradients add). A 0-d x takes exactly one index (0) and stays 0-d.
// Throws "[index_select] index 7 out of range for dim 0 of size 5; got x=[5, 3], index=[2]",
// "[index_select] index must be an int64 tensor with at most one dim; got index=float64[2]".
Var index_select(const Var& x, int64_t dim, const Tensor& index);

// F.embedding(indices, weight, padding_idx): weight [num_embeddings, D], indices int64 of any shape
// [*I] -> [*I, D], out[i, :] = weight[indices[i], :]. The row at padding_idx gets zero gradient (its
// output is still the weight's row); a negative padding_idx counts from the end, as PyTorch. The
// weight gradient adds repeated rows in a fixed order: bitwise identical for any thread count.
// Throws "[embedding] index 7 out of range for num_embeddings=5; got weight=[5, 3], indices=[2, 2]",
// "[embedding] weight must be 2-d; got weight=[5]", "[embedding] indices must be int64; got indices=float32[3]",
// "[embedding] padding_idx 5 out of range for num_embeddings=5; got weight=[5, 3]".
Var embedding(const Var& weight, const Tensor& indices, std::optional<int64_t> padding_idx = std::nullopt);

}  // namespace tg
