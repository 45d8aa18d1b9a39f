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
//   native    oneDNN bf16 matmul (bf16 in, f32 accumulate/out), when this CPU has AVX512_BF16 or AMX
//             and oneDNN can create the primitive. Each call runs single-threaded on fixed output tiles
//             spread by TBB: the same bits for any thread count.
//   emulated  operands rounded to bf16, then tapegrad's own float32 GEMM: the numerics of bf16 inputs
//             with float32 accumulation on any CPU (for tests and previewing accuracy). Only when asked:
//             environment TAPEGRAD_BF16=emulate, or set_bf16_mode(Bf16Mode::emulated).
//   float32   no bf16 support here: autocast regions run in float32 (bitwise as without autocast) and
//             runtime_info() says so.
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

// The arithmetic that autocast(bf16) regions use now: emulated when asked (set_bf16_mode, or
// TAPEGRAD_BF16=emulate read at the first query), otherwise native when available, else float32.
// TAPEGRAD_BF16=float32 forces the fallback; TAPEGRAD_BF16=native asks for the default.
Bf16Mode bf16_mode();
// Chooses the mode for the whole process. native on a CPU without it throws std::invalid_argument
// "[set_bf16_mode] native bf16 is unavailable on this CPU (...)".
void set_bf16_mode(Bf16Mode m);
// Back to the default choice (environment, then detection).
void reset_bf16_mode();

// True when oneDNN (if tapegrad was built with it) can run bf16 matmuls on this CPU: cpuid reports
// AVX512_BF16 or AMX-BF16 and a bf16 matmul primitive can be created (tried once, the answer cached).
bool bf16_native_available();

// The bf16 part of runtime_info(), e.g. "bf16: native (oneDNN 2.6.3, AVX512_BF16)", "bf16: emulated
// (bf16-rounded operands, float32 GEMM)" or "bf16: unavailable on this CPU (no AVX512_BF16/AMX),
// autocast runs float32".
std::string bf16_status();

}  // namespace tg
