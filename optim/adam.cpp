#include "tapegrad/optim/adam.h"

#include <cmath>

#include "tapegrad/framework/check.h"
#include "framework/kernels/optim_update.h"

namespace tg::optim {
namespace {

using detail::format_number;

// PyTorch's checks of Adam.__init__ / AdamW.__init__, with NaN and inf rejected as well.
template <class Options> void validate_adam(const Options& o, const char* op) {
  TG_CHECK(std::isfinite(o.lr) && o.lr >= 0, op, "invalid learning rate: ", format_number(o.lr),
           " (lr must be finite and >= 0)");
  TG_CHECK(std::isfinite(o.eps) && o.eps >= 0, op, "invalid epsilon value: ", format_number(o.eps),
           " (eps must be finite and >= 0)");
  TG_CHECK(o.betas.first >= 0 && o.betas.first < 1, op, "invalid beta parameter at index 0: ",
           format_number(o.betas.first), " (betas must be in [0, 1))");
  TG_CHECK(o.betas.second >= 0 && o.betas.second < 1, op, "invalid beta parameter at index 1: ",
           format_number(o.betas.second), " (betas must be in [0, 1))");
  TG_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, op, "invalid weight_decay value: ",
           format_number(o.weight_decay), " (weight_decay must be finite and >= 0)");
}

template <class Options> void save_adam(const Options& o, const std::string& prefix, StateDict& out) {
  out.add(prefix + "lr", detail::scalar_f64(o.lr));
  out.add(prefix + "betas", Tensor::from_vector(std::vector<double>{o.betas.first, o.betas.second}, {2}));
  out.add(prefix + "eps", detail::scalar_f64(o.eps));
  out.add(prefix + "weight_decay", detail::scalar_f64(o.weight_decay));
  out.add(prefix + "amsgrad", detail::scalar_bool(o.amsgrad));
  out.add(prefix + "maximize", detail::scalar_bool(o.maximize));
}

template <class Options> void load_adam(const StateDict& in, const std::string& prefix, const char* op, Options& o) {
  o.lr = detail::read_f64(in, prefix + "lr", op);
  Tensor betas = detail::read_tensor(in, prefix + "betas", op, DType::Float64, {2});
  o.betas = {betas.data<double>()[0], betas.data<double>()[1]};
  o.eps = detail::read_f64(in, prefix + "eps", op);
  o.weight_decay = detail::read_f64(in, prefix + "weight_decay", op);
  o.amsgrad = detail::read_bool(in, prefix + "amsgrad", op);
  o.maximize = detail::read_bool(in, prefix + "maximize", op);
}

Tensor& ensure(ParamState& st, const char* field, const Var& param) {
  if (Tensor* t = st.find(field)) return *t;
  st.tensors.emplace_back(field, Tensor::zeros(param.shape(), param.dtype()));
  return st.tensors.back().second;
}

}  // namespace

void AdamOptions::validate() const { validate_adam(*this, "Adam"); }
void AdamWOptions::validate() const { validate_adam(*this, "AdamW"); }

void save_options(const AdamOptions& o, const std::string& prefix, StateDict& out) { save_adam(o, prefix, out); }
void load_options(const StateDict& in, const std::string& prefix, const char* op, AdamOptions& o) {
  load_adam(in, prefix, op, o);
}
void save_options(const AdamWOptions& o, const std::string& prefix, StateDict& out) { save_adam(o, prefix, out); }
void load_options(const StateDict& in, const std::string& prefix, const char* op, AdamWOptions& o) {
  load_adam(in, prefix, op, o);
}

template <class Options>
AdamBase<Options>::AdamBase(std::string name, std::vector<ParamGroup<Options>> groups, bool decoupled_weight_decay)
    : GroupedOptimizer<Options>(std::move(name), std::move(groups)), decoupled_weight_decay_(decoupled_weight_decay) {}

template <class Options> void AdamBase<Options>::step() {
  for (const auto& group : this->groups_) group.options.validate();
  // Every gradient is checked before any parameter changes; then one multi-tensor update of them all.
  for (const auto& group : this->groups_)
    for (const auto& [name, param] : group.params)
      if (param.grad().defined()) this->check_grad(name, param);
  std::vector<kernels::AdamTensors> items;
  for (const auto& group : this->groups_) {
    const Options& o = group.options;
    for (const auto& [name, param] : group.params) {
      if (!param.grad().defined()) continue;
      ParamState& st = this->state_for(name);
      if (st.tensors.empty()) st.tensors.emplace_back("step", detail::scalar_i64(0));
      Tensor step = *st.find("step");   // shares storage: incremented in place
      Tensor exp_avg = ensure(st, "exp_avg", param), exp_avg_sq = ensure(st, "exp_avg_sq", param);
      Tensor max_exp_avg_sq = o.amsgrad ? ensure(st, "max_exp_avg_sq", param) : Tensor();
      int64_t& count = step.data<int64_t>()[0];
      ++count;
      kernels::AdamStep h{.lr = o.lr, .beta1 = o.betas.first, .beta2 = o.betas.second, .eps = o.eps,
                          .weight_decay = o.weight_decay, .amsgrad = o.amsgrad, .maximize = o.maximize,
                          .decoupled_weight_decay = decoupled_weight_decay_, .step = count};
      items.push_back({param.value(), param.grad(), exp_avg, exp_avg_sq, max_exp_avg_sq, h});
    }
  }
  kernels::adam_update_many(items);
  // The versions live in the storage the items share with the parameters: a backward through a graph that
  // saved a parameter now throws.
  for (kernels::AdamTensors& it : items) it.param.increment_version();
}

template <class Options>
void AdamBase<Options>::check_param_state(const std::string& param_name, const ParamState& st) const {
  const char* op = this->name().c_str();
  for (const auto& [field, t] : st.tensors)
    TG_CHECK(field == "step" || field == "exp_avg" || field == "exp_avg_sq" || field == "max_exp_avg_sq", op,
             "load_state_dict: unknown state field '", field, "' of parameter '", param_name, "'");
  for (const char* required : {"step", "exp_avg", "exp_avg_sq"})
    TG_CHECK(st.find(required) != nullptr, op, "load_state_dict: parameter '", param_name, "' has state but no ",
             required);
}

template class AdamBase<AdamOptions>;
template class AdamBase<AdamWOptions>;

Adam::Adam(NamedParams params, AdamOptions options)
    : Adam(std::vector<ParamGroup<AdamOptions>>{{std::move(params), options}}) {}
Adam::Adam(std::vector<ParamGroup<AdamOptions>> groups) : AdamBase("Adam", std::move(groups), false) {}

AdamW::AdamW(NamedParams params, AdamWOptions options)
    : AdamW(std::vector<ParamGroup<AdamWOptions>>{{std::move(params), options}}) {}
AdamW::AdamW(std::vector<ParamGroup<AdamWOptions>> groups) : AdamBase("AdamW", std::move(groups), true) {}

}  // namespace tg::optim
