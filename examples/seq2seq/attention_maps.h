#pragma once
// `seq2seq attend`: what each attention head of a trained model looks at, for one input.
// The weights are MultiheadAttention's own (need_weights = true, average_attn_weights = false), taken
// from a forward pass equal to Seq2Seq::forward's in eval mode (the layer inputs are the model's own:
// tested bit for bit); training never takes this path.
#include <cstdint>
#include <string>
#include <vector>

#include "examples/seq2seq/model.h"

namespace tg::seq2seq {

// Per layer, per head: the weights of each query over the keys, in the model's dtype.
struct AttentionWeights {
  std::vector<Tensor> encoder;   // encoder self-attention: (H, S, S)
  std::vector<Tensor> decoder;   // decoder self-attention: (H, T, T), zero where key > query (causal)
  std::vector<Tensor> cross;     // decoder cross-attention: (H, T, S), queries = target positions
};

// The weights of source (S tokens, 1 <= S <= max_src_len) and teacher-forced target input tgt_in (BOS
// then the output so far, 1 <= T <= max_tgt_len), batch of one (no padding). No tape; the model's
// training flag is restored. Throws std::invalid_argument "[Seq2Seq] ..." for an empty or too long
// source or target.
AttentionWeights attention_weights(Seq2Seq& model, const std::vector<int64_t>& source, const std::vector<int64_t>& tgt_in);

struct AttentionMapFiles {
  std::string output;                 // the greedy decoding of the input
  std::vector<std::string> written;   // every file: cross_attn, dec_attn, enc_attn layers (png, svg, csv each)
  bool pictures = true;               // false: gnuplot is not on PATH, only the CSVs were written
};

// Greedy-decodes `input` (cached, as `translate`), then runs attention_weights on the input and BOS +
// the output (teacher forced with its own output; the position that produced EOS included). Writes into
// output_dir (created), for every decoder layer L:
//   cross_attn_layer<L>.{png,svg,csv}: rows the output characters being produced (the last "</s>",
//     EOS), columns the source characters;
//   dec_attn_layer<L>.{png,svg,csv}: decoder self-attention, rows as above, columns the decoder's input
//     tokens ("<s>" = BOS, then the output), the masked future grey (absent from the CSV);
// and for every encoder layer L enc_attn_layer<L>.{png,svg,csv}: source against source.
// CSV: layer,head,query,key,weight ("%.9g", examples/common/heatmaps.h). PNG and SVG only when gnuplot
// is on PATH. Throws encode()'s std::invalid_argument for characters outside the vocabulary,
// attention_weights' errors, and std::runtime_error naming a file that cannot be written.
AttentionMapFiles write_attention_maps(Seq2Seq& model, const std::string& input, const std::string& output_dir);

}  // namespace tg::seq2seq
