// The bad library calls table (issue 11, Done-means 4): each row is one wrong use of the public
// framework API — impossible or overflowing shapes, mismatched operands, undefined Vars and Tensors
// given to each kind of op and method, backward misuse, out-of-range element access, bad gradcheck
// calls — and names the exception type and a substring of the message it must raise. A crash fails
// the whole test, a wrong exception or a missing one fails its row.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/kernels/allocator.h"
#include "tapegrad/framework/gradcheck.h"
#include "tapegrad/framework/ops/attention.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/ops/shape.h"

using namespace tg;

namespace {

enum class Kind { invalid_argument, logic_error, runtime_error, bad_alloc };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::invalid_argument: return "std::invalid_argument";
    case Kind::logic_error: return "std::logic_error";
    case Kind::runtime_error: return "std::runtime_error";
    case Kind::bad_alloc: return "std::bad_alloc";
  }
  return "?";
}

struct Row {
  std::string what;
  std::function<void()> call;
  Kind kind;
  std::string message;   // substring of what(); empty for bad_alloc
};

// What a call threw: the most derived of the kinds above (logic_error means "a logic_error that is not
// an invalid_argument"), or "nothing" / "something else".
struct Outcome {
  std::string kind, message;
};

Outcome run(const std::function<void()>& call) {
  try {
    call();
  } catch (const std::invalid_argument& e) {
    return {kind_name(Kind::invalid_argument), e.what()};
  } catch (const std::logic_error& e) {
    return {kind_name(Kind::logic_error), e.what()};
  } catch (const std::runtime_error& e) {
    return {kind_name(Kind::runtime_error), e.what()};
  } catch (const std::bad_alloc& e) {
    return {kind_name(Kind::bad_alloc), e.what()};
  } catch (...) {
    return {"something else", ""};
  }
  return {"nothing", ""};
}

constexpr int64_t k31 = int64_t{1} << 31, k40 = int64_t{1} << 40, k62 = int64_t{1} << 62;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

Var f64(const Shape& s, bool requires_grad = false) { return Var(Tensor::ones(s, DType::Float64), requires_grad); }
Var f32(const Shape& s) { return Var(Tensor::ones(s, DType::Float32)); }

std::vector<Row> creation_rows() {
  Generator gen(1);
  return {
      {"ones of 2^62 float32 elements (2^64 bytes)", [] { Tensor::ones({k31, k31}); }, Kind::invalid_argument,
       "[Tensor::ones] a float32 tensor of 4611686018427387904 elements exceeds the size limit of 281474976710656 "
       "bytes; got shape=[2147483648, 2147483648]"},
      {"zeros whose element count overflows int64", [] { Tensor::zeros({k40, k40}); }, Kind::invalid_argument,
       "[Tensor::zeros] the number of elements overflows int64; got shape=[1099511627776, 1099511627776]"},
      {"empty with a negative size", [] { Tensor::empty({2, -3}); }, Kind::invalid_argument,
       "[Tensor::empty] negative size -3 at dim 1; got shape=[2, -3]"},
      {"full with a negative size", [] { Tensor::full({-1}, 1.0); }, Kind::invalid_argument,
       "[Tensor::full] negative size -1 at dim 0; got shape=[-1]"},
      {"full of NaN into int64", [] { Tensor::full({2}, std::nan(""), DType::Int64); }, Kind::invalid_argument,
       "[Tensor::full] value nan does not fit in int64"},
      {"a zero size beside sizes whose product overflows", [] { Tensor(Shape{0, k40, k40}, DType::Float32); },
       Kind::invalid_argument, "[Tensor] the number of elements overflows int64; got shape=[0, 1099511627776, 1099511627776]"},
      {"from_vector with an overflowing shape", [] { Tensor::from_vector(std::vector<double>{1, 2}, {k62, 4}); },
       Kind::invalid_argument, "[from_vector] the number of elements overflows int64; got shape=[4611686018427387904, 4]"},
      {"from_vector with too few values", [] { Tensor::from_vector(std::vector<double>{1, 2}, {3}); },
       Kind::invalid_argument, "[from_vector] got 2 values for shape [3]"},
      {"from_vector of 1e300 into int64", [] { Tensor::from_vector(std::vector<double>{1e300}, {1}, DType::Int64); },
       Kind::invalid_argument, "[from_vector] value 1e+300 does not fit in int64"},
      {"uniform with an overflowing shape", [gen]() mutable { Tensor::uniform({k40, k40}, 0, 1, gen); },
       Kind::invalid_argument, "[uniform] the number of elements overflows int64"},
      {"normal into int64", [gen]() mutable { Tensor::normal({3}, 0, 1, gen, DType::Int64); }, Kind::invalid_argument,
       "[normal] expected a floating tensor (float32 or float64); got int64"},
      {"arange to infinity", [] { Tensor::arange(0, INFINITY, 1, DType::Float32); }, Kind::invalid_argument,
       "[arange] start, end and step must be finite and step nonzero; got start=0, end=inf, step=1"},
      {"arange of more than 2^63 elements", [] { Tensor::arange(0, 1e300, 1e-300, DType::Float64); },
       Kind::invalid_argument, "[arange] too many elements"},
      {"arange with step 0", [] { Tensor::arange(0, 1, 0, DType::Float64); }, Kind::invalid_argument,
       "[arange] start, end and step must be finite and step nonzero"},
      {"Storage of SIZE_MAX bytes", [] { Storage s(std::numeric_limits<size_t>::max()); }, Kind::bad_alloc, ""},
  };
}

