// examples/common/cli.h and plot_command.h: the checks that name a flag, strict seeds, --help, the
// `<program> <command>` dispatch with its exit statuses and messages, and the plot legend's names;
// and tests/support/process_support.h, which the example programs' command-line tests run them with.
#include <boost/program_options.hpp>

#include <iostream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "examples/common/cli.h"
#include "examples/common/plot_command.h"
#include "support/process_support.h"
#include "support/test_support.h"

using Catch::Matchers::Contains;
namespace po = boost::program_options;
using namespace tg::examples;

namespace {

struct Dispatch {
  int status;
  std::string out, err;
};

// run_commands("prog", ...) on `args` (after the program name) with std::cout and std::cerr captured.
Dispatch dispatch(std::vector<std::string> args) {
  std::vector<char*> argv{const_cast<char*>("prog")};
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  std::streambuf* old_out = std::cout.rdbuf(out.rdbuf());
  std::streambuf* old_err = std::cerr.rdbuf(err.rdbuf());
  const auto flags = [](int argc, char** argv) {
    int64_t n = 1;
    po::options_description d("prog go options");
    d.add_options()("n", po::value(&n)->default_value(n), "a count");
    po::variables_map vm;
    if (!parse(argc, argv, d, vm, "usage: prog go [--n N]")) return 0;
    require_in_range("prog go", "--n", n, 1, 9);
    return static_cast<int>(n) == 7 ? 3 : 0;
  };
  const auto fails = [](int, char**) -> int { throw std::runtime_error("disk full"); };
  const int status = run_commands("prog", "usage: prog <command>\n", static_cast<int>(argv.size()), argv.data(),
                                  {{"go", flags}, {"fail", fails}});
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  return {status, out.str(), err.str()};
}

}  // namespace

TEST_CASE("cli: require_in_range and parse_seed name the flag and the rule", "[examples][cli]") {
  REQUIRE_NOTHROW(require_in_range("c", "--k", 64, 1, 64));
  REQUIRE_THROWS_WITH(require_in_range("c", "--k", 65, 1, 64), "[c] --k must be in [1, 64]; got --k=65");
  REQUIRE_THROWS_WITH(require_in_range("c", "--k", -1, 0, std::numeric_limits<int64_t>::max()),
                      "[c] --k must be >= 0; got --k=-1");
  REQUIRE_THROWS_AS(require_flag(false, "c", "--x", "a name", "''"), UsageError);
  REQUIRE(parse_seed("18446744073709551615", "c", "--seed") == std::numeric_limits<uint64_t>::max());
  for (const char* bad : {"", "-1", "+1", " 1", "1x", "18446744073709551616"})
    REQUIRE_THROWS_WITH(parse_seed(bad, "c", "--seed"),
                        "[c] --seed must be an integer in [0, 18446744073709551615]; got --seed='" + std::string(bad) + "'");
}

TEST_CASE("cli: run_commands dispatches and maps errors to exit statuses 2 and 1", "[examples][cli]") {
  const Dispatch none = dispatch({});
  REQUIRE(none.status == 2);
  REQUIRE(none.out == "usage: prog <command>\n");
  REQUIRE(dispatch({"-h"}).status == 0);
  REQUIRE(dispatch({"--help"}).out == "usage: prog <command>\n");
  const Dispatch unknown = dispatch({"jump"});
  REQUIRE(unknown.status == 2);
  REQUIRE(unknown.err == "prog: unknown command 'jump'\nusage: prog <command>\n");
  REQUIRE(dispatch({"go"}).status == 0);
  REQUIRE(dispatch({"go", "--n", "7"}).status == 3);   // the command's own status
  const Dispatch help = dispatch({"go", "--help"});
  REQUIRE(help.status == 0);
  REQUIRE_THAT(help.out, Contains("usage: prog go [--n N]\n") && Contains("--n arg (=1)") && Contains("--help"));
  const Dispatch range = dispatch({"go", "--n", "10"});
  REQUIRE(range.status == 2);
  REQUIRE(range.err == "[prog go] --n must be in [1, 9]; got --n=10 (see prog go --help)\n");
  const Dispatch type = dispatch({"go", "--n", "x"});
  REQUIRE(type.status == 2);
  REQUIRE_THAT(type.err, Contains("prog go: ") && Contains("--n") && Contains(" (see prog go --help)\n"));
  const Dispatch flag = dispatch({"go", "--m", "1"});
  REQUIRE(flag.status == 2);
  REQUIRE_THAT(flag.err, Contains("prog go: unrecognised option '--m'"));
  // A stray argument (Program_options would drop it) is refused like an unknown flag.
  const Dispatch stray = dispatch({"go", "--n", "4", "8"});
  REQUIRE(stray.status == 2);
  REQUIRE(stray.err == "prog go: unexpected argument '8' (this command takes no positional arguments; a value with "
                       "spaces needs quotes) (see prog go --help)\n");
  const Dispatch fail = dispatch({"fail"});
  REQUIRE(fail.status == 1);
  REQUIRE(fail.err == "prog fail: disk full\n");
}

TEST_CASE("cli: parse takes positional arguments after the command", "[examples][cli]") {
  std::vector<std::string> inputs;
  po::options_description d("t");
  d.add_options()("input", po::value(&inputs)->composing(), "texts");
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  std::vector<std::string> args{"prog", "cmd", "a b", "c"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  REQUIRE(parse(static_cast<int>(argv.size()), argv.data(), d, vm, "usage", &pos));
  REQUIRE(inputs == std::vector<std::string>{"a b", "c"});
}

TEST_CASE("plot_command: the legend names folders, or their paths when two share a name", "[examples][cli]") {
  REQUIRE(run_labels({"runs/a/", "b"}) == std::vector<std::string>{"a", "b"});
  REQUIRE(run_labels({"x/a", "y/a"}) == std::vector<std::string>{"x/a", "y/a"});
}

TEST_CASE("process_support: status, signal, stdout/stderr, stdin, cwd and the time limit", "[examples][cli]") {
  const tg::test::ProcessResult ok = tg::test::run_shell("echo out; echo err >&2; exit 3");
  REQUIRE(ok.exited);
  REQUIRE(ok.status == 3);
  REQUIRE(ok.output == "out\nerr\n");
  tg::test::ProcessOptions apart;
  apart.merge_stderr = false;
  apart.stdin_text = "line one\nline two\n";
  apart.cwd = tg::test::scratch_dir("process_support");
  const tg::test::ProcessResult split = tg::test::run_shell("cat; pwd; echo e >&2", apart);
  REQUIRE(split.status == 0);
  REQUIRE(split.output == "line one\nline two\n" + apart.cwd.string() + "\n");
  REQUIRE(split.errors == "e\n");
  const tg::test::ProcessResult killed = tg::test::run_shell("kill -9 $$");
  REQUIRE_FALSE(killed.exited);
  REQUIRE(killed.signal == 9);
  REQUIRE(killed.status == 128 + 9);
  REQUIRE(tg::test::run_process({"/nonexistent/program"}).status == 127);
  // The program gets SIGPIPE's default back (the test itself ignores it): `yes` ends silently.
  REQUIRE(tg::test::run_shell("yes | head -c 1").output == "y");
  tg::test::ProcessOptions limited;
  limited.timeout_seconds = 1;
  const tg::test::ProcessResult slow = tg::test::run_shell("echo started; sleep 30; echo never", limited);
  REQUIRE(slow.timed_out);
  REQUIRE(slow.signal == 9);
  REQUIRE(slow.output == "started\n");
}
