#pragma once
// Atomic replacement of a file's content: the bytes are written to "<path>.tmp.<pid>" in the same
// folder with write(2), fsync'ed, renamed over path, and the folder fsync'ed, so readers see either
// the old or the new content, also when the process is killed or the disk fills up mid-way.
// Throws std::runtime_error with the OS's reason, e.g.
//   "out/ckpt.h5: cannot create out/ckpt.h5.tmp.42: Permission denied"
//   "out/ckpt.h5: cannot write out/ckpt.h5.tmp.42: No space left on device"
// after removing the temporary file; the previous content of path is then untouched.
// Before writing, temporary files "<path>.tmp.<pid>" left by processes that no longer exist (killed
// during a write) are removed; those of running processes are left alone (another writer may be
// using them). A pid reused by an unrelated live process keeps its stale file until that process ends.
#include <cstddef>
#include <string>
#include <vector>

namespace tg::io {

void write_file_atomically(const std::string& path, const void* data, size_t size);

// The stale temporary files of path that write_file_atomically would remove now (for tests and tools).
std::vector<std::string> stale_temp_files(const std::string& path);

}  // namespace tg::io
