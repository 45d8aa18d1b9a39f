#pragma once
// Process-wide runtime settings: thread count and the BLAS kernel in use.
#include <string>

namespace tg {

// Sets the number of threads for all of tapegrad's parallel work (TBB). OpenBLAS always runs
// single-threaded inside TBB tasks, so n threads means n busy cores, never n * n.
// Results are bitwise identical for every n (fixed chunking, fixed reduction order). Throws
// std::invalid_argument for n < 1 (as torch.set_num_threads). Safe to call from any thread.
void set_num_threads(int n);
int get_num_threads();

// One line naming tapegrad's version (TAPEGRAD_VERSION_STRING), the BLAS library, its kernel core
// (e.g. "Cooperlake"), how the core was chosen, the thread count and the TBB version, which GEMM runs,
// where tensor memory comes from (kernels/allocator.h, allocator_status), e.g.
// "tapegrad 0.2.0 | BLAS OpenBLAS 0.3.21 core=Cooperlake (chosen by tapegrad from cpuid; OpenBLAS chose
//  Prescott) | threads 2 (TBB 2021.8, OpenBLAS 1 per task) | bf16: unavailable on this CPU (no
//  AVX512_BF16/AMX), autocast runs float32" -- the last part is bf16_status() (framework/autocast.h).
std::string runtime_info();

// Name of the OpenBLAS core in use after tapegrad's selection (e.g. "Cooperlake").
std::string blas_core();

// The OpenBLAS core name (upper case, e.g. "COOPERLAKE") that cpuid says this CPU can run best;
// empty when none of the x86-64 cores tapegrad knows applies.
std::string blas_core_for_cpu();

// Switches OpenBLAS to the named core (an OPENBLAS_CORETYPE value) now; false when this OpenBLAS
// build cannot switch (not a DYNAMIC_ARCH build).
bool select_blas_core(const std::string& core);

// Makes sure OpenBLAS runs the best kernel for this CPU. Called automatically before the first
// GEMM; idempotent. Respects a user-set OPENBLAS_CORETYPE.
void init_blas();

}  // namespace tg
