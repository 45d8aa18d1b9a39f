#pragma once
// The command-line errors of the seq2seq program: a refused value throws UsageError (exit status 2),
// "[seq2seq train] --batch-size must be in [1, 65536]; got --batch-size=0".
#include <charconv>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace tg::seq2seq {

class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Throws UsageError "[command] <flag> must be <rule>; got <flag>=<value>" unless ok.
template <class T>
void require_flag(bool ok, const char* command, const char* flag, const std::string& rule, const T& value) {
  if (ok) return;
  std::ostringstream os;
  os << '[' << command << "] " << flag << " must be " << rule << "; got " << flag << '=' << value;
  throw UsageError(os.str());
}

// An integer flag in [lo, hi] ("in [lo, hi]", or ">= lo" when hi is INT64_MAX).
inline void require_in_range(const char* command, const char* flag, int64_t value, int64_t lo, int64_t hi) {
  const std::string rule = hi == std::numeric_limits<int64_t>::max()
                               ? ">= " + std::to_string(lo)
                               : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  require_flag(value >= lo && value <= hi, command, flag, rule, value);
}

// A seed: decimal digits only, in [0, 2^64 - 1].
inline uint64_t parse_seed(const std::string& text, const char* command, const char* flag) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  require_flag(digits && ec == std::errc() && end == text.data() + text.size(), command, flag,
               "an integer in [0, 18446744073709551615]", "'" + text + "'");
  return v;
}

}  // namespace tg::seq2seq