std::vector<Row> view_rows() {
  return {
      {"reshape of 4 elements to [2^62 + 1, 4] (wraps around to 4 unchecked)",
       [] { Tensor::zeros({4}).reshape({k62 + 1, 4}); }, Kind::invalid_argument,
       "[reshape] shape [4611686018427387905, 4] is invalid for input [4] (the number of elements overflows int64)"},
      {"reshape with -1 beside an overflowing product", [] { Tensor::zeros({4}).reshape({-1, k62, 4}); },
       Kind::invalid_argument, "(the number of elements overflows int64)"},
      {"reshape with two -1", [] { Tensor::zeros({4}).reshape({-1, -1}); }, Kind::invalid_argument,
       "[reshape] only one dimension can be -1; got shape [-1, -1] for input [4]"},
      {"reshape op to the wrong count", [] { reshape(f64({2, 2}), {3, 3}); }, Kind::invalid_argument,
       "[reshape] shape [3, 3] is invalid for input [2, 2]"},
      {"rows with an inverted range", [] { Tensor::zeros({3, 2}).rows(2, 1); }, Kind::invalid_argument,
       "[rows] range [2, 1) invalid for shape [3, 2]"},
      {"expand past 2^63 elements", [] { expand(f64({2, 1}), {k40, 2, k40}); }, Kind::invalid_argument,
       "[expand] the number of elements overflows int64; got x=[2, 1], shape=[1099511627776, 2, 1099511627776]"},
      {"expand to 2^64 bytes", [] { expand(f64({2, 1}), {int64_t{1} << 30, 2, int64_t{1} << 30}); },
       Kind::invalid_argument, "[expand] a float64 tensor of 2305843009213693952 elements exceeds the size limit"},
      {"expand to 2^64 bytes names x", [] { expand(f64({2, 1}), {int64_t{1} << 30, 2, int64_t{1} << 30}); },
       Kind::invalid_argument, "; got x=[2, 1], shape=[1073741824, 2, 1073741824]"},
      {"permute with a repeated dim", [] { permute(f64({2, 3, 4}), {0, 0, 1}); }, Kind::invalid_argument,
       "[permute] dims must list each of the 3 dims once; got dims=[0, 0, 1], x=[2, 3, 4]"},
      {"transpose with a dim out of range", [] { transpose(f64({2, 3, 4}), 0, 5); }, Kind::invalid_argument,
       "[transpose] dim1 5 out of range for a 3-d tensor; got x=[2, 3, 4]"},
      {"concat whose total size overflows", [] {
         Var x(Tensor::zeros({k62, 0}));
         concat({x, x, x}, 0);
       },
       Kind::invalid_argument, "[concat] the concatenated size of dim 0 overflows int64; got xs[1]=[4611686018427387904, 0]"},
      {"concat of two dtypes", [] { concat({f64({2, 3}), f32({2, 3})}, 0); }, Kind::invalid_argument,
       "[concat] all tensors must have one dtype; got xs[0]=float64[2, 3], xs[1]=float32[2, 3]"},
      {"narrow with a length that overflows start + length", [] { narrow(f64({4, 3}), 0, 1, kMax); },
       Kind::invalid_argument, "[narrow] start 1 + length 9223372036854775807 exceeds the size 4 of dim 0"},
      {"split sizes whose sum overflows", [] { split(f64({4, 3}), std::vector<int64_t>{kMax, 1}, 0); },
       Kind::invalid_argument, "[split] split_sizes must be non-negative and sum to 4"},
      {"index_select with a float index", [] { index_select(f64({5, 3}), 0, Tensor::zeros({2})); },
       Kind::invalid_argument, "[index_select] index must be an int64 tensor with at most one dim; got index=float32[2]"},
      {"embedding with an index out of range",
       [] { embedding(f64({5, 3}), Tensor::from_vector(std::vector<int64_t>{1, 7}, {2})); }, Kind::invalid_argument,
       "[embedding] index 7 out of range for num_embeddings=5; got weight=[5, 3], indices=[2]"},
      {"embedding of empty indices whose result shape overflows",
       [] { embedding(f64({5, 4}), Tensor::zeros({0, k62}, DType::Int64)); }, Kind::invalid_argument,
       "[embedding] the number of elements overflows int64; got shape=[0, 4611686018427387904, 4]"},
  };
}

