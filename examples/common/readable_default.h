#pragma once
// Boost.Program_options defaults printed as a person writes them: `--lr arg (=1e-3)` instead of
// `(=0.001000000000000000021)`, `--beta2 arg (=0.99)` instead of `(=0.98999999999999999)`.
//   d.add_options()("lr", tg::examples::readable_default(&o.lr), "peak learning rate");
#include <boost/program_options/value_semantic.hpp>

#include <string>

namespace tg::examples {

// The shortest text that reads back as exactly v (std::to_chars round-trip), in fixed or scientific
// notation, whichever is shorter (fixed on a tie), exponents without '+' or leading zeros:
// 0.1 -> "0.1", 0.99 -> "0.99", 1e-3 -> "1e-3", 6e-4 -> "6e-4", 1337 -> "1337", 1.0 -> "1",
// 2.5e10 -> "2.5e10", inf -> "inf", nan -> "nan".
std::string readable_number(double v);

// po::value(target)->default_value(*target, readable_number(*target)): the current value of *target
// is the default, shown readably in --help.
inline boost::program_options::typed_value<double>* readable_default(double* target) {
  return boost::program_options::value(target)->default_value(*target, readable_number(*target));
}

}  // namespace tg::examples
