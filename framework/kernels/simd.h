#pragma once
// TG_MULTIVERSION: compiles a hot loop function for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and
// the baseline, and picks one at load time from the CPU (GCC target_clones, resolved once through an
// ifunc). The choice depends on the machine only, never on the thread count, so results stay bitwise
// identical for any number of threads; two machines with different vector units may differ in the
// last bits (FMA contraction), as two BLAS kernels do. Helpers called from such a function should be
// inline so that they are compiled with the clone's instruction set.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TG_NO_MULTIVERSION)
#define TG_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TG_MULTIVERSION
#endif
