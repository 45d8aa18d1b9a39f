// Gradient clipping (optim/clip_grad.h) against torch.nn.utils.clip_grad_norm_ / clip_grad_value_
// results recorded by tests/fixtures/gen/optim_trajectories.py (group /clip).
#include <cmath>
#include <stdexcept>

#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/optim/clip_grad.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::optim;
using namespace tg::test;
using Catch::Matchers::Contains;

namespace {

const std::string kFixture = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/optim_trajectories.h5";

// Parameters "a", "b" with the recorded grads (as dtype) and "c" without a grad.
NamedParams clip_params(const io::H5File& f, DType dtype) {
  NamedParams ps;
  for (const char* n : {"a", "b"}) {
    Tensor g = f.read(std::string("clip/grads/") + n);
    Var p(Tensor::zeros(g.shape(), dtype), true);
    p.set_grad(g.to(dtype).clone());
    ps.emplace_back(n, p);
  }
  ps.emplace_back("c", Var(Tensor::zeros({2}, dtype), true));
  return ps;
}

std::vector<Var> vars(const NamedParams& ps) {
  std::vector<Var> v;
  for (const auto& [n, p] : ps) v.push_back(p);
  return v;
}

}  // namespace

TEST_CASE("clip_grad_norm_: total norm and clipped grads match PyTorch (norms 2, 1, 3, inf, 0, -inf)",
          "[optim][parity]") {
  io::H5File f(kFixture, io::H5File::Mode::read);
  for (const char* c : {"norm2_clipped", "norm2_unclipped", "norm1", "norm3", "norminf", "norm0", "normneginf"}) {
    const std::string base = std::string("clip/") + c;
    const double max_norm = f.attr_double(base, "max_norm"), norm_type = f.attr_double(base, "norm_type");
    const double expected = f.read(base + "/total_norm").item();
    for (DType dtype : {DType::Float64, DType::Float32}) {
      INFO(c << (dtype == DType::Float64 ? " float64" : " float32"));
      NamedParams ps = clip_params(f, dtype);
      double total = dtype == DType::Float64 ? clip_grad_norm_(vars(ps), max_norm, norm_type)
                                             : clip_grad_norm_(ps, max_norm, norm_type);
      const double tol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      CHECK(std::abs(total - expected) <= tol * std::max(1.0, std::abs(expected)));
      for (size_t i = 0; i < 2; ++i)
        CHECK(max_abs_diff(ps[i].second.grad(), f.read(base + "/" + ps[i].first).to(dtype)) <= tol);
      CHECK_FALSE(ps[2].second.grad().defined());
    }
  }
}

TEST_CASE("clip_grad_norm_: unclipped grads are left bitwise unchanged", "[optim]") {
  io::H5File f(kFixture, io::H5File::Mode::read);
  NamedParams ps = clip_params(f, DType::Float64);
  Tensor before = ps[0].second.grad().clone();
  clip_grad_norm_(ps, 1e3);
  CHECK(ps[0].second.grad().bit_equal(before));
}

TEST_CASE("clip_grad_value_: clamps like PyTorch and skips params without grad", "[optim][parity]") {
  io::H5File f(kFixture, io::H5File::Mode::read);
  NamedParams ps = clip_params(f, DType::Float64);
  clip_grad_value_(ps, 0.5);
  for (size_t i = 0; i < 2; ++i)
    CHECK(ps[i].second.grad().bit_equal(f.read("clip/value_0.5/" + ps[i].first)));
  CHECK_FALSE(ps[2].second.grad().defined());
  Var p(Tensor::zeros({3}, DType::Float32), true);
  p.set_grad(Tensor::from_vector(std::vector<float>{-2.0f, NAN, 0.25f}, {3}));
  clip_grad_value_(std::vector<Var>{p}, 1.0);
  CHECK(p.grad().flat(0) == -1.0);
  CHECK(std::isnan(p.grad().flat(1)));
  CHECK(p.grad().flat(2) == 0.25);
}

