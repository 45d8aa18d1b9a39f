// Thread control and OpenBLAS kernel selection.
//
// Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH but predates this CPU's cpuid signature, so it
// falls back to the generic "Prescott" kernels (about 6x slower sgemm). OpenBLAS reads
// OPENBLAS_CORETYPE only when it initialises, which happens before any of our code runs. Its
// DYNAMIC_ARCH build exports gotoblas_dynamic_quit/gotoblas_dynamic_init, which drop and redo the
// core selection; we set OPENBLAS_CORETYPE from our own cpuid reading and re-run that selection once,
// before the first GEMM. A user's own OPENBLAS_CORETYPE is left alone.
#include <cpuid.h>
#include <cblas.h>

#include <cctype>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include <tbb/global_control.h>
#include <tbb/version.h>

#include "framework/kernels/allocator.h"
#include "framework/kernels/sgemm.h"
#include "tapegrad/framework/check.h"
#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/version.h"

extern "C" {
// Present in OpenBLAS DYNAMIC_ARCH builds; weak so a build without them still links.
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));
// Stops and joins OpenBLAS's own server threads (pthreads builds); weak as well.
int blas_thread_shutdown_(void) __attribute__((weak));
char* openblas_get_corename(void);
char* openblas_get_config(void);
void openblas_set_num_threads(int);
}

namespace tg {
namespace {

struct BlasState {
  std::once_flag once;
  std::string chosen_by = "OpenBLAS default";
  std::string openblas_default;
};
BlasState& blas_state() {
  static BlasState s;
  return s;
}

bool os_saves_avx512_state() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return false;
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0xE6) == 0xE6;   // XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM
}

bool os_saves_avx_state() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return false;
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0x6) == 0x6;
}

// The best OpenBLAS 0.3.21 x86-64 core this CPU can run, from cpuid feature bits.
std::string core_from_cpuid() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "";
  bool avx512 = (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL) && (b & bit_AVX512DQ) &&
                (b & bit_AVX512CD) && os_saves_avx512_state();
  if (avx512) {
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    return (a1 & (1u << 5)) ? "COOPERLAKE" : "SKYLAKEX";   // leaf 7.1 EAX bit 5: AVX512_BF16
  }
  bool avx2 = (b & bit_AVX2) && os_saves_avx_state();
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __get_cpuid(1, &a1, &b1, &c1, &d1);
  if (avx2 && (c1 & bit_FMA)) return "HASWELL";
  if ((c1 & bit_AVX) && os_saves_avx_state()) return "SANDYBRIDGE";
  return "";
}

std::unique_ptr<tbb::global_control>& thread_control() {
  static std::unique_ptr<tbb::global_control> control;
  return control;
}

}  // namespace

bool select_blas_core(const std::string& core) {
  if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit) return false;
  const char* previous = std::getenv("OPENBLAS_CORETYPE");
  std::string saved = previous ? previous : "";
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  // OpenBLAS's server threads, started when the library loaded, allocate their buffers when they first
  // run, and that allocation calls gotoblas_dynamic_init when the kernel table is unset: a server thread
  // that first ran between the quit and the init below ran the init at the same time as this thread and
  // crashed the process (SIGSEGV in gotoblas_dynamic_init; tiny_lm's test processes, about 1 in 2500 under
  // load). So they are stopped and joined first; tapegrad runs OpenBLAS single-threaded and never needs them.
  if (blas_thread_shutdown_) blas_thread_shutdown_();
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  if (previous) setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
  else unsetenv("OPENBLAS_CORETYPE");   // child processes make their own choice
  openblas_set_num_threads(1);
  return true;
}

void init_blas() {
  BlasState& s = blas_state();
  std::call_once(s.once, [&] {
    s.openblas_default = openblas_get_corename();
    std::string wanted = core_from_cpuid();
    std::string lower_default = s.openblas_default;
    for (char& ch : lower_default) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (std::getenv("OPENBLAS_CORETYPE")) {
      s.chosen_by = "OPENBLAS_CORETYPE set by the user";
    } else if (wanted.empty() || wanted == lower_default) {
      s.chosen_by = "OpenBLAS's own choice, agrees with cpuid";
    } else if (select_blas_core(wanted)) {
      s.chosen_by = "chosen by tapegrad from cpuid; OpenBLAS alone chose " + s.openblas_default;
    }
    // All parallelism comes from TBB; each BLAS call runs on the task's own thread.
    openblas_set_num_threads(1);
  });
}

std::string blas_core_for_cpu() { return core_from_cpuid(); }

std::string blas_core() {
  init_blas();
  return openblas_get_corename();
}

void set_num_threads(int n) {
  TG_CHECK(n >= 1, "set_num_threads", "n must be positive; got n=", n);
  init_blas();
  static std::mutex m;   // two threads may set it at once: one control replaces the other whole
  const std::lock_guard lock(m);
  thread_control() = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                           static_cast<size_t>(n));
}

int get_num_threads() {
  return static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

// Which GEMM runs (kernels::sgemm_active() decides): "GEMM: tapegrad AVX2 kernel (float32), OpenBLAS
// Haswell (float64)", "GEMM: tapegrad AVX-512 kernel (float32), OpenBLAS Cooperlake (float64)" or
// "GEMM: OpenBLAS Haswell".
namespace {
std::string gemm_status() {
  const std::string core = openblas_get_corename();
  if (kernels::sgemm_active())
    return "GEMM: tapegrad " + kernels::sgemm_isa() + " kernel (float32), OpenBLAS " + core + " (float64)";
  return "GEMM: OpenBLAS " + core;
}
}  // namespace

std::string runtime_info() {
  init_blas();
  std::string config = openblas_get_config();
  std::string version = config.rfind("OpenBLAS ", 0) == 0 ? config.substr(9, config.find(' ', 9) - 9) : config;
  return "tapegrad " TAPEGRAD_VERSION_STRING " | BLAS OpenBLAS " + version + " core=" + openblas_get_corename() + " (" +
         blas_state().chosen_by + ") | threads " + std::to_string(get_num_threads()) + " (TBB " +
         std::to_string(TBB_VERSION_MAJOR) + "." + std::to_string(TBB_VERSION_MINOR) +
         ", OpenBLAS single-threaded inside TBB tasks) | " + gemm_status() + " | " + kernels::allocator_status() +
         " | " + bf16_status();
}

}  // namespace tg
