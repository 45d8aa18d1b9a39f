#pragma once
// The whole public API of tapegrad in one include:
//
//   #include <tapegrad/tapegrad.h>
//
// Namespaces: tg (tensors, Var and the tape, ops, gradcheck, random streams, runtime, layers),
// tg::io (HDF5 files and checkpoints), tg::init (initialisers), tg::optim (optimizers, schedules,
// gradient clipping), tg::dist (data-parallel training over MPI; builds with MPI only, TAPEGRAD_HAS_MPI).
// Each header below may also be included on its own. Internals (framework/kernels, the HDF5 handles,
// distributed/collectives.h) are not installed and not reachable from here.
//
// Every public header is listed here by hand; the `umbrella_header` test fails when a header under
// framework/, layers/, optim/ or distributed/ is missing from this list (or listed but gone).
#include "tapegrad/version.h"

#include "tapegrad/framework/autocast.h"
#include "tapegrad/framework/check.h"
#include "tapegrad/framework/dtype.h"
#include "tapegrad/framework/dtype_impl.h"
#include "tapegrad/framework/gradcheck.h"
#include "tapegrad/framework/io/atomic_file.h"
#include "tapegrad/framework/io/checkpoint.h"
#include "tapegrad/framework/io/hdf5_file.h"
#include "tapegrad/framework/ops/attention.h"
#include "tapegrad/framework/ops/elementwise.h"
#include "tapegrad/framework/ops/loss.h"
#include "tapegrad/framework/ops/matmul.h"
#include "tapegrad/framework/ops/nn_functional.h"
#include "tapegrad/framework/ops/reduce.h"
#include "tapegrad/framework/ops/shape.h"
#include "tapegrad/framework/random.h"
#include "tapegrad/framework/runtime.h"
#include "tapegrad/framework/shape.h"
#include "tapegrad/framework/state_dict.h"
#include "tapegrad/framework/tape.h"
#include "tapegrad/framework/tensor.h"
#include "tapegrad/framework/tensor_ops.h"

#include "tapegrad/layers/activation.h"
#include "tapegrad/layers/attention_cache.h"
#include "tapegrad/layers/attention_masks.h"
#include "tapegrad/layers/dropout.h"
#include "tapegrad/layers/embedding.h"
#include "tapegrad/layers/init.h"
#include "tapegrad/layers/layer_norm.h"
#include "tapegrad/layers/linear.h"
#include "tapegrad/layers/module.h"
#include "tapegrad/layers/multihead_attention.h"
#include "tapegrad/layers/transformer.h"
#include "tapegrad/layers/transformer_decoder.h"
#include "tapegrad/layers/transformer_decoder_layer.h"
#include "tapegrad/layers/transformer_encoder_layer.h"

#include "tapegrad/optim/adam.h"
#include "tapegrad/optim/clip_grad.h"
#include "tapegrad/optim/lr_scheduler.h"
#include "tapegrad/optim/optimizer.h"
#include "tapegrad/optim/sgd.h"

#if TAPEGRAD_HAS_MPI   // tg::dist: link tapegrad::distributed (a build with MPI only)
#include "tapegrad/distributed/distributed.h"
#endif