std::vector<Row> op_rows() {
  return {
      {"matmul with different inner dims", [] { matmul(f64({4, 3}), f64({5, 2})); }, Kind::invalid_argument,
       "[matmul] inner dims differ; got a=[4, 3], b=[5, 2]"},
      {"matmul whose broadcast batch overflows",
       [] { matmul(Var(Tensor::zeros({k40, 1, 1, 0})), Var(Tensor::zeros({1, k40, 0, 1}))); }, Kind::invalid_argument,
       "[matmul] the number of elements overflows int64; got shape=[1099511627776, 1099511627776, 1, 1]"},
      {"matmul of two dtypes", [] { matmul(f64({2, 2}), f32({2, 2})); }, Kind::invalid_argument,
       "[matmul] dtypes differ; got a=float64[2, 2], b=float32[2, 2]"},
      {"linear with different in_features", [] { linear(f64({4, 3}), f64({5, 2})); }, Kind::invalid_argument,
       "[linear] in_features differ; got x=[4, 3], weight=[5, 2]"},
      {"add of shapes that do not broadcast", [] { add(f64({2, 3}), f64({4})); }, Kind::invalid_argument,
       "[add] shapes cannot be broadcast; got a=[2, 3], b=[4]"},
      {"add whose broadcast result overflows",
       [] { add(Var(Tensor::zeros({k40, 1, 0})), Var(Tensor::zeros({1, k40, 0}))); }, Kind::invalid_argument,
       "[add] the number of elements overflows int64; got shape=[1099511627776, 1099511627776, 0]"},
      {"mul of int64 tensors", [] { mul(Var(Tensor::zeros({2}, DType::Int64)), Var(Tensor::zeros({2}, DType::Int64))); },
       Kind::invalid_argument, "[mul] expected float tensors; got a=int64[2]"},
      {"where with a float condition", [] { where(Tensor::zeros({2}), f64({2}), f64({2})); }, Kind::invalid_argument,
       "[where] condition must be bool; got condition=float32[2]"},
      {"where with a condition that does not broadcast",
       [] { where(Tensor::zeros({3}, DType::Bool), f64({2, 1}), f64({1, 2})); }, Kind::invalid_argument,
       "[where] condition cannot be broadcast with a and b; got condition=[3], a=[2, 1], b=[1, 2]"},
      {"reshape with a negative size", [] { Tensor::zeros({4}).reshape({-2, -2}); }, Kind::invalid_argument,
       "[reshape] invalid size in shape [-2, -2] for input [4]"},
      {"masked_fill with a float mask", [] { masked_fill(f64({2}), Tensor::zeros({2}), 0.0); },
       Kind::invalid_argument, "[masked_fill] mask must be bool; got mask=float32[2]"},
      {"sum over a dim out of range", [] { sum(f64({2, 3}), {2}); }, Kind::invalid_argument,
       "[sum] dim 2 out of range for a 2-d tensor; got x=[2, 3]"},
      {"max of an empty tensor", [] { max(Var(Tensor::zeros({0, 3}))); }, Kind::invalid_argument,
       "[max] cannot reduce an empty tensor; got x=[0, 3]"},
      {"softmax over a dim out of range", [] { softmax(f64({3, 4}), 2); }, Kind::invalid_argument,
       "[softmax] dim 2 out of range for a 2-d tensor; got x=[3, 4]"},
      {"layer_norm over the wrong trailing dims", [] { layer_norm(f64({2, 3}), {4}); }, Kind::invalid_argument,
       "[layer_norm] normalized_shape must match the trailing dims of x; got x=[2, 3], normalized_shape=[4]"},
      {"dropout with p = 1.5", [] {
         Generator g(0);
         dropout(f64({2}), 1.5, true, g);
       },
       Kind::invalid_argument, "[dropout] p must be in [0, 1]; got p=1.5"},
      {"cross_entropy with a target out of range",
       [] { cross_entropy(f64({4, 10}), Tensor::from_vector(std::vector<int64_t>{0, 1, 12, 3}, {4})); },
       Kind::invalid_argument, "[cross_entropy] target 12 out of range for 10 classes; got logits=[4, 10], targets=[4]"},
      {"cross_entropy with float targets", [] { cross_entropy(f64({4, 10}), Tensor::zeros({4})); },
       Kind::invalid_argument, "[cross_entropy] targets must be int64 class indices; got targets=float32[4]"},
      {"fused_attention with embed dim not divisible by heads",
       [] { fused_attention(f64({2, 1, 6}), f64({2, 1, 6}), f64({2, 1, 6}), {.num_heads = 4}); },
       Kind::invalid_argument, "[fused_attention] embed dim 6 is not divisible by num_heads=4"},
      {"scaled_dot_product_attention on 3-D inputs",
       [] { scaled_dot_product_attention(f64({2, 3, 4}), f64({2, 3, 4}), f64({2, 3, 4})); }, Kind::invalid_argument,
       "[scaled_dot_product_attention] query, key and value must be (N, H, T, D)"},
  };
}

