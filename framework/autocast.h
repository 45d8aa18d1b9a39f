#pragma once
// bf16 mixed precision, opt-in (torch.autocast(device_type="cpu", dtype=torch.bfloat16)).
//
// Inside an AutocastGuard(Precision::bf16) scope, the float32 matrix products -- matmul, linear (so
// every Linear layer and the attention projections) and the two attention products q k^T and P v of
// fused_attention / MultiheadAttention -- take bf16 operands (rounded to nearest even) and accumulate
// and return float32. Their backward GEMMs use bf16 operands too, whether or not backward() runs
// inside the scope (the choice is made when the op is recorded, as in PyTorch). Everything else stays
// float32: parameters (master weights), gradients, optimizer state, layer norm, softmax and its
// statistics, the loss. float64 tensors are never autocast.
//
// How the bf16 products are computed (bf16_mode()):
//   native    hardware bf16 dot products (bf16 in, f32 accumulate/out), when this CPU has AVX512_BF16 or
//             AMX and it pays off: AMX-BF16, or AVX512_BF16 dot products measured at >= 1.5x the float32
//             FMA rate (AMD Zen 4/5: 2x; an Intel Xeon without AMX: 0.5x, where native would be slower
//             than float32 and is not chosen unless asked). The products run through tapegrad's own
//             AVX512_BF16 GEMM, or oneDNN's bf16 matmul on AMX CPUs (or with TAPEGRAD_BF16_GEMM=onednn),
//             whose single-threaded calls run on fixed output tiles spread by TBB. Either way: the same
//             bits for any thread count.
//   emulated  operands rounded to bf16, then tapegrad's own float32 GEMM: the numerics of bf16 inputs
//             with float32 accumulation on any CPU (for tests and previewing accuracy). Only when asked:
//             environment TAPEGRAD_BF16=emulate, or set_bf16_mode(Bf16Mode::emulated).
//   float32   no bf16 support here, or none that beats float32: autocast regions run in float32
//             (bitwise as without autocast) and runtime_info() says why.
#include <string>

namespace tg {

enum class Precision { f32, bf16 };

// "f32" / "bf16"; parse_precision throws std::invalid_argument
// "[precision] expected f32 or bf16; got precision=fp16".
std::string to_string(Precision p);
Precision parse_precision(const std::string& name);

// RAII: sets the autocast precision of the calling thread for its scope and restores the previous one
// on exit, so guards nest (an inner Precision::f32 guard turns autocast off inside a bf16 region).
class AutocastGuard {
 public:
  explicit AutocastGuard(Precision precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  Precision previous_;
};

// True inside an AutocastGuard(Precision::bf16) scope on this thread (whatever bf16_mode() is).
bool autocast_enabled();
Precision autocast_precision();

enum class Bf16Mode { native, emulated, float32 };
std::string to_string(Bf16Mode m);   // "native", "emulated", "float32"

// The arithmetic that autocast(bf16) regions use now: what set_bf16_mode chose, else TAPEGRAD_BF16 (read
// at the first query: emulate, float32, or native when available even where it does not pay off),
// else native when bf16_native_preferred(), else float32.
Bf16Mode bf16_mode();
// Chooses the mode for the whole process. native on a CPU without it throws std::invalid_argument
// "[set_bf16_mode] native bf16 is unavailable on this CPU (...)".
void set_bf16_mode(Bf16Mode m);
// Back to the default choice (environment, then detection).
void reset_bf16_mode();

// True when bf16 products can run natively here: cpuid reports AVX512_BF16 (tapegrad's own kernel), or
// AMX-BF16 and oneDNN (if tapegrad was built with it) creates a bf16 matmul primitive (tried once, cached).
bool bf16_native_available();
// True when native is also the default: available, and AMX-BF16 or bf16_dot_speed_ratio() >= 1.5.
bool bf16_native_preferred();
// This CPU's AVX512_BF16 dot-product rate over its float32 FMA rate, in multiply-adds per second,
// measured once with the availability check (register-only loops, about 3 ms); 0 when not measured
// (native unavailable, or AMX-BF16, which oneDNN uses instead).
double bf16_dot_speed_ratio();

// The bf16 part of runtime_info(), e.g. "bf16: native (tapegrad AVX512_BF16 GEMM, AVX512_BF16)", "bf16: native
// (oneDNN 3.0, AVX512_BF16+AMX-BF16)", "bf16: emulated
// (bf16-rounded operands, float32 GEMM)", "bf16: unavailable on this CPU (no AVX512_BF16/AMX),
// autocast runs float32" or "bf16: float32 (this CPU's AVX512_BF16 dot products run at 0.50x its
// float32 FMA rate, measured: bf16 would be slower), autocast runs float32; ...".
std::string bf16_status();

}  // namespace tg
