#pragma once
// AttentionCache: the projected keys and values of one MultiheadAttention, kept between calls for
// incremental (token-by-token) decoding. Inference only: the cached path runs without recording a
// tape (it behaves as under NoGradGuard) and without dropout, whatever the module's training flag.
//
// Two kinds:
//  * self_attention(max_length): each MultiheadAttention::forward_step projects the step's key and
//    value and APPENDS them; the step's queries attend over every cached position, causally (query i
//    of a step that starts at cached length P sees keys j <= P + i). max_length > 0 bounds the total
//    number of positions: a step that would pass it throws (0 = unbounded).
//  * cross_attention(): the first forward_step projects key/value (e.g. the encoder memory) once; later
//    steps reuse them and do not project again (key/value may then be passed again or left undefined).
// A cache is bound by its first use to a batch size, a dtype and batched/unbatched input; using it
// with another throws std::invalid_argument. reset() empties it (the binding goes with it).
//
// Copies are independent caches (fork one per hypothesis in a beam search): a copy shares the buffers
// until a step would overwrite positions that another copy appended, or that a keys()/values() view
// still shows, and then takes buffers of its own first (copy on write). A fork therefore costs nothing
// until its copies diverge, and one copy of the cached positions then.
// Used by MultiheadAttention::forward_step, TransformerEncoderLayer::forward_step (decoder-only models)
// and TransformerDecoderLayer / TransformerDecoder::forward_step.
#include <cstdint>
#include <memory>

#include "tapegrad/framework/tensor.h"

namespace tg {

class AttentionCache {
 public:
  enum class Kind { self_attention, cross_attention };

  static AttentionCache self_attention(int64_t max_length = 0);   // throws for max_length < 0
  static AttentionCache cross_attention();

  Kind kind() const { return kind_; }
  int64_t max_length() const { return max_length_; }   // 0: unbounded
  bool empty() const { return !key_buf_.defined(); }
  int64_t length() const { return length_; }   // cached key positions
  int64_t batch_size() const { return empty() ? 0 : key_buf_.size(1); }
  DType dtype() const { return key_buf_.dtype(); }   // meaningful once filled
  bool batched() const { return batched_; }   // whether it was filled from batched (3-D) input
  // The cached projections (N, S, E), batch-major in every layout (N = 1 for unbatched input);
  // undefined while empty. A view of the cache's storage for N = 1, a copy for N > 1.
  Tensor keys() const;
  Tensor values() const;
  void reset();

 private:
  friend class MultiheadAttention;
  AttentionCache(Kind kind, int64_t max_length) : kind_(kind), max_length_(max_length) {}
  // Appends one step's projections k, v (L, N, E) after the cached positions, in place: the buffers
  // grow geometrically (at most to max_length), so a step copies only its own rows.
  void append(const Tensor& k, const Tensor& v);

  Kind kind_;
  int64_t max_length_;
  bool batched_ = true;
  int64_t length_ = 0;
  // (capacity, N, E), seq-major so that the cached positions [0, length) are one contiguous view for
  // any batch size; rows past length are unused by this copy.
  Tensor key_buf_, value_buf_;
  // How many leading rows of the buffers some copy of this cache has written, shared by the copies that
  // share the buffers (see append); null while empty.
  std::shared_ptr<int64_t> written_;
};

}  // namespace tg