std::vector<Row> undefined_rows() {
  Var x = f64({2, 3});
  Generator gen(0);
  return {
      {"Var().backward()", [] { Var().backward(); }, Kind::logic_error,
       "[Var::backward] called on an undefined Var (default-constructed)"},
      {"Var().backward(Tensor)", [] { Var().backward(Tensor::ones({1})); }, Kind::logic_error,
       "[Var::backward] called on an undefined Var"},
      {"Var().item()", [] { Var().item(); }, Kind::logic_error, "[Var::item] called on an undefined Var"},
      {"Var().grad()", [] { Var().grad(); }, Kind::logic_error, "[Var::grad] called on an undefined Var"},
      {"Var().zero_grad()", [] { Var().zero_grad(); }, Kind::logic_error, "[Var::zero_grad] called on an undefined Var"},
      {"Var().shape()", [] { Var().shape(); }, Kind::logic_error, "[Var::shape] called on an undefined Var"},
      {"Var().value()", [] { Var().value(); }, Kind::logic_error, "[Var::value] called on an undefined Var"},
      {"Var().dtype()", [] { Var().dtype(); }, Kind::logic_error, "[Var::dtype] called on an undefined Var"},
      {"Var().requires_grad_()", [] { Var().requires_grad_(); }, Kind::logic_error,
       "[Var::requires_grad_] called on an undefined Var"},
      {"Var().detach()", [] { Var().detach(); }, Kind::logic_error, "[Var::detach] called on an undefined Var"},
      {"Var(Tensor()) holding an undefined value", [] { Var v(Tensor{}); }, Kind::invalid_argument,
       "[Var] value is an undefined Tensor"},
      {"add(undefined, x)", [x] { add(Var(), x); }, Kind::invalid_argument, "[add] a is an undefined Var"},
      {"exp(undefined)", [] { exp(Var()); }, Kind::invalid_argument, "[exp] a is an undefined Var"},
      {"matmul(x, undefined)", [x] { matmul(x, Var()); }, Kind::invalid_argument, "[matmul] b is an undefined Var"},
      {"linear(undefined, weight)", [x] { linear(Var(), x); }, Kind::invalid_argument, "[linear] x is an undefined Var"},
      {"sum(undefined)", [] { sum(Var()); }, Kind::invalid_argument, "[sum] x is an undefined Var"},
      {"softmax(undefined)", [] { softmax(Var(), 0); }, Kind::invalid_argument, "[softmax] x is an undefined Var"},
      {"layer_norm(undefined)", [] { layer_norm(Var(), {3}); }, Kind::invalid_argument,
       "[layer_norm] x is an undefined Var"},
      {"dropout(undefined)", [gen]() mutable { dropout(Var(), 0.5, true, gen); }, Kind::invalid_argument,
       "[dropout] x is an undefined Var"},
      {"reshape(undefined)", [] { reshape(Var(), {1}); }, Kind::invalid_argument, "[reshape] x is an undefined Var"},
      {"concat with an undefined element", [x] { concat({x, Var()}, 0); }, Kind::invalid_argument,
       "[concat] xs[1] is an undefined Var"},
      {"cross_entropy(undefined logits)", [] { cross_entropy(Var(), Tensor::zeros({2}, DType::Int64)); },
       Kind::invalid_argument, "[cross_entropy] logits is an undefined Var"},
      {"cross_entropy(undefined targets)", [x] { cross_entropy(x, Tensor()); }, Kind::invalid_argument,
       "[cross_entropy] targets is an undefined Tensor"},
      {"embedding(undefined indices)", [x] { embedding(x, Tensor()); }, Kind::invalid_argument,
       "[embedding] indices is an undefined Tensor"},
      {"masked_fill(undefined mask)", [x] { masked_fill(x, Tensor(), 0.0); }, Kind::invalid_argument,
       "[masked_fill] mask is an undefined Tensor"},
      {"where(undefined condition)", [x] { where(Tensor(), x, x); }, Kind::invalid_argument,
       "[where] condition is an undefined Tensor"},
      {"fused_attention(undefined query)", [x] { fused_attention(Var(), x, x, {}); }, Kind::invalid_argument,
       "[fused_attention] query is an undefined Var"},
      {"Tensor().item()", [] { Tensor().item(); }, Kind::logic_error, "[Tensor::item] called on an undefined Tensor"},
      {"Tensor().data<float>()", [] { Tensor().data<float>(); }, Kind::logic_error,
       "[Tensor::data] called on an undefined Tensor"},
      {"Tensor().clone()", [] { Tensor().clone(); }, Kind::logic_error, "[Tensor::clone] called on an undefined Tensor"},
      {"Tensor().reshape()", [] { Tensor().reshape({1}); }, Kind::logic_error,
       "[Tensor::reshape] called on an undefined Tensor"},
      {"copy_ from an undefined Tensor", [] { Tensor::zeros({2}).copy_(Tensor()); }, Kind::invalid_argument,
       "[copy_] src is an undefined Tensor"},
  };
}

