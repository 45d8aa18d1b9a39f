#include "framework/gradcheck.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "framework/check.h"

namespace tg {
namespace {

// sum(y * u) in float64, sequential (exact order matters for reproducibility, not speed).
double dot(const Tensor& y, const Tensor& u) {
  const double* py = y.data<double>();
  const double* pu = u.data<double>();
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i) s += py[i] * pu[i];
  return s;
}

std::string index_string(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return to_string(idx);
}

// Fresh leaves holding copies of the inputs' values (so fn's graph never touches the caller's Vars).
std::vector<Var> fresh_inputs(const std::vector<Var>& inputs) {
  std::vector<Var> xs;
  for (const Var& v : inputs) xs.emplace_back(v.value().clone(), v.requires_grad());
  return xs;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Var>& inputs, const GradcheckOptions& o) {
  for (size_t i = 0; i < inputs.size(); ++i)
    TG_CHECK(!inputs[i].requires_grad() || inputs[i].dtype() == DType::Float64, "gradcheck", "input ", i,
             " requires grad but is ", describe(inputs[i].value()), "; gradcheck needs float64");
  // Analytic pass: backward of sum(y * u) with a seeded random u.
  std::vector<Var> xs = fresh_inputs(inputs);
  Var y = fn(xs);
  TG_CHECK(y.requires_grad(), "gradcheck", "fn's output does not require grad; got ", describe(y.value()));
  TG_CHECK(y.dtype() == DType::Float64, "gradcheck", "fn's output must be float64; got ", describe(y.value()));
  Generator gen(o.seed);
  Tensor u = Tensor::uniform(y.shape(), -1.0, 1.0, gen, DType::Float64);
  y.backward(u);

  GradcheckResult r;
  std::ostringstream failures;
  failures.precision(12);
  int64_t n_fail = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    Tensor analytic = xs[i].grad().defined() ? xs[i].grad() : Tensor::zeros(inputs[i].shape(), DType::Float64);
    int64_t n = inputs[i].numel();
    int64_t step = (o.max_elements > 0 && n > o.max_elements) ? (n + o.max_elements - 1) / o.max_elements : 1;
    for (int64_t e = 0; e < n; e += step) {
      std::vector<Var> probe = fresh_inputs(inputs);
      double* p = probe[i].value().data<double>();
      double orig = p[e];
      double fp, fm;
      {
        NoGradGuard no_grad;
        p[e] = orig + o.eps;
        fp = dot(fn(probe).value(), u);
        p[e] = orig - o.eps;
        fm = dot(fn(probe).value(), u);
      }
      double numeric = (fp - fm) / (2.0 * o.eps);
      double a = analytic.data<double>()[e];
      double err = std::abs(a - numeric);
      double rel = std::abs(numeric) > o.atol ? err / std::abs(numeric) : 0.0;
      r.max_abs_error = std::max(r.max_abs_error, err);
      r.max_rel_error = std::max(r.max_rel_error, rel);
      ++r.checked;
      bool bad = !(err <= o.atol + o.rtol * std::abs(numeric));   // also catches NaN
      if (bad && n_fail++ < 5)
        failures << "  input " << i << " " << describe(inputs[i].value()) << " element "
                 << index_string(inputs[i].shape(), e) << ": analytic " << a << ", numeric " << numeric
                 << ", abs error " << err << ", rel error " << rel << "\n";
    }
  }
  if (n_fail > 0) {
    r.ok = false;
    std::ostringstream msg;
    msg.precision(10);
    msg << "[gradcheck] " << n_fail << " of " << r.checked << " elements differ (atol " << o.atol << ", rtol "
        << o.rtol << ", eps " << o.eps << "):\n"
        << failures.str() << "  max abs error " << r.max_abs_error << ", max rel error " << r.max_rel_error;
    r.message = msg.str();
    if (o.raise_exception) throw std::runtime_error(r.message);
  }
  return r;
}

}  // namespace tg
