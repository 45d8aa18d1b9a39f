#include "framework/kernels/dropout.h"

#include "framework/kernels/parallel.h"
#include "tapegrad/framework/random.h"

namespace tg::kernels {

template <class T>
void dropout_forward(const T* x, T* y, bool* keep, int64_t n, double p, T scale, uint64_t seed, uint64_t first) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      PhiloxBlock b = philox_block(seed, first + static_cast<uint64_t>(i));
      keep[i] = u01_from(b.w[0], b.w[1]) >= p;
    }
    // x * 0 rather than 0 for dropped elements: NaN and inf inputs stay visible, as in PyTorch.
    for (int64_t i = i0; i < i1; ++i) y[i] = x[i] * (keep[i] ? scale : T(0));
  });
}

template <class T> void dropout_backward(const T* gy, const bool* keep, T* gx, int64_t n, T scale) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) gx[i] = gy[i] * (keep[i] ? scale : T(0));
  });
}

template void dropout_forward<float>(const float*, float*, bool*, int64_t, double, float, uint64_t, uint64_t);
template void dropout_forward<double>(const double*, double*, bool*, int64_t, double, double, uint64_t, uint64_t);
template void dropout_backward<float>(const float*, const bool*, float*, int64_t, float);
template void dropout_backward<double>(const double*, const bool*, double*, int64_t, double);

}  // namespace tg::kernels