std::vector<Row> misuse_rows() {
  auto square = [](const std::vector<Var>& in) { return mul(in[0], in[0]); };
  return {
      {"backward twice without retain_graph", [] {
         Var a = f64({1}, true);
         Var y = mul(add(a, 1.0), 2.0);
         y.backward();
         y.backward();
       },
       Kind::logic_error, "was freed by a previous backward; pass retain_graph=true"},
      {"backward() from a multi-element output", [] { mul(f64({3}, true), 2.0).backward(); }, Kind::logic_error,
       "[backward] grad can be implicitly created only for one-element outputs; got shape [3]"},
      {"backward with a grad_output of another shape", [] { mul(f64({3}, true), 2.0).backward(Tensor::ones({2})); },
       Kind::invalid_argument, "[backward] grad_output must match the output; got grad_output=float32[2], output=float64[3]"},
      {"backward with an undefined grad_output", [] { mul(f64({}, true), 2.0).backward(Tensor()); },
       Kind::invalid_argument, "[backward] grad_output must match the output; got grad_output=undefined"},
      {"backward from a Var that does not require grad", [] { f64({1}).backward(); }, Kind::logic_error,
       "[backward] the tensor does not require grad and has no grad_fn"},
      {"requires_grad_ on an int64 Var", [] { Var(Tensor::zeros({2}, DType::Int64)).requires_grad_(); },
       Kind::invalid_argument, "[requires_grad_] only float tensors can require grad; got int64[2]"},
      {"item() of a multi-element tensor", [] { Tensor::zeros({2, 3}).item(); }, Kind::invalid_argument,
       "[item] expected a one-element tensor; got shape [2, 3]"},
      {"data<double>() of a float32 tensor", [] { Tensor::zeros({2}).data<double>(); }, Kind::invalid_argument,
       "[Tensor::data] requested float64 from a float32 tensor"},
      {"at() out of range", [] { Tensor::zeros({2, 3}).at({5, 0}); }, Kind::invalid_argument,
       "[Tensor::at] index 5 out of range for dim 0 of shape [2, 3]"},
      {"set() with too few indices", [] { Tensor::zeros({2, 3}).set({0}, 1.0); }, Kind::invalid_argument,
       "[Tensor::set] index has 1 entries for a tensor of shape [2, 3]"},
      {"flat() past the end", [] { Tensor::zeros({2, 3}).flat(6); }, Kind::invalid_argument,
       "[Tensor::flat] index 6 out of range for 6 elements; got shape [2, 3]"},
      {"set() of 1e300 into int64", [] { Tensor::zeros({2}, DType::Int64).set({0}, 1e300); }, Kind::invalid_argument,
       "[Tensor::set] value 1e+300 does not fit in int64"},
      {"to(int64) of a NaN", [] { Tensor::full({2}, std::nan(""), DType::Float64).to(DType::Int64); },
       Kind::invalid_argument, "[copy_] value nan does not fit in int64"},
      {"size(0) of a 0-d tensor", [] { Tensor::scalar(1.0).size(0); }, Kind::invalid_argument,
       "[Tensor::size] a 0-d tensor has no dims; got d=0"},
      {"gradcheck of a float32 input", [square] { gradcheck(square, {Var(Tensor::ones({2}), true)}); },
       Kind::invalid_argument, "[gradcheck] input 0 requires grad but is float32[2]; gradcheck needs float64"},
      {"gradcheck of an undefined input", [square] { gradcheck(square, {f64({2}, true), Var()}); },
       Kind::invalid_argument, "[gradcheck] input 1 is an undefined Var"},
      {"gradcheck of an fn whose output needs no grad", [] {
         gradcheck([](const std::vector<Var>& in) { return in[0].detach(); }, {f64({2}, true)});
       },
       Kind::invalid_argument, "[gradcheck] fn's output does not require grad; got float64[2]"},
      {"gradcheck of an fn returning an undefined Var",
       [] { gradcheck([](const std::vector<Var>&) { return Var(); }, {f64({2}, true)}); }, Kind::invalid_argument,
       "[gradcheck] fn returned an undefined Var"},
      {"gradcheck of an empty fn", [] { gradcheck(GradcheckFn(), {f64({2}, true)}); }, Kind::invalid_argument,
       "[gradcheck] fn is empty"},
      {"record of an undefined result", [] { record("my_op", Tensor(), {f64({2}, true)}, nullptr); },
       Kind::logic_error, "[my_op] record: the result is an undefined Tensor"},
      {"record without a backward function", [] { record("my_op", Tensor::ones({2}), {f64({2}, true)}, nullptr); },
       Kind::logic_error, "[my_op] record: no backward function for a result that requires grad"},
  };
}

