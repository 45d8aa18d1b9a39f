#pragma once
// The command-line plumbing the example programs share (tiny_lm, seq2seq): the error of a refused value
// (UsageError, exit status 2), checks that name the flag, strict seed parsing, Boost.Program_options
// parsing with --help, and the `<program> <command> [options]` dispatch with its exit statuses:
//   0 success; 2 a bad command line (unknown command or flag, a value of the wrong type, a UsageError);
//   1 any other failure (std::exception). Messages go to stderr:
//     "<program> <command>: <Program_options error> (see <program> <command> --help)"
//     "[<program> <command>] <flag> must be <rule>; got <flag>=<value> (see <program> <command> --help)"
//     "<program> <command>: <what>"
#include <boost/program_options.hpp>

#include <cstdint>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tg::examples {

// A command-line value that a program refuses, e.g.
// "[tiny_lm train] --batch-size must be in [1, 1048576]; got --batch-size=0". The program exits with 2.
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

// Checks an integer flag against [lo, hi] (inclusive), naming the flag: the rule reads "in [lo, hi]",
// or ">= lo" when hi is INT64_MAX.
void require_in_range(const char* command, const char* flag, int64_t value, int64_t lo, int64_t hi);

// The learning-rate floor of a cosine schedule: --min-lr finite, >= 0 and <= --lr, the rule naming --lr's
// value ("[tiny_lm train] --min-lr must be finite, >= 0 and <= --lr=0.001; got --min-lr=0.5").
void require_min_lr(const char* command, double min_lr, double lr);

// Parses a seed strictly: decimal digits only, in [0, 2^64 - 1] (a negative number, a sign, spaces or
// trailing characters throw UsageError "... must be an integer in [0, 18446744073709551615]; got
// <flag>='<text>'").
uint64_t parse_seed(const std::string& text, const char* command, const char* flag);

// A prompt flag's text with every two-character `\n` (backslash, n) turned into a newline, so a shell
// command line can hold one: 'ROMEO:\nBut' -> "ROMEO:" + '\n' + "But". Nothing else is unescaped.
std::string expand_newlines(const std::string& text);

// Parses the options of a command, argv[2..] (argv[1] is the command), into vm with "--help,-h" added to
// desc. Returns false after printing "<usage>\n<desc>\n" to stdout when --help was given; otherwise
// runs po::notify (required options, stored values) and returns true. Throws po::error, also for an
// argument that is neither an option nor taken by `positional` ("unexpected argument '8' ...": without
// this check Program_options would drop it silently).
bool parse(int argc, char** argv, boost::program_options::options_description& desc,
           boost::program_options::variables_map& vm, const char* usage,
           const boost::program_options::positional_options_description* positional = nullptr);

// A command of a program: its name (argv[1]) and what runs it with the whole argc/argv.
struct Command {
  std::string name;
  std::function<int(int argc, char** argv)> run;
};

// The dispatch of `<program> <command> [options]`. No command: prints usage to stdout, returns 2;
// "--help" or "-h": prints usage, returns 0; an unknown command: "<program>: unknown command '<cmd>'"
// and usage on stderr, returns 2. Otherwise returns what the command returns, mapping what it throws
// to the messages and statuses listed at the top of this file.
int run_commands(const char* program, const char* usage, int argc, char** argv,
                 const std::vector<Command>& commands);

}  // namespace tg::examples
