#pragma once
// README code blocks that are tested code: a test holds the snippet between two marker lines and checks
// that the README shows exactly that code. Header-only, so the MPI tests (their own Catch main) use it too.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

namespace tg::test {

// Each line without its leading blanks, so a README block matches the same code indented in a test.
inline std::string unindent(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) out += line.substr(std::min(line.find_first_not_of(' '), line.size())) + "\n";
  return out;
}

inline std::string read_source_file(const std::string& relative) {
  std::ifstream f(std::string(TAPEGRAD_SOURCE_DIR) + "/" + relative);
  INFO(relative);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// REQUIREs that the first ```cpp block after `heading` in README.md is, line for line and ignoring leading
// blanks, the code of the test source `test_source` (relative to the repository) between its lines
// "// --- README block begins" and "// --- README block ends".
inline void require_readme_block_matches(const std::string& heading, const std::string& test_source) {
  const std::string readme = read_source_file("README.md");
  const size_t at = readme.find(heading);
  INFO("README heading " << heading);
  REQUIRE(at != std::string::npos);
  const size_t b = readme.find("```cpp\n", at), e = readme.find("```\n", b + 7);
  REQUIRE((b != std::string::npos && e != std::string::npos));
  const std::string block = readme.substr(b + 7, e - b - 7);
  const std::string self = read_source_file(test_source);
  const std::string begins = "// --- README block begins\n";
  const size_t s0 = self.find(begins), end_marker = self.find("// --- README block ends");
  REQUIRE((s0 != std::string::npos && end_marker != std::string::npos && s0 < end_marker));
  const size_t s1 = self.rfind('\n', end_marker) + 1;   // the start of the marker's line
  INFO(block);
  REQUIRE(unindent(self.substr(s0 + begins.size(), s1 - s0 - begins.size())) == unindent(block));
}

}  // namespace tg::test