std::vector<Row> more_undefined_rows() {
  return {
      {"Var().is_leaf()", [] { Var().is_leaf(); }, Kind::logic_error, "[Var::is_leaf] called on an undefined Var"},
      {"Var().op()", [] { Var().op(); }, Kind::logic_error, "[Var::op] called on an undefined Var"},
      {"Var().numel()", [] { Var().numel(); }, Kind::logic_error, "[Var::numel] called on an undefined Var"},
      {"Var().size(0)", [] { Var().size(0); }, Kind::logic_error, "[Var::size] called on an undefined Var"},
      {"Var().set_grad()", [] { Var().set_grad(Tensor::ones({1})); }, Kind::logic_error,
       "[Var::set_grad] called on an undefined Var"},
      {"Tensor().at()", [] { Tensor().at({0}); }, Kind::logic_error, "[Tensor::at] called on an undefined Tensor"},
      {"Tensor().set()", [] { Tensor().set({0}, 1.0); }, Kind::logic_error, "[Tensor::set] called on an undefined Tensor"},
      {"Tensor().flat()", [] { Tensor().flat(0); }, Kind::logic_error, "[Tensor::flat] called on an undefined Tensor"},
      {"Tensor().fill_()", [] { Tensor().fill_(1.0); }, Kind::logic_error, "[Tensor::fill_] called on an undefined Tensor"},
      {"Tensor().zero_()", [] { Tensor().zero_(); }, Kind::logic_error, "[Tensor::zero_] called on an undefined Tensor"},
      {"Tensor().to()", [] { Tensor().to(DType::Float64); }, Kind::logic_error, "[Tensor::to] called on an undefined Tensor"},
      {"Tensor().rows()", [] { Tensor().rows(0, 0); }, Kind::logic_error, "[Tensor::rows] called on an undefined Tensor"},
      {"Tensor().size()", [] { Tensor().size(0); }, Kind::logic_error, "[Tensor::size] called on an undefined Tensor"},
      {"Tensor().to_vector()", [] { Tensor().to_vector(); }, Kind::logic_error,
       "[Tensor::to_vector] called on an undefined Tensor"},
      {"Tensor().copy_()", [] { Tensor().copy_(Tensor::zeros({2})); }, Kind::logic_error,
       "[Tensor::copy_] called on an undefined Tensor"},
      {"a backward closure adding an undefined gradient", [] {
         Var a = f64({2}, true);
         record("my_op", Tensor::ones({2}, DType::Float64), {a}, [](const Tensor&, Grads& g) { g.add(0, Tensor()); })
             .backward(Tensor::ones({2}, DType::Float64));
       },
       Kind::logic_error, "[backward] gradient for input 0 is an undefined Tensor"},
      {"a backward closure adding a gradient of the wrong shape", [] {
         Var a = f64({2}, true);
         record("my_op", Tensor::ones({2}, DType::Float64), {a},
                [](const Tensor&, Grads& g) { g.add(0, Tensor::ones({3}, DType::Float64)); })
             .backward(Tensor::ones({2}, DType::Float64));
       },
       Kind::logic_error, "[backward] gradient for input 0 has float64[3], expected float64[2]"},
  };
}

}  // namespace

