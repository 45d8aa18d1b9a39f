#include "examples/common/plot_command.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "examples/common/cli.h"
#include "examples/common/loss_plot.h"

namespace tg::examples {

namespace po = boost::program_options;

std::vector<std::string> run_labels(const std::vector<std::string>& dirs) {
  std::vector<std::string> names;
  for (const auto& d : dirs) {
    std::filesystem::path p = std::filesystem::absolute(d).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();   // "runs/a/" -> "runs/a"
    names.push_back(p.filename().string());
  }
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i].empty() || std::count(names.begin(), names.end(), names[i]) > 1) return dirs;
  return names;
}

int run_plot_command(const std::string& program, const std::string& default_out_dir, int argc, char** argv) {
  const std::string cmd = program + " plot";
  std::string out_dir = default_out_dir, output;
  std::vector<std::string> compare;
  po::options_description d(cmd + " options");
  d.add_options()
      ("out-dir", po::value(&out_dir)->default_value(out_dir), "run folder holding losses.csv")
      ("compare", po::value(&compare)->multitoken(), "more run folders to overlay (the legend names each folder)")
      ("output", po::value(&output), "PNG to write (default: <out-dir>/losses.png, or <out-dir>/compare.png with --compare)");
  po::variables_map vm;
  const std::string usage = "usage: " + cmd + " [--out-dir DIR] [--compare DIR2 ...] [--output FILE]";
  if (!parse(argc, argv, d, vm, usage.c_str())) return 0;
  require_flag(!out_dir.empty(), cmd.c_str(), "--out-dir", "a folder name", "''");
  require_flag(!vm.count("output") || !output.empty(), cmd.c_str(), "--output", "a file name", "''");
  // The picture is always a PNG: another name (x.svg) would hold PNG data under a misleading extension.
  require_flag(output.empty() || std::filesystem::path(output).extension() == ".png", cmd.c_str(), "--output",
               "a .png file name (the picture is a PNG)", output);
  std::vector<std::string> dirs{out_dir};
  dirs.insert(dirs.end(), compare.begin(), compare.end());
  const std::vector<std::string> labels = run_labels(dirs);
  std::vector<LossCurves> runs;
  for (size_t i = 0; i < dirs.size(); ++i) runs.push_back(read_losses_csv(dirs[i] + "/losses.csv", labels[i]));
  if (const std::string note = left_out_note(runs); !note.empty()) std::cerr << cmd << ": " << note << "\n";
  if (output.empty()) output = out_dir + (compare.empty() ? "/losses.png" : "/compare.png");
  if (!plot_loss_runs(runs, output, compare.empty() ? program + " " + out_dir : program + " runs")) {
    std::cerr << cmd << ": no picture written: gnuplot is not on PATH (install gnuplot-nox)\n";
    return 1;
  }
  std::cout << "wrote " << output << "\n";
  return 0;
}

}  // namespace tg::examples
