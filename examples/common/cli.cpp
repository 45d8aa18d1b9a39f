#include "examples/common/cli.h"

#include <charconv>
#include <cmath>
#include <iostream>
#include <limits>

namespace tg::examples {

namespace po = boost::program_options;

void require_in_range(const char* command, const char* flag, int64_t value, int64_t lo, int64_t hi) {
  const std::string rule = hi == std::numeric_limits<int64_t>::max()
                               ? ">= " + std::to_string(lo)
                               : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  require_flag(value >= lo && value <= hi, command, flag, rule, value);
}

uint64_t parse_seed(const std::string& text, const char* command, const char* flag) {
  uint64_t v = 0;
  const char* first = text.data();
  const char* last = first + text.size();
  auto [end, ec] = std::from_chars(first, last, v);
  const bool digits_only = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  require_flag(digits_only && ec == std::errc() && end == last, command, flag,
               "an integer in [0, " + std::to_string(std::numeric_limits<uint64_t>::max()) + "]", "'" + text + "'");
  return v;
}

void require_min_lr(const char* command, double min_lr, double lr) {
  std::ostringstream lr_text;   // the rule names --lr, which sets the bound
  lr_text << lr;
  require_flag(std::isfinite(min_lr) && min_lr >= 0 && min_lr <= lr, command, "--min-lr",
               "finite, >= 0 and <= --lr=" + lr_text.str(), min_lr);
}

std::string expand_newlines(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
      out += '\n';
      ++i;   // past the n
    } else {
      out += text[i];
    }
  }
  return out;
}

bool parse(int argc, char** argv, po::options_description& desc, po::variables_map& vm, const char* usage,
           const po::positional_options_description* positional) {
  desc.add_options()("help,h", "show this help");
  po::command_line_parser parser(argc - 1, argv + 1);
  parser.options(desc);
  if (positional) parser.positional(*positional);
  const po::parsed_options parsed = parser.run();
  // Without a positional description Program_options keeps positional arguments unnamed and store()
  // drops them: `--max-iters 4 8` would silently train 4 iterations. Refuse them like unknown flags.
  for (const po::option& o : parsed.options)
    if (o.string_key.empty() && !o.original_tokens.empty())
      throw po::error("unexpected argument '" + o.original_tokens.front() +
                      "' (this command takes no positional arguments; a value with spaces needs quotes)");
  po::store(parsed, vm);
  if (vm.count("help")) {
    std::cout << usage << "\n" << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

int run_commands(const char* program, const char* usage, int argc, char** argv,
                 const std::vector<Command>& commands) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << usage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    for (const Command& c : commands)
      if (c.name == cmd) return c.run(argc, argv);
    std::cerr << program << ": unknown command '" << cmd << "'\n" << usage;
    return 2;
  } catch (const po::error& e) {
    std::cerr << program << ' ' << cmd << ": " << e.what() << " (see " << program << ' ' << cmd << " --help)\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << e.what() << " (see " << program << ' ' << cmd << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ' ' << cmd << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace tg::examples
