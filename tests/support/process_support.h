#pragma once
// Running a program from a test (the example programs' command-line tests): its exit status, how it
// ended and what it wrote, with an optional stdin text, working folder and time limit; and reading back
// the files it wrote.
#include <filesystem>
#include <string>
#include <vector>

namespace tg::test {

struct ProcessOptions {
  std::filesystem::path cwd;   // working folder of the program (empty: the test's own)
  std::string stdin_text;      // written to the program's stdin, which is then closed (never the terminal)
  bool merge_stderr = true;    // stderr into `output` (interleaved as written), else into `errors`
  int timeout_seconds = 0;     // > 0: the program's process group is killed (SIGKILL) after this long
};

struct ProcessResult {
  int status = -1;            // exit status; 128 + the signal number when a signal ended the program
  bool exited = false;        // ended by exit(), not by a signal
  int signal = 0;             // the terminating signal otherwise
  bool timed_out = false;     // killed after ProcessOptions::timeout_seconds
  std::string output;         // stdout (and stderr when merged)
  std::string errors;         // stderr when not merged
};

// Runs argv[0] (looked up on PATH unless it holds a '/') with argv, no shell. A program that cannot be
// started exits with 127. REQUIREs that the pipes and the process could be created.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// run_process({"/bin/sh", "-c", command_line}, options): for pipes, `env`, `ulimit`, traps.
ProcessResult run_shell(const std::string& command_line, const ProcessOptions& options = {});

// Runs this test program again (/proc/self/exe) on its Catch2 test case `test_case` alone, with
// `env_assignment` ("NAME=value") added to its environment: how a test sees a setting read once per process.
// REQUIREs exit status 0; returns what the child wrote.
std::string run_self_test_case(const std::string& env_assignment, const std::string& test_case);

// What a program wrote: the bytes of a file ("" when it cannot be read).
std::string read_file(const std::filesystem::path& path);

// Whether the file starts with the PNG signature.
bool is_png(const std::filesystem::path& path);

// How many times `what` occurs in text (overlapping occurrences count).
size_t count_occurrences(const std::string& text, const std::string& what);

}  // namespace tg::test
