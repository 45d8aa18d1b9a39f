// Random streams with clear ownership (framework/random.h): a Generator is a handle; copies share
// one stream, clone() starts an independent one, and modules keep a handle by value, so a module
// may outlive the Generator variable it was built with.
#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "tapegrad/layers/dropout.h"
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/layers/transformer_encoder_layer.h"
#include "support/test_support.h"

using namespace tg;
using namespace tg::test;

TEST_CASE("Generator: a copy shares the stream, draws and re-seeding through either are seen by both", "[random]") {
  Generator a(42);
  Generator b = a;
  REQUIRE(b.shares_stream_with(a));
  const uint64_t first = a.next_u64();
  REQUIRE(b.state() == GeneratorState{42, 1});   // b advanced with a
  const uint64_t second = b.next_u64();
  REQUIRE(a.state() == GeneratorState{42, 2});
  Generator twin(42);
  REQUIRE(twin.next_u64() == first);
  REQUIRE(twin.next_u64() == second);
  b.manual_seed(7);
  REQUIRE(a.state() == GeneratorState{7, 0});
  a.set_state({9, 5});
  REQUIRE(b.state() == GeneratorState{9, 5});
  // Assignment rebinds the handle to the other stream.
  Generator c(1);
  c = a;
  REQUIRE(c.shares_stream_with(a));
  // A "moved-from" Generator is a copy and stays usable.
  Generator d(3);
  Generator e = std::move(d);
  REQUIRE(e.shares_stream_with(d));
  REQUIRE(d.next_u64() == Generator(3).next_u64());
}

TEST_CASE("Generator: clone() is independent, starting at the same state", "[random]") {
  Generator a(11);
  a.next_u64();
  Generator c = a.clone();
  REQUIRE_FALSE(c.shares_stream_with(a));
  REQUIRE(c.state() == a.state());
  const uint64_t from_clone = c.next_u64();
  REQUIRE(a.state() == GeneratorState{11, 1});   // the clone's draw did not advance a
  REQUIRE(a.next_u64() == from_clone);             // same state, same draw
  c.manual_seed(0);
  REQUIRE(a.seed() == 11);
  REQUIRE_FALSE(Generator(5).shares_stream_with(Generator(5)));   // Generator(seed) is a new stream
}

TEST_CASE("Generator: modules built without one share default_generator(), re-seeded by manual_seed", "[random]") {
  Dropout d({.p = 0.5});
  auto x = rand_var({6, 6}, 1);
  manual_seed(123);
  Tensor first = d.forward(x).value().clone();
  manual_seed(123);
  REQUIRE(d.forward(x).value().bit_equal(first));
  REQUIRE(default_generator().state().offset > 0);
  manual_seed(0);
}

TEST_CASE("Dropout built from a Generator that went out of scope draws the twin generator's masks", "[random][layers]") {
  std::unique_ptr<Dropout> orphan;
  {
    Generator gen(2024);   // destroyed at the end of this block
    orphan = std::make_unique<Dropout>(DropoutOptions{.p = 0.5}, gen);
  }
  Generator twin(2024);
  Dropout live({.p = 0.5}, twin);
  auto x = rand_var({16, 16}, 3);
  for (int call = 0; call < 3; ++call) {
    Tensor a = orphan->forward(x).value().clone();
    Tensor b = live.forward(x).value().clone();
    REQUIRE(a.bit_equal(b));
  }
  REQUIRE(twin.state() == GeneratorState{2024, 3 * 256});   // one Philox block per element
}