TEST_CASE("clip_grad_norm_: no grads gives 0, non-finite norms scale like PyTorch or throw on request",
          "[optim][errors]") {
  Var a(Tensor::zeros({2}, DType::Float64), true);
  CHECK(clip_grad_norm_(std::vector<Var>{a}, 1.0) == 0.0);
  a.set_grad(Tensor::from_vector(std::vector<double>{INFINITY, 1.0}, {2}));
  Tensor before = a.grad().clone();
  REQUIRE_THROWS_AS(clip_grad_norm_(std::vector<Var>{a}, 1.0, 2.0, true), std::runtime_error);
  REQUIRE_THROWS_WITH(clip_grad_norm_(std::vector<Var>{a}, 1.0, 2.0, true),
                      Contains("[clip_grad_norm_] the total norm of order 2 for gradients from `parameters` is "
                               "non-finite, so it cannot be clipped; got total_norm=inf"));
  CHECK(a.grad().bit_equal(before));
  // PyTorch: clip_coef = 1 / inf = 0, grads * 0 -> [nan, 0].
  CHECK(std::isinf(clip_grad_norm_(std::vector<Var>{a}, 1.0)));
  CHECK(std::isnan(a.grad().flat(0)));
  CHECK(a.grad().flat(1) == 0.0);
}

TEST_CASE("clip_grad_norm_ / clip_grad_value_: bad arguments are rejected", "[optim][errors]") {
  Var a(Tensor::ones({2}, DType::Float64), true);
  a.set_grad(Tensor::ones({2}, DType::Float64));
  std::vector<Var> ps{a};
  REQUIRE_THROWS_WITH(clip_grad_norm_(ps, -1.0), Contains("[clip_grad_norm_] max_norm must be >= 0; got max_norm=-1"));
  REQUIRE_THROWS_WITH(clip_grad_norm_(ps, NAN), Contains("[clip_grad_norm_] max_norm must be >= 0; got max_norm=nan"));
  REQUIRE_THROWS_WITH(clip_grad_norm_(ps, 1.0, NAN), Contains("[clip_grad_norm_] norm_type must be a number"));
  REQUIRE_THROWS_WITH(clip_grad_norm_(std::vector<Var>{a, Var()}, 1.0),
                      Contains("[clip_grad_norm_] parameter 1 is an undefined Var"));
  REQUIRE_THROWS_WITH(clip_grad_value_(ps, -0.5),
                      Contains("[clip_grad_value_] clip_value must be >= 0; got clip_value=-0.5"));
  REQUIRE_THROWS_WITH(clip_grad_value_(std::vector<Var>{Var()}, 0.5),
                      Contains("[clip_grad_value_] parameter 0 is an undefined Var"));
  CHECK(a.grad().to_vector() == std::vector<double>{1.0, 1.0});
}

TEST_CASE("clip_grad_norm_: the total norm is bitwise identical for 1 and 2 threads", "[optim][determinism]") {
  Var big(Tensor::zeros({300001}, DType::Float32), true);
  Var other(Tensor::zeros({7, 5}, DType::Float64), true);
  double totals[2][3];
  const int original = get_num_threads();
  for (int t = 1; t <= 2; ++t) {
    set_num_threads(t);
    for (int k = 0; k < 3; ++k) {
      double norm_type = k == 0 ? 2.0 : (k == 1 ? 1.5 : INFINITY);
      big.set_grad(rand_tensor({300001}, 11, -1.0, 1.0, DType::Float32));
      other.set_grad(rand_tensor({7, 5}, 12));
      totals[t - 1][k] = clip_grad_norm_(std::vector<Var>{big, other}, 0.1, norm_type);
    }
  }
  set_num_threads(original);
  for (int k = 0; k < 3; ++k) CHECK(totals[0][k] == totals[1][k]);
}
