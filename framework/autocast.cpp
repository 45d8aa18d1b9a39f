#include "tapegrad/framework/autocast.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "framework/kernels/bf16.h"
#include "framework/kernels/sbgemm.h"

namespace tg {
namespace {

thread_local Precision g_precision = Precision::f32;

// 0: not chosen (default), else 1 + Bf16Mode chosen by set_bf16_mode.
std::atomic<int> g_forced{0};

// Native bf16 pays off with AMX-BF16, or with AVX512_BF16 dot products at least this many times as fast
// as float32 FMAs (2 on AMD Zen 4/5; 0.5 measured on an Intel Xeon without AMX: slower than float32).
constexpr double kPaysOffRatio = 1.5;

struct Native {
  std::once_flag once;
  bool available = false, preferred = false;
  double ratio = 0;   // bf16 dot products against float32 FMAs (measured when available without AMX)
  std::string features, version;
};
Native& native() {
  static Native n;
  std::call_once(n.once, [] {
    n.features = kernels::bf16_cpu_features();
    n.version = kernels::onednn_version();
    n.available = !n.features.empty() && (kernels::sbgemm_cpu_supported() ||
                                           (!n.version.empty() && kernels::onednn_bf16_matmul_works()));
    if (!n.available) return;
    if (n.features.find("AMX-BF16") != std::string::npos) {
      n.preferred = true;
      return;
    }
    n.ratio = kernels::measure_bf16_dot_speed_ratio();
    n.preferred = n.ratio >= kPaysOffRatio;
  });
  return n;
}

// "0.50x": the measured ratio, two decimals.
std::string ratio_text(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", r);
  return buf;
}

// TAPEGRAD_BF16, read once: emulate / float32 / native (when available, even where it does not pay
// off); anything else is ignored.
std::optional<Bf16Mode> env_mode() {
  static const std::optional<Bf16Mode> mode = []() -> std::optional<Bf16Mode> {
    const char* v = std::getenv("TAPEGRAD_BF16");
    if (!v) return std::nullopt;
    std::string s = v;
    if (s == "emulate" || s == "emulated") return Bf16Mode::emulated;
    if (s == "float32" || s == "f32" || s == "off") return Bf16Mode::float32;
    if (s == "native") return Bf16Mode::native;
    return std::nullopt;
  }();
  return mode;
}

std::string unavailable_reason() {
  const Native& n = native();
  if (n.features.empty()) return "no AVX512_BF16/AMX";
  if (n.version.empty()) return "tapegrad was built without oneDNN";
  return "oneDNN " + n.version + " cannot create a bf16 matmul";
}

}  // namespace

std::string to_string(Precision p) { return p == Precision::bf16 ? "bf16" : "f32"; }

Precision parse_precision(const std::string& name) {
  if (name == "f32") return Precision::f32;
  if (name == "bf16") return Precision::bf16;
  throw std::invalid_argument("[precision] expected f32 or bf16; got precision=" + name);
}

AutocastGuard::AutocastGuard(Precision precision) : previous_(g_precision) { g_precision = precision; }
AutocastGuard::~AutocastGuard() { g_precision = previous_; }

bool autocast_enabled() { return g_precision == Precision::bf16; }
Precision autocast_precision() { return g_precision; }

std::string to_string(Bf16Mode m) {
  switch (m) {
    case Bf16Mode::native: return "native";
    case Bf16Mode::emulated: return "emulated";
    case Bf16Mode::float32: return "float32";
  }
  return "float32";
}

bool bf16_native_available() { return native().available; }
bool bf16_native_preferred() { return native().preferred; }
double bf16_dot_speed_ratio() { return native().ratio; }

Bf16Mode bf16_mode() {
  int forced = g_forced.load();
  if (forced != 0) return static_cast<Bf16Mode>(forced - 1);
  if (std::optional<Bf16Mode> m = env_mode())
    if (*m != Bf16Mode::native || bf16_native_available()) return *m;
  return bf16_native_preferred() ? Bf16Mode::native : Bf16Mode::float32;
}

void set_bf16_mode(Bf16Mode m) {
  if (m == Bf16Mode::native && !bf16_native_available())
    throw std::invalid_argument("[set_bf16_mode] native bf16 is unavailable on this CPU (" + unavailable_reason() +
                                "); got mode=native");
  g_forced.store(static_cast<int>(m) + 1);
}

void reset_bf16_mode() { g_forced.store(0); }

std::string bf16_status() {
  switch (bf16_mode()) {
    case Bf16Mode::native:
      if (kernels::native_bf16_gemm() == kernels::Bf16Gemm::tapegrad)
        return "bf16: native (tapegrad AVX512_BF16 GEMM, " + native().features + ")";
      return "bf16: native (oneDNN " + native().version + ", " + native().features + ")";
    case Bf16Mode::emulated:
      return "bf16: emulated (bf16-rounded operands, float32 GEMM; native " +
             (bf16_native_available() ? "available" : "unavailable: " + unavailable_reason()) + ")";
    case Bf16Mode::float32: break;
  }
  if (bf16_native_available() && !bf16_native_preferred() && g_forced.load() == 0 && !env_mode())
    return "bf16: float32 (this CPU's AVX512_BF16 dot products run at " + ratio_text(native().ratio) +
           " its float32 FMA rate, measured: bf16 would be slower), autocast runs float32; TAPEGRAD_BF16=native or "
           "set_bf16_mode(native) forces native bf16";
  if (bf16_native_available()) return "bf16: float32 (TAPEGRAD_BF16=float32 or set_bf16_mode), autocast runs float32";
  if (native().features.empty()) return "bf16: unavailable on this CPU (no AVX512_BF16/AMX), autocast runs float32";
  if (native().version.empty()) return "bf16: unavailable (built without oneDNN), autocast runs float32";
  return "bf16: unavailable (" + unavailable_reason() + "), autocast runs float32";
}

namespace detail {

Bf16Mode autocast_mode_for(DType dtype) {
  if (dtype != DType::Float32 || !autocast_enabled()) return Bf16Mode::float32;
  return bf16_mode();
}

}  // namespace detail
}  // namespace tg
