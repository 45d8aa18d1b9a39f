#pragma once
// Seeded random streams. A Generator is a counter-based Philox-4x32-10 stream: its whole state is
// (seed, offset), so it can be saved and restored exactly (checkpoints store both numbers), and
// element i of a fill depends only on (seed, offset + i): fills are identical for any thread count.
//
// Ownership rule (the one rule for every random stream in tapegrad, like torch.Generator):
//  * A Generator is a HANDLE to a shared stream state. Copying a Generator (by value, into a member,
//    into a struct) gives a second handle to the SAME stream: a draw through either advances both,
//    and set_state/manual_seed through either is seen by both.
//  * `Generator(seed)` starts a new, independent stream; `g.clone()` starts a new, independent stream
//    at g's current state (the same draws follow, but the two no longer affect each other).
//  * Modules that draw while running (Dropout, MultiheadAttention, TransformerEncoderLayer, ...) keep
//    a Generator by value: they share the caller's stream, and the stream lives as long as any
//    handle does, so a module may outlive the Generator variable it was built with and keeps drawing
//    from the same stream. Modules that only draw at construction (Linear, Embedding) keep nothing.
//  * A stream is synchronised, as PyTorch's generators are: threads drawing from one stream at once (two
//    models built on two threads from the default stream, say) each get blocks of their own, in the
//    order the draws happen to run; every draw reserves its blocks and reads the seed in one step.
#include <cstdint>
#include <memory>

namespace tg {

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;   // number of 128-bit Philox blocks consumed so far
  bool operator==(const GeneratorState&) const = default;
};

// The blocks one draw reserved: it uses philox_block(seed, first + i) for its element i.
struct Reservation {
  uint64_t seed = 0;
  uint64_t first = 0;
};

class Generator {
 public:
  // A new independent stream at (seed, offset 0).
  explicit Generator(uint64_t seed = 0);
  // Copies share the stream (see the rule above). No move operations are declared, so a "moved-from"
  // Generator is a copy and stays usable.
  Generator(const Generator&) = default;
  Generator& operator=(const Generator&) = default;

  // A new independent stream with this one's current (seed, offset).
  Generator clone() const;
  // True when both handles refer to the same stream.
  bool shares_stream_with(const Generator& other) const { return state_ == other.state_; }

  GeneratorState state() const;
  void set_state(GeneratorState s);
  void manual_seed(uint64_t seed) { set_state({seed, 0}); }
  uint64_t seed() const { return state().seed; }

  // Reserves n consecutive blocks: the seed and the first block index, read and advanced in one step
  // (the caller draws block first + i for its element i with philox_block).
  Reservation reserve_blocks(uint64_t n);
  // reserve_blocks(n).first, for a caller that read seed() before and knows no other thread reseeds.
  uint64_t reserve(uint64_t n) { return reserve_blocks(n).first; }
  uint64_t next_u64();      // one block, low 64 bits
  double next_double();     // uniform in [0, 1), 53 random bits
  // Random integer in [0, n), n > 0 (rejection-free 128-bit multiply; bias < 2^-64).
  uint64_t next_below(uint64_t n);

 private:
  struct Stream;                      // the state and its mutex (random.cpp)
  std::shared_ptr<Stream> state_;     // never null
};

// The four 32-bit words of Philox-4x32-10 at block `counter` under key `seed`.
struct PhiloxBlock { uint32_t w[4]; };
PhiloxBlock philox_block(uint64_t seed, uint64_t counter);

// Uniform [0,1) with 53 bits from words 0,1 and a second one from words 2,3 of a block.
inline double u01_from(uint32_t hi, uint32_t lo) {
  uint64_t bits = ((static_cast<uint64_t>(hi) << 32) | lo) >> 11;
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

// The process-wide default stream used by parameter initialisers and modules when none is passed
// (the analogue of torch.manual_seed / the default CPU generator). Modules built without a
// Generator share this stream; manual_seed re-seeds it in place, so they see the new seed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace tg
