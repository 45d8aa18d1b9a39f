#include <fstream>
#include <unistd.h>

#include "framework/kernels/allocator.h"
#include "framework/kernels/basic.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {
int64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}
}  // namespace

TEST_CASE("tape: backward from a one-element output accumulates into leaves", "[tape]") {
  Var x(Tensor::from_vector(std::vector<double>{2.0}, {1}), true);
  Var y = x * x * 3.0;   // dy/dx = 6x = 12
  y.backward();
  REQUIRE(x.grad().at({0}) == 12.0);
  Var z = x * 5.0;       // grads accumulate across backward calls, as in PyTorch
  z.backward();
  REQUIRE(x.grad().at({0}) == 17.0);
  x.zero_grad();
  REQUIRE(!x.grad().defined());
}

TEST_CASE("tape: explicit upstream gradient and inputs that do not require grad", "[tape]") {
  Var a(Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}), true);
  Var b(Tensor::from_vector(std::vector<double>{4, 5, 6}, {3}));   // constant
  Var y = a * b;
  y.backward(Tensor::from_vector(std::vector<double>{1, 10, 100}, {3}));
  REQUIRE(a.grad().to_vector() == std::vector<double>{4, 50, 600});
  REQUIRE(!b.grad().defined());
  REQUIRE(!b.requires_grad());
  REQUIRE(y.requires_grad());
  REQUIRE(!y.is_leaf());
}

TEST_CASE("tape: detach and NoGradGuard record nothing", "[tape]") {
  Var a(Tensor::from_vector(std::vector<double>{1, 2}, {2}), true);
  Var d = a.detach();
  REQUIRE(!d.requires_grad());
  REQUIRE(d.value().shares_storage(a.value()));
  {
    NoGradGuard guard;
    REQUIRE(!grad_enabled());
    Var y = a * 2.0;
    REQUIRE(!y.requires_grad());
  }
  REQUIRE(grad_enabled());
  REQUIRE((a * 2.0).requires_grad());
}

TEST_CASE("tape: a second backward over a freed graph throws, retain_graph allows it", "[tape]") {
  Var a(Tensor::from_vector(std::vector<double>{1.5}, {1}), true);
  Var y = exp(a) * a;
  y.backward(true);   // retain_graph
  double once = a.grad().at({0});
  y.backward();
  REQUIRE(a.grad().at({0}) == Approx(2 * once));
  REQUIRE_THROWS_AS(y.backward(), std::logic_error);
  REQUIRE_THROWS_WITH(y.backward(), Contains("[backward] the graph of 'mul' was freed by a previous backward; pass retain_graph=true"));
}

TEST_CASE("tape: bad backward calls throw clear errors", "[tape][errors]") {
  Var c(Tensor::from_vector(std::vector<double>{1, 2}, {2}));
  REQUIRE_THROWS_WITH(c.backward(Tensor::ones({2}, DType::Float64)), Contains("does not require grad"));
  Var a(Tensor::from_vector(std::vector<double>{1, 2}, {2}), true);
  Var y = a * 2.0;
  REQUIRE_THROWS_WITH(y.backward(), Contains("[backward] grad can be implicitly created only for one-element outputs; got shape [2]"));
  REQUIRE_THROWS_WITH(y.backward(Tensor::ones({3}, DType::Float64)),
                      Contains("[backward] grad_output must match the output; got grad_output=float64[3], output=float64[2]"));
  Var i(Tensor::zeros({2}, DType::Int64));
  REQUIRE_THROWS_WITH(i.requires_grad_(), Contains("only float tensors can require grad"));
}

TEST_CASE("tape: 1,000 training steps keep memory flat (the tape is freed after backward)", "[tape][memory]") {
  Var w1 = rand_var({64, 64}, 1), w2 = rand_var({64, 64}, 2);
  Tensor x = rand_tensor({64, 64}, 3), g = rand_tensor({64, 64}, 4);
  int64_t in_use_after_warmup = 0, rss_after_warmup = 0, in_use_last = 0;
  for (int step = 0; step < 1000; ++step) {
    Var h = tanh(Var(x) * w1 + w2);
    Var y = sigmoid(h * w2) * h;
    y.backward(g);
    kernels::axpy_into(w1.value(), -1e-3, w1.grad());
    kernels::axpy_into(w2.value(), -1e-3, w2.grad());
    w1.zero_grad();
    w2.zero_grad();
    if (step == 10) {
      in_use_after_warmup = kernels::allocator_stats().bytes_in_use;
      rss_after_warmup = resident_bytes();
    }
    in_use_last = kernels::allocator_stats().bytes_in_use;   // same point of the loop body
  }
  REQUIRE(in_use_last == in_use_after_warmup);
#if defined(__SANITIZE_ADDRESS__)
  constexpr bool kCheckRss = false;   // ASan's quarantine keeps freed heap blocks resident on purpose
#else
  constexpr bool kCheckRss = true;
#endif
  if (kCheckRss) REQUIRE(resident_bytes() - rss_after_warmup < 4 * 1024 * 1024);
}

