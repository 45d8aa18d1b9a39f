// The seq2seq example's built-in task: the date formats, the calendar, determinism of the generated
// examples, the held-out split by date, the vocabulary and the padded batches.
#include <set>

#include "examples/seq2seq/data.h"
#include "support/test_support.h"

using Catch::Matchers::Contains;
using namespace tg;
using namespace tg::seq2seq;

namespace {

int64_t day_of(const std::string& iso_text) {
  for (int64_t d = 0; d < kNumDays; ++d)
    if (iso(d) == iso_text) return d;
  FAIL("no day " << iso_text);
  return -1;
}

}  // namespace

TEST_CASE("seq2seq data: every format of 2021-03-03 (a Wednesday)", "[seq2seq][data]") {
  const int64_t d = day_of("2021-03-03");
  const std::vector<std::string> expected = {"3rd of march 2021", "Mar 3, 21", "03/03/2021", "march 3 2021",
                                             "Wednesday, 3 March 2021", "3.3.2021", "the 3rd of March, 2021",
                                             "MARCH 3, 2021", "wed 3 mar 2021", "3/3/21"};
  REQUIRE(expected.size() == static_cast<size_t>(kNumFormats));
  for (int f = 0; f < kNumFormats; ++f) CHECK(written(d, f) == expected[static_cast<size_t>(f)]);
  const Example e = make_example(d, 4);
  CHECK(e.source == "Wednesday, 3 March 2021");
  CHECK(e.target == "2021-03-03");
  REQUIRE_THROWS_WITH(written(d, kNumFormats), Contains("[seq2seq] format must be in [0, 10); got format=10"));
  REQUIRE_THROWS_WITH(written(kNumDays, 0), Contains("day_number must be in [0, 36525); got day_number=36525"));
}

TEST_CASE("seq2seq data: calendar boundaries, leap days, weekdays, ordinals and two-digit years", "[seq2seq][data]") {
  CHECK(iso(0) == "1950-01-01");
  CHECK(weekday_of(0) == 6);   // a Sunday
  CHECK(iso(kNumDays - 1) == "2049-12-31");
  CHECK(written(day_of("2000-02-29"), 4) == "Tuesday, 29 February 2000");
  CHECK(written(day_of("1999-12-31"), 1) == "Dec 31, 99");
  CHECK(written(day_of("2049-12-31"), 9) == "12/31/49");
  CHECK(written(day_of("2000-01-01"), 9) == "1/1/00");
  CHECK(written(day_of("1950-07-04"), 8) == "tue 4 jul 1950");
}

TEST_CASE("seq2seq data: ordinals 1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 23rd", "[seq2seq][data]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"2021-05-01", "1st"}, {"2021-05-02", "2nd"}, {"2021-05-03", "3rd"}, {"2021-05-04", "4th"},
      {"2021-05-11", "11th"}, {"2021-05-12", "12th"}, {"2021-05-13", "13th"}, {"2021-05-21", "21st"},
      {"2021-05-22", "22nd"}, {"2021-05-23", "23rd"}, {"2021-05-31", "31st"}};
  for (const auto& [date, ord] : cases) CHECK(written(day_of(date), 0) == ord + " of may 2021");
}

TEST_CASE("seq2seq data: sources fit kMaxSourceLength and targets are 10 characters of ISO form", "[seq2seq][data]") {
  size_t longest = 0;
  for (int64_t d = 0; d < kNumDays; d += 7)
    for (int f = 0; f < kNumFormats; ++f) longest = std::max(longest, written(d, f).size());
  CHECK(static_cast<int64_t>(longest) <= kMaxSourceLength);
  CHECK(written(day_of("2021-09-22"), 4) == "Wednesday, 22 September 2021");
  CHECK(static_cast<int64_t>(written(day_of("2021-09-22"), 4).size()) == kMaxSourceLength);
}