TEST_CASE("bad library calls table: every row throws its exception type and message, none crashes",
          "[errors][bad_calls]") {
  std::vector<Row> rows;
  for (auto part : {creation_rows(), view_rows(), op_rows(), undefined_rows(), more_undefined_rows(), misuse_rows()})
    rows.insert(rows.end(), part.begin(), part.end());
  REQUIRE(rows.size() >= 40);
  int failed = 0;
  for (const Row& row : rows) {
    Outcome got = run(row.call);
    bool ok = got.kind == kind_name(row.kind) && got.message.find(row.message) != std::string::npos;
    if (!ok) {
      ++failed;
      UNSCOPED_INFO("row '" << row.what << "': expected " << kind_name(row.kind) << " containing \"" << row.message
                            << "\"; got " << got.kind << " \"" << got.message << "\"");
    }
  }
  INFO(rows.size() << " rows");
  CHECK(failed == 0);
}

TEST_CASE("sizes: a failed allocation throws std::bad_alloc and leaves the allocator's books balanced",
          "[errors][sizes]") {
  kernels::AllocatorStats before = kernels::allocator_stats();
  // Exactly the size limit (2^48 bytes): a valid request that no machine can satisfy.
  REQUIRE_THROWS_AS(Tensor::empty({int64_t{1} << 46}, DType::Float32), std::bad_alloc);
  REQUIRE(kernels::allocator_stats().bytes_in_use == before.bytes_in_use);
  REQUIRE_THROWS_AS(kernels::allocate(std::numeric_limits<size_t>::max() - 8), std::bad_alloc);
  REQUIRE(kernels::allocator_stats().bytes_in_use == before.bytes_in_use);
}

