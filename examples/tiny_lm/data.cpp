#include "examples/tiny_lm/data.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "tapegrad/framework/check.h"

namespace tg::tiny_lm {

Vocabulary Vocabulary::from_text(const std::string& text) {
  bool present[256] = {};
  for (unsigned char c : text) present[c] = true;
  Vocabulary v;
  for (int c = 0; c < 256; ++c)
    if (present[c]) {
      v.index_[c] = static_cast<int16_t>(v.chars_.size() + 1);   // 0 = absent
      v.chars_.push_back(static_cast<char>(c));
    }
  return v;
}

std::vector<int64_t> Vocabulary::encode(const std::string& text) const {
  std::vector<int64_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    int16_t id = index_[static_cast<unsigned char>(text[i])];
    if (id == 0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "byte 0x%02x at offset %zu", static_cast<unsigned char>(text[i]), i);
      throw std::invalid_argument(std::string("[Vocabulary] text has a character outside the vocabulary: ") + buf);
    }
    out[i] = id - 1;
  }
  return out;
}

std::string Vocabulary::decode(const std::vector<int64_t>& tokens) const {
  std::string out;
  for (int64_t t : tokens) {
    TG_CHECK(t >= 0 && t < size(), "Vocabulary", "token ", t, " out of range for a vocabulary of ", size());
    out.push_back(chars_[static_cast<size_t>(t)]);
  }
  return out;
}

namespace {
Corpus split(std::string name, const std::string& text) {
  Corpus c;
  c.name = std::move(name);
  c.vocab = Vocabulary::from_text(text);
  std::vector<int64_t> all = c.vocab.encode(text);
  size_t n = all.size() * 9 / 10;
  c.train.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
  c.val.assign(all.begin() + static_cast<std::ptrdiff_t>(n), all.end());
  return c;
}
}  // namespace

std::string read_regular_file(const std::string& path, const std::string& what) {
  auto fail = [&](const std::string& why) {
    return std::runtime_error(path + ": cannot read the " + what + ": " + why);
  };
  // O_NONBLOCK: opening a FIFO for reading blocks until a writer comes (forever); the type is checked
  // on the open descriptor (no window between a stat and the open), then reads block as usual.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw fail(std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw fail(S_ISDIR(st.st_mode) ? "Is a directory" : "not a regular file");
  }
  FILE* f = ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0 ? ::fdopen(fd, "rb") : nullptr;
  if (f == nullptr) {
    const int error = errno;
    ::close(fd);
    throw fail(std::strerror(error));
  }
  std::string text;
  char buf[65536];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) text.append(buf, n);
  const int error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (error != 0) throw fail(std::strerror(error));
  return text;
}

std::string read_text_file(const std::string& path) { return read_regular_file(path, "data file"); }

Corpus load_corpus(const std::string& path) {
  std::string text = read_text_file(path);
  if (text.size() < 1000) throw std::runtime_error(path + ": the data file is too short (" + std::to_string(text.size()) + " bytes)");
  return split(path, text);
}

Corpus arithmetic_corpus(uint64_t seed) {
  std::vector<std::string> facts;
  for (int a = 0; a < 100; ++a)
    for (int b = 0; b < 100; ++b) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%02d+%02d=%03d\n", a, b, a + b);
      facts.emplace_back(buf);
    }
  Generator gen(seed);
  for (size_t i = facts.size() - 1; i > 0; --i)   // Fisher-Yates
    std::swap(facts[i], facts[gen.next_below(i + 1)]);
  std::string text;
  for (const auto& f : facts) text += f;
  return split("built-in arithmetic", text);
}

BatchSampler::BatchSampler(const std::vector<int64_t>* data, int64_t batch_size, int64_t block_size, uint64_t seed)
    : data_(data), batch_size_(batch_size), block_size_(block_size), gen_(seed) {
  TG_CHECK(static_cast<int64_t>(data->size()) > block_size + 1, "BatchSampler", "the data has ", data->size(),
           " tokens, fewer than block_size + 2 = ", block_size + 2);
}

std::pair<Tensor, Tensor> BatchSampler::next() { return batch(draw_starts(1), 0); }

std::vector<uint64_t> BatchSampler::draw_starts(int64_t micro_batches) {
  TG_CHECK(micro_batches >= 1, "BatchSampler", "micro_batches must be positive; got micro_batches=", micro_batches);
  const uint64_t windows = data_->size() - static_cast<uint64_t>(block_size_) - 1;
  std::vector<uint64_t> starts(static_cast<size_t>(micro_batches * batch_size_));
  for (uint64_t& s : starts) s = gen_.next_below(windows);
  return starts;
}

std::pair<Tensor, Tensor> BatchSampler::batch(const std::vector<uint64_t>& starts, int64_t m) const {
  TG_CHECK(m >= 0 && (m + 1) * batch_size_ <= static_cast<int64_t>(starts.size()), "BatchSampler",
           "micro-batch ", m, " is outside the ", starts.size(), " drawn starts of batch_size ", batch_size_);
  Tensor x({batch_size_, block_size_}, DType::Int64), y({batch_size_, block_size_}, DType::Int64);
  int64_t *px = x.data<int64_t>(), *py = y.data<int64_t>();
  for (int64_t b = 0; b < batch_size_; ++b) {
    const int64_t* w = data_->data() + starts[static_cast<size_t>(m * batch_size_ + b)];
    std::copy(w, w + block_size_, px + b * block_size_);
    std::copy(w + 1, w + 1 + block_size_, py + b * block_size_);
  }
  return {x, y};
}

}  // namespace tg::tiny_lm
