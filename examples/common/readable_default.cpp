#include "examples/common/readable_default.h"

#include <charconv>
#include <cmath>
#include <system_error>

namespace tg::examples {
namespace {

std::string to_chars_text(double v, std::chars_format format) {
  char buf[400];   // fixed notation of 5e-324 takes 326 characters
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, format);
  if (ec != std::errc()) return "?";   // unreachable: 400 characters hold any shortest double
  return std::string(buf, end);
}

// "6e-04" -> "6e-4", "2.5e+10" -> "2.5e10". (Built by appending: GCC 12 with -O2 and ASan reported a
// bogus -Wrestrict overlap in the erase/substr form, which broke the sanitizer build.)
std::string tidy_exponent(const std::string& s) {
  const size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::string out = s.substr(0, e + 1);   // the mantissa and the 'e'
  size_t i = e + 1;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    if (s[i] == '-') out += '-';
    ++i;
  }
  while (i + 1 < s.size() && s[i] == '0') ++i;   // leading zeros of the exponent, keeping its last digit
  out.append(s, i, std::string::npos);
  return out;
}

}  // namespace

std::string readable_number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  const std::string fixed = to_chars_text(v, std::chars_format::fixed);
  const std::string scientific = tidy_exponent(to_chars_text(v, std::chars_format::scientific));
  return scientific.size() < fixed.size() ? scientific : fixed;
}

}  // namespace tg::examples