TEST_CASE("sizes: numel is checked once for every shape, and valid edge shapes still work", "[sizes]") {
  REQUIRE(numel({}) == 1);
  REQUIRE(numel({0, k62}) == 0);
  REQUIRE(numel({k62, 1}) == k62);
  REQUIRE(numel({kMax}) == kMax);
  REQUIRE(!try_numel({k62, 2}).has_value());
  REQUIRE(!try_numel({3, -1}).has_value());
  REQUIRE(try_numel({2, 0, 5}) == 0);
  REQUIRE(nbytes({3, 5}, DType::Float64, "t") == 120);
  REQUIRE(nbytes({kMaxTensorBytes}, DType::Bool, "t") == static_cast<size_t>(kMaxTensorBytes));
  REQUIRE_THROWS_WITH(nbytes({kMaxTensorBytes + 1}, DType::Bool, "t"),
                      Catch::Matchers::Contains("[t] a bool tensor of 281474976710657 elements exceeds the size limit"));
  REQUIRE_THROWS_WITH(numel({2, -1}, "my_op"),
                      Catch::Matchers::Contains("[my_op] negative size -1 at dim 1; got shape=[2, -1]"));
  // Empty tensors with a large (but countable) other dim are fine, and so are ops on them.
  Var e(Tensor::zeros({0, k40}, DType::Float64), true);
  REQUIRE(e.numel() == 0);
  REQUIRE(reshape(e, {k40, 0}).shape() == Shape{k40, 0});
  REQUIRE(Tensor::zeros({4}).reshape({-1, 2}).shape() == Shape{2, 2});
  REQUIRE(Tensor::arange(0, 5, 2, DType::Int64).to_vector() == std::vector<double>{0, 2, 4});
  REQUIRE(Tensor::arange(3, 0, 1, DType::Int64).numel() == 0);
}

TEST_CASE("matmul: an empty result needs no GEMM and gives zero gradients of the operands' shapes", "[sizes][grad]") {
  // [2, 0, 3] @ [3, 4] -> [2, 0, 4]: no elements, so b gets a zero gradient.
  Var a(Tensor::ones({2, 0, 3}, DType::Float64), true), b(Tensor::ones({3, 4}, DType::Float64), true);
  Var y = matmul(a, b);
  REQUIRE(y.shape() == Shape{2, 0, 4});
  sum(y).backward();
  REQUIRE(a.grad().shape() == Shape{2, 0, 3});
  REQUIRE(b.grad().shape() == Shape{3, 4});
  for (double v : b.grad().to_vector()) REQUIRE(v == 0.0);
  // A broadcast batch of 2^62 matrices, all empty: no per-matrix index tables are built.
  Var c(Tensor::zeros({k31, 1, 0, 2}, DType::Float64), true), d(Tensor::zeros({1, k31, 2, 0}, DType::Float64));
  Var z = matmul(c, d);
  REQUIRE(z.shape() == Shape{k31, k31, 0, 0});
  sum(z).backward();
  REQUIRE(c.grad().shape() == Shape{k31, 1, 0, 2});
}
