#include "examples/seq2seq/data.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "tapegrad/framework/check.h"

namespace tg::seq2seq {
namespace {

constexpr int64_t kEpochOffset = -7305;   // day 0 (1950-01-01) in days since 1970-01-01

const char* const kMonths[12] = {"january", "february", "march",     "april",   "may",      "june",
                                 "july",    "august",   "september", "october", "november", "december"};
const char* const kWeekdays[7] = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};

std::string title(std::string s) {
  s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}
std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(c - 'a' + 'A');
  return s;
}
std::string abbr(const char* name) { return std::string(name, 3); }

std::string ordinal(int64_t d) {
  const char* suffix = (d % 100 >= 11 && d % 100 <= 13) ? "th" : d % 10 == 1 ? "st" : d % 10 == 2 ? "nd" : d % 10 == 3 ? "rd" : "th";
  return std::to_string(d) + suffix;
}

std::string two_digits(int64_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02lld", static_cast<long long>(v % 100));
  return buf;
}

// splitmix64: a fixed bijective mix of the day number, so the split depends on nothing but the date.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void check_day(int64_t day_number) {
  TG_CHECK(day_number >= 0 && day_number < kNumDays, "seq2seq", "day_number must be in [0, ", kNumDays,
           "); got day_number=", day_number);
}

}  // namespace

int64_t vocab_size() { return 3 + static_cast<int64_t>(std::strlen(kCharacters)); }

std::vector<int64_t> encode(const std::string& text) {
  std::vector<int64_t> out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char* at = text[i] == '\0' ? nullptr : std::strchr(kCharacters, text[i]);
    if (at == nullptr) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[i]));
      throw std::invalid_argument("[seq2seq] character '" + std::string(1, text[i]) + "' (byte " + byte + ") at position " +
                                  std::to_string(i) + " is outside the vocabulary; got text='" + text + "'");
    }
    out.push_back(3 + (at - kCharacters));
  }
  return out;
}

std::string decode(const std::vector<int64_t>& tokens) {
  std::string out;
  for (int64_t t : tokens) {
    if (t == kEos) break;
    if (t == kPad || t == kBos) continue;
    TG_CHECK(t > kEos && t < vocab_size(), "seq2seq", "token ", t, " is outside the vocabulary of ", vocab_size());
    out += kCharacters[t - 3];
  }
  return out;
}

