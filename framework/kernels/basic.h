#pragma once
// Same-shape element-wise kernels used by the tape and optimizers (no broadcasting).
#include "tapegrad/framework/tensor.h"

namespace tg::kernels {

Tensor add(const Tensor& a, const Tensor& b);           // a + b, same shape and dtype
void add_into(Tensor& dst, const Tensor& src);          // dst += src
void scale_into(Tensor& dst, double alpha);             // dst *= alpha
void axpy_into(Tensor& dst, double alpha, const Tensor& x);   // dst += alpha * x

}  // namespace tg::kernels
