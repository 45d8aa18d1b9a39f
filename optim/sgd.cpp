#include "tapegrad/optim/sgd.h"

#include <cmath>

#include "tapegrad/framework/check.h"
#include "framework/kernels/optim_update.h"

namespace tg::optim {

using detail::format_number;

void SGDOptions::validate() const {
  TG_CHECK(std::isfinite(lr) && lr >= 0, "SGD", "invalid learning rate: ", format_number(lr),
           " (lr must be finite and >= 0)");
  TG_CHECK(std::isfinite(momentum) && momentum >= 0, "SGD", "invalid momentum value: ", format_number(momentum),
           " (momentum must be finite and >= 0)");
  TG_CHECK(std::isfinite(dampening), "SGD", "invalid dampening value: ", format_number(dampening),
           " (dampening must be finite)");
  TG_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, "SGD", "invalid weight_decay value: ",
           format_number(weight_decay), " (weight_decay must be finite and >= 0)");
  TG_CHECK(!nesterov || (momentum > 0 && dampening == 0), "SGD",
           "Nesterov momentum requires a momentum and zero dampening; got momentum=", format_number(momentum),
           ", dampening=", format_number(dampening));
}

void save_options(const SGDOptions& o, const std::string& prefix, StateDict& out) {
  out.add(prefix + "lr", detail::scalar_f64(o.lr));
  out.add(prefix + "momentum", detail::scalar_f64(o.momentum));
  out.add(prefix + "dampening", detail::scalar_f64(o.dampening));
  out.add(prefix + "weight_decay", detail::scalar_f64(o.weight_decay));
  out.add(prefix + "nesterov", detail::scalar_bool(o.nesterov));
  out.add(prefix + "maximize", detail::scalar_bool(o.maximize));
}

void load_options(const StateDict& in, const std::string& prefix, const char* op, SGDOptions& o) {
  o.lr = detail::read_f64(in, prefix + "lr", op);
  o.momentum = detail::read_f64(in, prefix + "momentum", op);
  o.dampening = detail::read_f64(in, prefix + "dampening", op);
  o.weight_decay = detail::read_f64(in, prefix + "weight_decay", op);
  o.nesterov = detail::read_bool(in, prefix + "nesterov", op);
  o.maximize = detail::read_bool(in, prefix + "maximize", op);
}

SGD::SGD(NamedParams params, SGDOptions options)
    : SGD(std::vector<ParamGroup<SGDOptions>>{{std::move(params), options}}) {}

SGD::SGD(std::vector<ParamGroup<SGDOptions>> groups) : GroupedOptimizer("SGD", std::move(groups)) {}

void SGD::step() {
  for (const auto& group : groups_) group.options.validate();
  for (const auto& group : groups_) {
    const SGDOptions& o = group.options;
    for (const auto& [name, param] : group.params) {
      if (!param.grad().defined()) continue;
      check_grad(name, param);
      kernels::SGDStep h{.lr = o.lr, .momentum = o.momentum, .dampening = o.dampening,
                         .weight_decay = o.weight_decay, .nesterov = o.nesterov, .maximize = o.maximize};
      Tensor buffer;
      if (o.momentum != 0) {
        ParamState& st = state_for(name);
        Tensor* existing = st.find("momentum_buffer");
        h.first = existing == nullptr;
        if (!existing) {
          st.tensors.emplace_back("momentum_buffer", Tensor::empty(param.shape(), param.dtype()));
          existing = &st.tensors.back().second;
        }
        buffer = *existing;   // shares storage: updated in place
      }
      Var p = param;
      kernels::sgd_update(p.value(), param.grad(), buffer, h);
      p.value().increment_version();   // a backward through a graph that saved p now throws
    }
  }
}

void SGD::check_param_state(const std::string& param_name, const ParamState& st) const {
  for (const auto& [field, t] : st.tensors)
    TG_CHECK(field == "momentum_buffer", "SGD", "load_state_dict: unknown state field '", field, "' of parameter '",
             param_name, "'");
  TG_CHECK(st.find("momentum_buffer") != nullptr, "SGD", "load_state_dict: parameter '", param_name,
           "' has state but no momentum_buffer");
}

}  // namespace tg::optim
