#include "tapegrad/framework/random.h"

#include <mutex>

namespace tg {

struct Generator::Stream {
  std::mutex m;
  GeneratorState s;
};

Generator::Generator(uint64_t seed) : state_(std::make_shared<Stream>()) { state_->s = {seed, 0}; }

GeneratorState Generator::state() const {
  const std::lock_guard lock(state_->m);
  return state_->s;
}

void Generator::set_state(GeneratorState s) {
  const std::lock_guard lock(state_->m);
  state_->s = s;
}

Reservation Generator::reserve_blocks(uint64_t n) {
  const std::lock_guard lock(state_->m);
  const Reservation r{state_->s.seed, state_->s.offset};
  state_->s.offset += n;
  return r;
}

PhiloxBlock philox_block(uint64_t seed, uint64_t counter) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = static_cast<uint32_t>(p1);
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = static_cast<uint32_t>(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

Generator Generator::clone() const {
  Generator copy;
  copy.set_state(state());
  return copy;
}

uint64_t Generator::next_u64() {
  const Reservation r = reserve_blocks(1);
  PhiloxBlock b = philox_block(r.seed, r.first);
  return (static_cast<uint64_t>(b.w[0]) << 32) | b.w[1];
}

double Generator::next_double() {
  const Reservation r = reserve_blocks(1);
  PhiloxBlock b = philox_block(r.seed, r.first);
  return u01_from(b.w[0], b.w[1]);
}

uint64_t Generator::next_below(uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(next_u64()) * n;
  return static_cast<uint64_t>(m >> 64);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace tg