namespace {
// Engine internals are not reachable from user code: these expressions do not compile outside tape.cpp.
template <class G> concept CanTakeSlot = requires(G& g) { g.take(size_t{0}); };
template <class G> concept CanMakeGrads = requires(const std::vector<std::shared_ptr<Node>>& in) { G(in); };
template <class V> concept CanReadNodeFields = requires(const V& v) { v.node()->value; };
}  // namespace

TEST_CASE("tape: Grads slots and Node fields are engine-only", "[tape]") {
  STATIC_REQUIRE(!CanTakeSlot<Grads>);
  STATIC_REQUIRE(!CanMakeGrads<Grads>);
  STATIC_REQUIRE(!CanReadNodeFields<Var>);
  // What a backward closure may use: wants() and add(); node() still gives identity.
  Var a(Tensor::from_vector(std::vector<double>{1, 2}, {2}), true);
  Var y = record("twice", Tensor::from_vector(std::vector<double>{2, 4}, {2}), {a, Var()},
                 [](const Tensor& gy, Grads& g) {
                   REQUIRE(g.wants(0));
                   REQUIRE(!g.wants(1));   // an undefined (optional) input gets no gradient
                   g.add(0, kernels::add(gy, gy));
                 });
  y.backward(Tensor::from_vector(std::vector<double>{1, 10}, {2}));
  REQUIRE(a.grad().to_vector() == std::vector<double>{2, 20});
  REQUIRE(a.node() == Var(a).node());
  REQUIRE(a.node() != a.detach().node());
}

TEST_CASE("tape: an undefined Var answers defined() and requires_grad() and throws for everything else",
          "[tape][errors]") {
  Var u;
  REQUIRE(!u.defined());
  REQUIRE(!u.requires_grad());
  REQUIRE(u.same(Var()));
  REQUIRE_THROWS_AS(u.backward(), std::logic_error);
  REQUIRE_THROWS_WITH(u.shape(), Contains("[Var::shape] called on an undefined Var (default-constructed)"));
  REQUIRE_THROWS_WITH(tanh(u), Contains("[tanh] a is an undefined Var"));
}

TEST_CASE("tape: an intermediate no closure needs is freed with its last Var, before the backward", "[tape][memory]") {
  Var a(Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}), true);
  Var b(Tensor::from_vector(std::vector<double>{10, 20, 30}, {3}), true);
  Tensor seen;   // a second reference to the intermediate's storage
  Var out;
  {
    Var y = a + a;   // add's closure keeps shapes only
    seen = y.value();
    Var copy = y;
    REQUIRE(seen.storage_use_count() == 2);   // seen and the node
    out = y + b;                              // the graph now points at y's node too
    y = Var();                                // one Var of y left: the value stays
    REQUIRE(seen.storage_use_count() == 2);
    REQUIRE(copy.value().to_vector() == std::vector<double>{2, 4, 6});
  }
  REQUIRE(seen.storage_use_count() == 1);     // the node let go of the value; the graph is intact
  out.backward(Tensor::from_vector(std::vector<double>{1, 10, 100}, {3}));
  REQUIRE(a.grad().to_vector() == std::vector<double>{2, 20, 200});
  REQUIRE(b.grad().to_vector() == std::vector<double>{1, 10, 100});
}

TEST_CASE("tape: values captured by a closure, leaves and values still held by a Var are kept", "[tape][memory]") {
  Var a(Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}), true);
  Tensor seen, leaf = a.value();
  Var out;
  {
    Var y = a + a;     // y = 2a; add's closure keeps shapes only
    seen = y.value();
    out = y * y;       // mul keeps both operand values for its gradient
  }
  REQUIRE(seen.storage_use_count() == 5);   // seen, mul's closure and saved list (twice each); the node let go
  REQUIRE(leaf.storage_use_count() >= 2);   // a leaf's node keeps its value
  out.backward(Tensor::ones({3}, DType::Float64));
  REQUIRE(a.grad().to_vector() == std::vector<double>{8, 16, 24});   // d(4a^2)/da = 8a
  // Assigning a Var to itself or to a copy of itself keeps the value.
  Var z = a * 3.0, w = exp(z);
  Var& zr = z;
  z = zr;
  z = Var(z);
  REQUIRE(z.value().to_vector() == std::vector<double>{3, 6, 9});
  REQUIRE(w.defined());
}

TEST_CASE("tape: a wrong gradient for a released input names the input's shape and dtype", "[tape][errors]") {
  Var a(Tensor::from_vector(std::vector<double>{1, 2}, {2}), true);
  Var out = record("bad", Tensor::from_vector(std::vector<double>{0}, {1}), {a * 2.0},
                   [](const Tensor&, Grads& g) { g.add(0, Tensor::zeros({3}, DType::Float64)); });
  REQUIRE_THROWS_WITH(out.backward(), Contains("[backward] gradient for input 0 has float64[3], expected float64[2]"));
}
