#pragma once
// Parameter initialisers with PyTorch's formulas (torch.nn.init), drawing from an explicit seeded
// Generator. Each returns a new tensor of the given shape and dtype.
#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tensor.h"

namespace tg::init {

// fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field (torch's
// _calculate_fan_in_and_fan_out); throws std::invalid_argument for fewer than 2 dims.
std::pair<int64_t, int64_t> fans(const Shape& shape);

Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype = DType::Float32);
Tensor normal(const Shape& shape, double mean, double std, Generator& gen, DType dtype = DType::Float32);
// kaiming_uniform_(a, mode='fan_in', nonlinearity='leaky_relu'): bound = sqrt(2/(1+a^2)) * sqrt(3/fan_in).
// nn.Linear uses a = sqrt(5), which gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Tensor kaiming_uniform(const Shape& shape, double a, Generator& gen, DType dtype = DType::Float32);
// xavier_uniform_: bound = gain * sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform(const Shape& shape, Generator& gen, double gain = 1.0, DType dtype = DType::Float32);
// xavier_normal_: std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal(const Shape& shape, Generator& gen, double gain = 1.0, DType dtype = DType::Float32);

}  // namespace tg::init
