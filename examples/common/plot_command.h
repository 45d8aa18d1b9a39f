#pragma once
// The `plot` command both example programs have: `<program> plot [--out-dir DIR] [--compare DIR2 ...]
// [--output FILE]` draws losses.csv of one run, or of several overlaid, with plot_loss_runs.
#include <string>
#include <vector>

namespace tg::examples {

// The legend's names of run folders: the folders' own names ("runs/a/" -> "a"), or the paths as given
// when two folders share a name (or one has none).
std::vector<std::string> run_labels(const std::vector<std::string>& dirs);

// Runs `<program> plot` (argc/argv as main's, argv[1] == "plot"); default_out_dir is --out-dir's default.
// Writes <out-dir>/losses.png, or <out-dir>/compare.png with --compare, unless --output names the file,
// and prints "wrote <file>". Returns 0; 1 after "<program> plot: no picture written: gnuplot is not on
// PATH (install gnuplot-nox)" on stderr. Throws UsageError for an empty --out-dir or --output,
// po::error for a bad command line, and read_losses_csv's errors (run_commands maps them).
int run_plot_command(const std::string& program, const std::string& default_out_dir, int argc, char** argv);

}  // namespace tg::examples