Date date_of(int64_t day_number) {
  check_day(day_number);
  // Howard Hinnant's civil_from_days.
  const int64_t z = day_number + kEpochOffset + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  return {yoe + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

int64_t weekday_of(int64_t day_number) {
  check_day(day_number);
  const int64_t z = day_number + kEpochOffset;   // 1970-01-01 was a Thursday (3)
  return ((z + 3) % 7 + 7) % 7;
}

std::string iso(int64_t day_number) {
  const Date d = date_of(day_number);
  return std::to_string(d.year) + "-" + two_digits(d.month) + "-" + two_digits(d.day);
}

std::string written(int64_t day_number, int format) {
  const Date d = date_of(day_number);
  const std::string month = kMonths[d.month - 1], day = std::to_string(d.day), year = std::to_string(d.year);
  const std::string weekday = kWeekdays[weekday_of(day_number)];
  switch (format) {
    case 0: return ordinal(d.day) + " of " + month + " " + year;                       // 3rd of march 2021
    case 1: return title(abbr(month.c_str())) + " " + day + ", " + two_digits(d.year);  // Mar 3, 21
    case 2: return two_digits(d.month) + "/" + two_digits(d.day) + "/" + year;          // 03/03/2021
    case 3: return month + " " + day + " " + year;                                      // march 3 2021
    case 4: return title(weekday) + ", " + day + " " + title(month) + " " + year;       // Wednesday, 3 March 2021
    case 5: return day + "." + std::to_string(d.month) + "." + year;                    // 3.3.2021
    case 6: return "the " + ordinal(d.day) + " of " + title(month) + ", " + year;       // the 3rd of March, 2021
    case 7: return upper(month) + " " + day + ", " + year;                              // MARCH 3, 2021
    case 8: return abbr(weekday.c_str()) + " " + day + " " + abbr(month.c_str()) + " " + year;  // wed 3 mar 2021
    case 9: return std::to_string(d.month) + "/" + day + "/" + two_digits(d.year);      // 3/3/21
    default: break;
  }
  TG_CHECK(false, "seq2seq", "format must be in [0, ", kNumFormats, "); got format=", format);
  return {};
}

bool held_out(int64_t day_number) {
  check_day(day_number);
  return mix(static_cast<uint64_t>(day_number)) % 10 == 0;
}

Example make_example(int64_t day_number, int format) {
  return {written(day_number, format), iso(day_number), day_number, format};
}

Example draw_train_example(Generator& gen) {
  int64_t day = 0;
  do {
    day = static_cast<int64_t>(gen.next_below(kNumDays));
  } while (held_out(day));
  return make_example(day, static_cast<int>(gen.next_below(kNumFormats)));
}

std::vector<Example> held_out_examples(int64_t n, uint64_t seed) {
  TG_CHECK(n >= 0, "seq2seq", "the number of examples must be >= 0; got n=", n);
  Generator gen(seed);
  std::vector<Example> out;
  out.reserve(static_cast<size_t>(n));
  while (static_cast<int64_t>(out.size()) < n) {
    const int64_t day = static_cast<int64_t>(gen.next_below(kNumDays));
    const int format = static_cast<int>(gen.next_below(kNumFormats));
    if (held_out(day)) out.push_back(make_example(day, format));
  }
  return out;
}

Batch make_source_batch(const std::vector<std::vector<int64_t>>& sources) {
  TG_CHECK(!sources.empty(), "seq2seq", "a batch needs at least one source");
  const int64_t B = static_cast<int64_t>(sources.size());
  size_t S = 0;
  for (const auto& s : sources) {
    TG_CHECK(!s.empty(), "seq2seq", "a source must not be empty");
    S = std::max(S, s.size());
  }
  Batch b;
  b.src = Tensor::full({B, static_cast<int64_t>(S)}, static_cast<double>(kPad), DType::Int64);
  std::vector<bool> pad(static_cast<size_t>(B) * S, true);
  for (size_t r = 0; r < sources.size(); ++r) {
    std::copy(sources[r].begin(), sources[r].end(), b.src.data<int64_t>() + r * S);
    std::fill_n(pad.begin() + static_cast<std::ptrdiff_t>(r * S), sources[r].size(), false);
  }
  b.src_pad = Tensor::from_bools(pad, {B, static_cast<int64_t>(S)});
  return b;
}

Batch make_batch(const std::vector<Example>& examples) {
  std::vector<std::vector<int64_t>> sources, targets;
  size_t T = 0;
  for (const Example& e : examples) {
    sources.push_back(encode(e.source));
    targets.push_back(encode(e.target));
    T = std::max(T, targets.back().size() + 1);
  }
  Batch b = make_source_batch(sources);
  const int64_t B = static_cast<int64_t>(examples.size()), Tl = static_cast<int64_t>(T);
  b.tgt_in = Tensor::full({B, Tl}, static_cast<double>(kPad), DType::Int64);
  b.tgt_out = Tensor::full({B, Tl}, static_cast<double>(kPad), DType::Int64);
  std::vector<bool> pad(static_cast<size_t>(B) * T, true);
  for (size_t r = 0; r < targets.size(); ++r) {
    int64_t* in = b.tgt_in.data<int64_t>() + r * T;
    int64_t* out = b.tgt_out.data<int64_t>() + r * T;
    in[0] = kBos;
    std::copy(targets[r].begin(), targets[r].end(), in + 1);
    std::copy(targets[r].begin(), targets[r].end(), out);
    out[targets[r].size()] = kEos;
    std::fill_n(pad.begin() + static_cast<std::ptrdiff_t>(r * T), targets[r].size() + 1, false);
  }
  b.tgt_pad = Tensor::from_bools(pad, {B, Tl});
  return b;
}

}  // namespace tg::seq2seq