TEST_CASE("seq2seq data: the held-out split is by date, about 10% of the days, disjoint from training", "[seq2seq][data]") {
  int64_t held = 0;
  for (int64_t d = 0; d < kNumDays; ++d) held += held_out(d) ? 1 : 0;
  CHECK(held > kNumDays / 12);
  CHECK(held < kNumDays / 8);
  Generator gen(5);
  std::set<int64_t> train_days;
  for (int i = 0; i < 3000; ++i) {
    const Example e = draw_train_example(gen);
    REQUIRE_FALSE(held_out(e.day_number));
    REQUIRE(e.source == written(e.day_number, e.format));
    train_days.insert(e.day_number);
  }
  for (const Example& e : held_out_examples(500, 9)) {
    REQUIRE(held_out(e.day_number));
    REQUIRE_FALSE(train_days.count(e.day_number));
    REQUIRE(e.target == iso(e.day_number));
  }
}

TEST_CASE("seq2seq data: generation is deterministic given the seed and differs across seeds", "[seq2seq][data]") {
  Generator a(42), b(42), c(43);
  std::vector<std::string> sa, sb, sc;
  for (int i = 0; i < 50; ++i) {
    sa.push_back(draw_train_example(a).source);
    sb.push_back(draw_train_example(b).source);
    sc.push_back(draw_train_example(c).source);
  }
  CHECK(sa == sb);
  CHECK(sa != sc);
  const auto h1 = held_out_examples(40, 3), h2 = held_out_examples(40, 3), h3 = held_out_examples(40, 4);
  for (size_t i = 0; i < h1.size(); ++i) REQUIRE(h1[i].source == h2[i].source);
  CHECK(h1[0].source + h1[1].source != h3[0].source + h3[1].source);
  std::set<int> formats;
  for (const Example& e : held_out_examples(200, 3)) formats.insert(e.format);
  CHECK(formats.size() == static_cast<size_t>(kNumFormats));
}

TEST_CASE("seq2seq data: encode/decode round trip and characters outside the vocabulary", "[seq2seq][data]") {
  CHECK(vocab_size() == 70);
  const std::string text = "Wednesday, 3 March 2021 03/03/21 3.3.21-";
  CHECK(decode(encode(text)) == text);
  std::vector<int64_t> with_specials{kBos};
  for (int64_t t : encode("2021")) with_specials.push_back(t);
  with_specials.push_back(kEos);
  with_specials.push_back(encode("9")[0]);
  CHECK(decode(with_specials) == "2021");   // stops at EOS
  REQUIRE_THROWS_WITH(encode("3rd of mä"), Contains("[seq2seq] character '\xc3' (byte 0xc3) at position 8 is outside the vocabulary"));
  REQUIRE_THROWS_WITH(encode("a\tb"), Contains("(byte 0x09) at position 1"));
  REQUIRE_THROWS_WITH(decode({99}), Contains("token 99 is outside the vocabulary of 70"));
}

TEST_CASE("seq2seq data: a batch pads sources and targets and marks the padding", "[seq2seq][data]") {
  const Batch b = make_batch({make_example(0, 5), make_example(0, 4)});   // "1.1.1950", "Sunday, 1 January 1950"
  REQUIRE(b.src.shape() == Shape{2, 22});
  REQUIRE(b.tgt_in.shape() == Shape{2, 11});
  CHECK(b.src.at({0, 7}) == static_cast<double>(encode("0")[0]));
  CHECK(b.src.at({0, 8}) == static_cast<double>(kPad));
  CHECK(b.src_pad.at({0, 7}) == 0.0);
  CHECK(b.src_pad.at({0, 8}) == 1.0);
  CHECK(b.src_pad.at({1, 21}) == 0.0);
  CHECK(b.tgt_in.at({0, 0}) == static_cast<double>(kBos));
  CHECK(decode(std::vector<int64_t>(b.tgt_in.data<int64_t>() + 1, b.tgt_in.data<int64_t>() + 11)) == "1950-01-01");
  CHECK(b.tgt_out.at({1, 10}) == static_cast<double>(kEos));
  CHECK(decode(std::vector<int64_t>(b.tgt_out.data<int64_t>(), b.tgt_out.data<int64_t>() + 11)) == "1950-01-01");
  CHECK(b.tgt_pad.at({1, 10}) == 0.0);
  REQUIRE_THROWS_WITH(make_source_batch({{}}), Contains("[seq2seq] a source must not be empty"));
}
