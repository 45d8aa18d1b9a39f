#pragma once
// The one check helper of tapegrad: TG_CHECK(cond, "op", parts...) throws std::invalid_argument
// with the message "[op] parts..." when cond is false. Parts are streamed, so shapes print as [2, 3].
// detail::fail_logic throws std::logic_error with the same format, for misuse (e.g. a method called on
// an undefined Var or Tensor).
#include <sstream>
#include <stdexcept>
#include <string>

namespace tg::detail {
template <class... Parts>
[[noreturn]] void fail_invalid(const char* op, const Parts&... parts) {
  std::ostringstream os;
  os << '[' << op << "] ";
  (os << ... << parts);
  throw std::invalid_argument(os.str());
}

template <class... Parts>
[[noreturn]] void fail_logic(const char* op, const Parts&... parts) {
  std::ostringstream os;
  os << '[' << op << "] ";
  (os << ... << parts);
  throw std::logic_error(os.str());
}
}  // namespace tg::detail

#define TG_CHECK(cond, op, ...)                          \
  do {                                                   \
    if (!(cond)) ::tg::detail::fail_invalid(op, __VA_ARGS__); \
  } while (0)
