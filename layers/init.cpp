#include "tapegrad/layers/init.h"

#include <cmath>

#include "tapegrad/framework/check.h"

namespace tg::init {

std::pair<int64_t, int64_t> fans(const Shape& shape) {
  TG_CHECK(shape.size() >= 2, "init", "fan in and fan out need at least 2 dims; got shape ", to_string(shape));
  int64_t receptive = 1;
  for (size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  return {shape[1] * receptive, shape[0] * receptive};
}

Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype) {
  return Tensor::uniform(shape, lo, hi, gen, dtype);
}

Tensor normal(const Shape& shape, double mean, double std, Generator& gen, DType dtype) {
  return Tensor::normal(shape, mean, std, gen, dtype);
}

Tensor kaiming_uniform(const Shape& shape, double a, Generator& gen, DType dtype) {
  auto [fan_in, fan_out] = fans(shape);
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = fan_in > 0 ? gain * std::sqrt(3.0 / static_cast<double>(fan_in)) : 0.0;
  return Tensor::uniform(shape, -bound, bound, gen, dtype);
}

Tensor xavier_uniform(const Shape& shape, Generator& gen, double gain, DType dtype) {
  auto [fan_in, fan_out] = fans(shape);
  double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return Tensor::uniform(shape, -bound, bound, gen, dtype);
}

Tensor xavier_normal(const Shape& shape, Generator& gen, double gain, DType dtype) {
  auto [fan_in, fan_out] = fans(shape);
  double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  return Tensor::normal(shape, 0.0, std, gen, dtype);
}

}  // namespace tg::init
