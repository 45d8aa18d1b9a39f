#pragma once
// The built-in seq2seq task: written dates -> ISO 8601, character level.
//   "3rd of march 2021", "Mar 3, 21", "03/03/2021", "Wednesday, 3 March 2021", ... -> "2021-03-03"
// Dates run from 1950-01-01 to 2049-12-31; two-digit years mean 1950..1999 for 50..99 and 2000..2049 for
// 00..49, so every format is unambiguous (slashes are month/day/year, dots day.month.year). The task needs
// cross-attention: the month is a word to translate, the day and year digits must be copied from
// positions that move with the format, and two-digit years must be expanded.
// Split: a fixed ~10% of the DATES (a hash of the day number, independent of any seed) is held out;
// training never sees a held-out date in any format, so held-out accuracy measures generalisation to
// unseen dates, not to unseen spellings of seen ones.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/framework/random.h"
#include "tapegrad/framework/tensor.h"

namespace tg::seq2seq {

// Token ids: 0 padding, 1 begin-of-sequence, 2 end-of-sequence, then the characters of kCharacters.
constexpr int64_t kPad = 0, kBos = 1, kEos = 2;
inline constexpr const char* kCharacters =
    " ,./-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
int64_t vocab_size();   // 3 + the characters
// Throws std::invalid_argument "[seq2seq] character 'x' (byte 0x..) at position i is outside the
// vocabulary; got text='...'" for a character outside kCharacters.
std::vector<int64_t> encode(const std::string& text);
// The characters of tokens up to the first kEos; kPad and kBos are skipped, other ids throw.
std::string decode(const std::vector<int64_t>& tokens);

constexpr int64_t kNumDays = 36525;   // 1950-01-01 (day 0) .. 2049-12-31
constexpr int kNumFormats = 10;
constexpr int64_t kMaxTargetLength = 10;   // "YYYY-MM-DD"
constexpr int64_t kMaxSourceLength = 28;   // "Wednesday, 23 September 2021" is the longest

struct Date {
  int64_t year, month, day;
};
Date date_of(int64_t day_number);        // day_number in [0, kNumDays)
int64_t weekday_of(int64_t day_number);  // 0 = Monday
std::string iso(int64_t day_number);     // "2021-03-03"
// The date written in format 0..kNumFormats-1 (see data.cpp for the list). Throws std::invalid_argument
// for a day or format out of range.
std::string written(int64_t day_number, int format);
// Whether the date belongs to the held-out split (fixed, about 10% of the days).
bool held_out(int64_t day_number);

struct Example {
  std::string source, target;
  int64_t day_number;
  int format;
};
Example make_example(int64_t day_number, int format);
// A training example: a uniformly drawn day outside the held-out split, in a uniformly drawn format.
// Deterministic given the generator's state (draws advance it).
Example draw_train_example(Generator& gen);
// n held-out examples drawn (days of the held-out split, formats uniform) from a new stream Generator(seed).
std::vector<Example> held_out_examples(int64_t n, uint64_t seed);

// A padded batch: src (B, S) and tgt_in / tgt_out (B, T) int64; src_pad / tgt_pad (B, S) / (B, T) bool,
// true at padding (PyTorch's key_padding_mask convention). tgt_in = BOS + target, tgt_out = target + EOS,
// kPad past the end (the loss ignores kPad).
struct Batch {
  Tensor src, src_pad, tgt_in, tgt_out, tgt_pad;
};
Batch make_batch(const std::vector<Example>& examples);
// The source side only (for decoding): src (B, S) and src_pad (B, S) from token lists (each non-empty).
Batch make_source_batch(const std::vector<std::vector<int64_t>>& sources);

}  // namespace tg::seq2seq
