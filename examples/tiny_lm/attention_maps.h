#pragma once
// `tiny_lm attend`: what each attention head of a trained model looks at, for one prompt.
// The weights are MultiheadAttention's own (need_weights = true, average_attn_weights = false), taken
// from a forward pass equal to TinyLM::forward's (eval mode, causal mask); training never takes this path.
#include <string>
#include <vector>

#include "examples/tiny_lm/data.h"
#include "examples/tiny_lm/model.h"

namespace tg::tiny_lm {

// Per layer, the per-head self-attention weights of `tokens` (T <= block_size, batch of one):
// (n_head, T, T) in the model's dtype, row i the weights of query i over keys 0..T-1 (zero where j > i,
// the causal mask). No tape; the model's training flag is restored. Throws std::invalid_argument
// "[TinyLM] ..." for an empty sequence or one longer than block_size.
std::vector<Tensor> attention_weights(TinyLM& model, const std::vector<int64_t>& tokens);

struct AttentionMapFiles {
  std::vector<std::string> written;   // every file, in layer order (png, svg, csv per layer)
  bool pictures = true;               // false: gnuplot is not on PATH, only the CSVs were written
};

// Writes, for every layer L, output_dir/attn_layer<L>.csv (layer,head,query,key,weight; the masked
// future cells absent) and, when gnuplot is on PATH, attn_layer<L>.png and attn_layer<L>.svg: one
// heatmap per head, the prompt's characters on both axes (examples/common/heatmaps.h), masked cells grey.
// Creates output_dir. Throws as attention_weights, and std::runtime_error naming a file that cannot be written.
AttentionMapFiles write_attention_maps(TinyLM& model, const Vocabulary& vocab, const std::string& prompt,
                                       const std::string& output_dir);

}  // namespace tg::tiny_lm
