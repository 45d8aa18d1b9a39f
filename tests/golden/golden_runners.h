#pragma once
// Runners for the golden parity test: each rebuilds one recorded case from its config and params,
// runs forward and backward, and returns the comparisons of every recorded output and gradient.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tapegrad/layers/module.h"
#include "support/golden_support.h"

namespace tg::test {

using GoldenRunner = std::function<std::vector<Compare>(const GoldenCase&)>;

std::vector<Compare> run_mha_case(const GoldenCase& c);
std::vector<Compare> run_encoder_layer_case(const GoldenCase& c);
std::vector<Compare> run_tiny_lm_case(const GoldenCase& c);
std::vector<Compare> run_decoder_layer_case(const GoldenCase& c);
std::vector<Compare> run_transformer_case(const GoldenCase& c);

// kind -> runner. A case of a kind not listed here fails; it is never skipped.
const std::map<std::string, GoldenRunner>& golden_runners();

// Helpers shared by the runners.
bool config_flag(const nlohmann::json& c, const char* key, bool fallback);
std::optional<int64_t> config_opt_int(const nlohmann::json& c, const char* key);
// The recorded input `name` as a Var (requires grad when a gradient was recorded for it), or an
// undefined Var when the case has no such input.
Var golden_input(const GoldenCase& c, const std::string& name);
// Gradients of every parameter of m that has a recorded gradient (zeros where backward never reached it).
std::map<std::string, Tensor> param_grads(const GoldenCase& c, const Module& m);

}  // namespace tg::test