TEST_CASE("MultiheadAttention and TransformerEncoderLayer outlive their Generator variable", "[random][mha]") {
  auto x = rand_var({5, 2, 8}, 4);
  std::unique_ptr<MultiheadAttention> orphan;
  std::unique_ptr<TransformerEncoderLayer> orphan_layer;
  {
    Generator gen(77), layer_gen(78);
    orphan = std::make_unique<MultiheadAttention>(MultiheadAttentionOptions{.embed_dim = 8, .num_heads = 2, .dropout = 0.4},
                                                  gen, DType::Float64);
    orphan_layer = std::make_unique<TransformerEncoderLayer>(
        TransformerEncoderLayerOptions{.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.3}, layer_gen,
        DType::Float64);
  }
  Generator twin(77), layer_twin(78);
  MultiheadAttention live({.embed_dim = 8, .num_heads = 2, .dropout = 0.4}, twin, DType::Float64);
  TransformerEncoderLayer live_layer({.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.3}, layer_twin,
                                     DType::Float64);
  for (bool need_weights : {true, false}) {
    auto a = orphan->forward(x, x, x, {.need_weights = need_weights});
    auto b = live.forward(x, x, x, {.need_weights = need_weights});
    REQUIRE(a.attn_output.value().bit_equal(b.attn_output.value()));
    REQUIRE(orphan_layer->forward(x).value().bit_equal(live_layer.forward(x).value()));
  }
  // The masks are really random (not an accidental identity): eval mode differs.
  Tensor trained = live.forward(x, x, x).attn_output.value().clone();
  live.eval();
  REQUIRE(max_abs_diff(trained, live.forward(x, x, x).attn_output.value()) > 1e-3);
}

TEST_CASE("Modules built from copies of one Generator share its stream, from a clone they do not", "[random][layers]") {
  auto x = rand_var({8, 8}, 5);
  Generator gen(9);
  Dropout a({.p = 0.5}, gen), b({.p = 0.5}, gen);
  Tensor ya = a.forward(x).value().clone();
  Tensor yb = b.forward(x).value().clone();   // continues the stream a advanced
  REQUIRE_FALSE(ya.bit_equal(yb));
  Generator again(9);
  Dropout c({.p = 0.5}, again), d({.p = 0.5}, again.clone());
  REQUIRE(c.forward(x).value().bit_equal(ya));
  REQUIRE(d.forward(x).value().bit_equal(ya));   // the clone started where again was, independently
}

TEST_CASE("Generator: threads drawing from one stream at once each get blocks of their own", "[random]") {
  // As PyTorch's generators (each draw holds the generator's mutex): two threads building models from
  // the default stream must not get the same blocks or lose reservations. Before, reserve() was an
  // unsynchronised read-add-write, and concurrent draws lost offsets and repeated blocks.
  Generator shared(5);
  constexpr int kDraws = 1000000;
  std::vector<uint64_t> firsts[2];
  std::atomic<int> ready{0};
  auto draw = [&](std::vector<uint64_t>& out) {
    out.reserve(kDraws);
    ++ready;
    while (ready.load() < 2) {}   // both threads start drawing together
    for (int i = 0; i < kDraws; ++i) out.push_back(shared.reserve_blocks(3).first);
  };
  std::thread other(draw, std::ref(firsts[1]));
  draw(firsts[0]);
  other.join();
  REQUIRE(shared.state() == GeneratorState{5, 3ull * 2 * kDraws});   // no reservation lost
  std::vector<uint64_t> all(firsts[0]);
  all.insert(all.end(), firsts[1].begin(), firsts[1].end());
  std::sort(all.begin(), all.end());
  std::vector<uint64_t> each_once(all.size());
  for (size_t i = 0; i < each_once.size(); ++i) each_once[i] = 3 * i;
  REQUIRE(all == each_once);   // every block reserved exactly once
  // A draw reads the seed with its blocks: a reseed on another thread never mixes one seed's offset
  // with another's seed (each Reservation is one of the states the stream went through).
  Generator g(1);
  std::thread reseeder([&] {
    for (int i = 0; i < 20000; ++i) g.set_state({2, 1000000});
  });
  bool consistent = true;
  for (int i = 0; i < 20000; ++i) {
    const Reservation r = g.reserve_blocks(1);
    consistent = consistent && (r.seed == 1 ? r.first < 20000 : r.seed == 2 && r.first >= 1000000);
  }
  reseeder.join();
  REQUIRE(consistent);
}
