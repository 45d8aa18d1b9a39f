#pragma once
// The attention maps' numbers (examples' `attend` commands write attn CSVs beside the pictures) checked
// against MultiheadAttention's own weights.
#include <cstdint>
#include <string>

#include "tapegrad/framework/tensor.h"

namespace tg::test {

// REQUIREs that <csv> (header `layer,head,query,key,weight`, every row of layer `layer`) holds exactly the
// weights w (..., H, R, C) of MultiheadAttention's need_weights / average_attn_weights = false path: every
// cell as "%.9g" text (which reads back as the same float32), each row of w summing to 1, and with
// `causal` the masked future (key > query) absent from the CSV and zero in w.
void require_attention_csv_equals(const std::string& csv, int64_t layer, const Tensor& w, bool causal);

}  // namespace tg::test
