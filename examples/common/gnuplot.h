#pragma once
// Runs gnuplot (Debian's gnuplot-nox) on a generated script, for the examples' pictures.
// A job's data files and script are written into a fresh folder beside the outputs; gnuplot runs there
// (posix_spawn, its stdout and stderr kept in the folder's log); its exit status is checked; each output
// it wrote is renamed into place (atomic: a reader never sees half a picture); the folder is removed.
#include <string>
#include <utility>
#include <vector>

namespace tg::examples {

// The gnuplot executable on PATH ("/usr/bin/gnuplot"), or "" when there is none.
std::string find_gnuplot();

// The first line of a gnuplot script that picks the PNG terminal: pngcairo when this gnuplot has it,
// else the libgd png terminal. width x height pixels, no enhanced-text markup (labels print verbatim).
std::string png_terminal(int width, int height);

// A string literal for a gnuplot script: single-quoted, quotes doubled ('it''s'). A line break or another
// control character would end the script's line: they are written visibly instead ("\n", "\t", "\x01"),
// so that a run folder named with a newline still gets its picture.
std::string gnuplot_quote(const std::string& text);

struct GnuplotJob {
  std::string script;                                        // run from the job's folder
  std::vector<std::pair<std::string, std::string>> files;   // {name in the folder, contents}, written first
  std::vector<std::pair<std::string, std::string>> outputs; // {name the script writes, final path}
};

// Runs the job. Returns false, having written nothing, when gnuplot is not on PATH. Every output must
// be in one folder (std::invalid_argument otherwise). Throws std::runtime_error naming the output when
// the folder or a file cannot be written, when gnuplot fails (its exit status and the end of its
// messages), or when it exits 0 without writing an output or with one that is not a whole picture (a
// ".png" without the PNG signature and a final IEND chunk, an ".svg" not ending with </svg>: gnuplot
// exits 0 when a write fails on a full disk). Outputs are checked before any is moved: on any error
// every previous picture is left as it was.
bool run_gnuplot(const GnuplotJob& job);

}  // namespace tg::examples
