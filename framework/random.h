#pragma once
// Seeded random streams. A Generator is a counter-based Philox-4x32-10 stream: its whole state is
// (seed, offset), so it can be saved and restored exactly (checkpoints store both numbers), and
// element i of a fill depends only on (seed, offset + i): fills are identical for any thread count.
#include <cstdint>

namespace tg {

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;   // number of 128-bit Philox blocks consumed so far
  bool operator==(const GeneratorState&) const = default;
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : state_{seed, 0} {}

  GeneratorState state() const { return state_; }
  void set_state(GeneratorState s) { state_ = s; }
  void manual_seed(uint64_t seed) { state_ = {seed, 0}; }
  uint64_t seed() const { return state_.seed; }

  // Reserves n consecutive blocks and returns the first block index (the caller draws block
  // first + i for its element i with philox_block).
  uint64_t reserve(uint64_t n) {
    uint64_t first = state_.offset;
    state_.offset += n;
    return first;
  }
  uint64_t next_u64();      // one block, low 64 bits
  double next_double();     // uniform in [0, 1), 53 random bits
  // Random integer in [0, n), n > 0 (rejection-free 128-bit multiply; bias < 2^-64).
  uint64_t next_below(uint64_t n);

 private:
  GeneratorState state_;
};

// The four 32-bit words of Philox-4x32-10 at block `counter` under key `seed`.
struct PhiloxBlock { uint32_t w[4]; };
PhiloxBlock philox_block(uint64_t seed, uint64_t counter);

// Uniform [0,1) with 53 bits from words 0,1 and a second one from words 2,3 of a block.
inline double u01_from(uint32_t hi, uint32_t lo) {
  uint64_t bits = ((static_cast<uint64_t>(hi) << 32) | lo) >> 11;
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

// The process-wide default stream used by parameter initialisers when none is passed
// (the analogue of torch.manual_seed / the default CPU generator).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace tg
