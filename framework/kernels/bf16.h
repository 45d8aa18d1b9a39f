#pragma once
// bf16-input, float32-accumulate GEMMs for autocast (tapegrad/framework/autocast.h).
//
// C = alpha * op(A) @ op(B) + beta * C (row-major, as kernels::gemm) where A and B are float32 arrays
// whose elements are first rounded to bf16 (round to nearest even; NaN stays NaN). Two ways:
//   Bf16Mode::emulated  the rounded operands (held as float32, exactly representable) go through
//                       kernels::gemm<float>: a product of two bf16 values is exact in float32, so this
//                       is bf16-input/f32-accumulate arithmetic, on any CPU, and bitwise the same for
//                       any thread count (kernels::gemm's fixed blocks).
//   Bf16Mode::native    hardware bf16 dot products (bf16 in, f32 accumulate), through native_bf16_gemm():
//                       tapegrad's own AVX512_BF16 GEMM (kernels/sbgemm.h: fixed tiles, the same bits
//                       for any thread count), or oneDNN's bf16 matmul on fixed output tiles (the shape
//                       decides them, never the thread count), each tile one single-threaded oneDNN call
//                       inside a TBB task (OpenMP limited to 1 thread on that thread): no
//                       oversubscription, and the same bits for any thread count. Throws
//                       std::logic_error when neither can run (callers check bf16_mode()).
#include <cstdint>
#include <string>
#include <type_traits>

#include "framework/kernels/gemm.h"
#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/dtype.h"

namespace tg::detail {
// How an op recorded now on this thread multiplies operands of `dtype`: bf16_mode() inside an
// autocast(bf16) scope for Float32, else Bf16Mode::float32 (plain GEMMs; Float64 is never autocast).
Bf16Mode autocast_mode_for(DType dtype);
}  // namespace tg::detail

namespace tg::kernels {

// x rounded to the nearest bf16 value (ties to even), returned as float32.
float round_bf16(float x);
// y[i] = round_bf16(x[i]) for i < n (y may equal x).
void round_bf16(const float* x, int64_t n, float* y);

// The GEMM that native products run through, decided once: TAPEGRAD_BF16_GEMM=tapegrad or onednn when set
// (the other one if that one cannot run here), else tapegrad's own AVX512_BF16 kernel (kernels/sbgemm.h)
// where the CPU has AVX512_BF16, except that oneDNN runs on AMX-BF16 CPUs (its AMX tiles are faster).
// Throws std::invalid_argument for any other value of TAPEGRAD_BF16_GEMM than those and auto.
enum class Bf16Gemm { tapegrad, onednn };
Bf16Gemm native_bf16_gemm();
// True when products in `mode` run through tapegrad's bf16 GEMM: native, and native_bf16_gemm() is tapegrad.
inline bool uses_sbgemm(Bf16Mode mode) { return mode == Bf16Mode::native && native_bf16_gemm() == Bf16Gemm::tapegrad; }

// mode must be native or emulated. With row_bias [N] (beta must be 0): C = alpha op(A) op(B) + row_bias.
void gemm_bf16(Bf16Mode mode, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
               const float* row_bias = nullptr);
// One single-threaded product, for use inside a task that is already parallel.
void gemm_bf16_serial(Bf16Mode mode, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// `batch` independent products as kernels::gemm_batched (a stride of 0 broadcasts).
void gemm_bf16_batched(Bf16Mode mode, int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                       float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
                       int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c);

// The same three entry points for either precision: float32 operands with mode native/emulated take the
// bf16 path; float64, or mode float32, call kernels::gemm / gemm_serial / gemm_batched unchanged.
template <class T>
void gemm_mixed(Bf16Mode mode, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const T* row_bias = nullptr) {
  if constexpr (std::is_same_v<T, float>)
    if (mode != Bf16Mode::float32)
      return gemm_bf16(mode, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias);
  gemm<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, row_bias);
}

template <class T>
void gemm_mixed_serial(Bf16Mode mode, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                       const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>)
    if (mode != Bf16Mode::float32)
      return gemm_bf16_serial(mode, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_serial<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
void gemm_mixed_batched(Bf16Mode mode, int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                        T alpha, const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b,
                        T beta, T* C, int64_t ldc, int64_t stride_c) {
  if constexpr (std::is_same_v<T, float>)
    if (mode != Bf16Mode::float32)
      return gemm_bf16_batched(mode, batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b,
                               beta, C, ldc, stride_c);
  gemm_batched<T>(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
                  stride_c);
}

// The native path's oneDNN calls (operand packing, fixed tiles, strides, alpha, beta, row_bias) with
// oneDNN's float32 matmul on bf16-rounded values instead of its bf16 matmul: the same arithmetic as the
// emulation, so tests check the native plan on a CPU without bf16. serial: one call (as
// gemm_bf16_serial; row_bias must then be null), else the tiled parallel product (as gemm_bf16).
// Throws std::logic_error when tapegrad was built without oneDNN.
void gemm_bf16_onednn_f32(bool serial, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                          const float* row_bias = nullptr);

// oneDNN's bf16 matmul on the native path's fixed tiles (what gemm_bf16 runs in Bf16Mode::native when
// native_bf16_gemm() is oneDNN), whichever GEMM native_bf16_gemm() chose: the benchmarks' bf16 peak takes the
// better of it and tapegrad's own. Throws std::logic_error when tapegrad was built without oneDNN; oneDNN
// throws when its bf16 matmul cannot run here (onednn_bf16_matmul_works() says beforehand).
void gemm_bf16_onednn(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Native support, probed without caching (tapegrad/framework/autocast.cpp caches it): the bf16 matrix
// instructions cpuid reports ("AVX512_BF16", "AMX-BF16", both joined by "+", or "" for none), whether
// oneDNN creates a bf16 matmul primitive, and oneDNN's version ("" when built without it).
std::string bf16_cpu_features();
bool onednn_bf16_matmul_works();
// Measures how fast this CPU's bf16 dot products (VDPBF16PS, 32 multiply-adds per zmm instruction) run against its
// float32 FMAs (16 per instruction), in multiply-adds per second: register-only loops of each on the
// calling thread, alternated, best of 7 (about 3 ms in all). 0 without AVX512_BF16. Measured 0.50 on an
// Intel Xeon (family 6 model 207) under KVM without AMX: 79 against 158 GFLOP/s per core.
double measure_bf16_dot_speed_ratio();
std::string onednn_version();

}  // namespace tg::kernels
