#include "tapegrad/framework/gradcheck.h"

#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>

#include "tapegrad/framework/check.h"

namespace tg {
namespace {

// sum(y * u) in float64, sequential (exact order matters for reproducibility, not speed).
double dot(const Tensor& y, const Tensor& u) {
  TG_CHECK(y.shape() == u.shape(), "gradcheck", "fn's output changed shape between calls; got ", to_string(y.shape()),
           ", first call ", to_string(u.shape()));
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
  return gradcheck(fn, inputs, {}, o);
}

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Var>& inputs, std::span<const Var> params,
                          const GradcheckOptions& o) {
  TG_CHECK(static_cast<bool>(fn), "gradcheck", "fn is empty");
  for (size_t i = 0; i < inputs.size(); ++i)
    check_defined("gradcheck", ("input " + std::to_string(i)).c_str(), inputs[i]);
  for (size_t i = 0; i < params.size(); ++i)
    check_defined("gradcheck", ("param " + std::to_string(i)).c_str(), params[i]);
  for (size_t i = 0; i < inputs.size(); ++i)
    TG_CHECK(!inputs[i].requires_grad() || inputs[i].dtype() == DType::Float64, "gradcheck", "input ", i,
             " requires grad but is ", describe(inputs[i].value()), "; gradcheck needs float64");
  for (size_t i = 0; i < params.size(); ++i)
    TG_CHECK(params[i].requires_grad() && params[i].is_leaf() && params[i].dtype() == DType::Float64, "gradcheck",
             "param ", i, " must be a float64 leaf that requires grad; got ", describe(params[i].value()));
  // Analytic pass: backward of sum(y * u) with a seeded random u; params' own grads are set aside.
  std::vector<Tensor> saved_grads;
  for (const Var& p : params) {
    saved_grads.push_back(p.grad());
    Var(p).zero_grad();
  }
  std::vector<Var> xs = fresh_inputs(inputs);
  Var y = fn(xs);
  TG_CHECK(y.defined(), "gradcheck", "fn returned an undefined Var");
  TG_CHECK(y.requires_grad(), "gradcheck", "fn's output does not require grad; got ", describe(y.value()));
  TG_CHECK(y.dtype() == DType::Float64, "gradcheck", "fn's output must be float64; got ", describe(y.value()));
  Generator gen(o.seed);
  Tensor u = Tensor::uniform(y.shape(), -1.0, 1.0, gen, DType::Float64);
  y.backward(u);
  y = Var();

  // Every checked tensor: its analytic gradient and how to perturb element e of it.
  struct Target {
    std::string label;
    Tensor analytic;
    std::function<double*(std::vector<Var>&)> data;   // where element 0 lives for one evaluation
  };
  std::vector<Target> targets;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    targets.push_back({"input " + std::to_string(i) + " " + describe(inputs[i].value()),
                       xs[i].grad().defined() ? xs[i].grad() : Tensor::zeros(inputs[i].shape(), DType::Float64),
                       [i](std::vector<Var>& probe) { return probe[i].value().data<double>(); }});
  }
  for (size_t i = 0; i < params.size(); ++i) {
    Var p = params[i];
    targets.push_back({"param " + std::to_string(inputs.size() + i) + " " + describe(p.value()),
                       p.grad().defined() ? p.grad() : Tensor::zeros(p.shape(), DType::Float64),
                       [p](std::vector<Var>&) mutable { return p.value().data<double>(); }});
    Var(p).set_grad(saved_grads[i]);
  }

  GradcheckResult r;
  std::ostringstream failures;
  failures.precision(12);
  int64_t n_fail = 0;
  for (const Target& t : targets) {
    int64_t n = t.analytic.numel();
    int64_t step = (o.max_elements > 0 && n > o.max_elements) ? (n + o.max_elements - 1) / o.max_elements : 1;
    for (int64_t e = 0; e < n; e += step) {
      std::vector<Var> probe = fresh_inputs(inputs);
      double* p = t.data(probe);
      const double orig = p[e];
      double fp, fm;
      {
        NoGradGuard no_grad;
        p[e] = orig + o.eps;
        fp = dot(fn(probe).value(), u);
        p[e] = orig - o.eps;
        fm = dot(fn(probe).value(), u);
        p[e] = orig;
      }
      double numeric = (fp - fm) / (2.0 * o.eps);
      double a = t.analytic.data<double>()[e];
      double err = std::abs(a - numeric);
      double rel = std::abs(numeric) > o.atol ? err / std::abs(numeric) : 0.0;
      r.max_abs_error = std::max(r.max_abs_error, err);
      r.max_rel_error = std::max(r.max_rel_error, rel);
      ++r.checked;
      bool bad = !(err <= o.atol + o.rtol * std::abs(numeric));   // also catches NaN
      if (bad && n_fail++ < 5)
        failures << "  " << t.label << " element " << index_string(t.analytic.shape(), e) << ": analytic " << a
                 << ", numeric " << numeric << ", abs error " << err << ", rel error " << rel << "\n";
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
