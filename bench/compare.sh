#!/usr/bin/env bash
# Side-by-side comparison with the peers of ../shared/bench/peers (or $PEERS), in one run:
#   - MultiheadAttention forward+backward: LibTorch (libtorch_mha, 1 and 2 threads, best taken) vs
#     bench_mha (2 threads), per shape, as a ratio;
#   - tiny-LM training step: PyTorch gpt_cpu_torch.py --arch encoder (1 and 2 threads, best taken)
#     vs bench_train (2 threads), with peak memory of both;
#   - thread scaling of bench_mha on the mid shape (1 vs 2 threads);
#   - bf16 mixed precision: bench_mha and bench_train --precision bf16 beside float32, and the PyTorch step
#     under torch.autocast bf16 (gpt_cpu_torch.py --autocast bf16, 1 and 2 threads, best taken);
#   - beside the times, the useful GFLOP/s of both sides (causal-aware counts, bench/README.md) and
#     their fraction of the sgemm peak that bench_mha/bench_train measure in each run; the bf16 figures
#     also as a fraction of the bf16 GEMM peak that their --precision bf16 runs measure.
# Both sides run on the same OpenBLAS core: tapegrad picks its core from cpuid (each tapegrad command
# runs under `env -u OPENBLAS_CORETYPE`, so a stale value in the environment cannot pin it to an
# older kernel), `bench_sgemm --print-core` names it, and the peers get OPENBLAS_CORETYPE set to that
# core. OPENBLAS_L2_SIZE is unset for both. The core of each side is printed: tapegrad's from its
# runtime_info line, the peers' as reported by the OpenBLAS that torch loads.
# Runs alternate between the programs ROUNDS times and keep each program's best median, so a noisy
# neighbour hurts both sides alike. Every run starts after a pause of COOL seconds (default 5): on
# this VM a program started right after a 2-thread run is slowed by ~40% for a few seconds, whichever
# program it is.
#   bench/compare.sh [ROUNDS]      (default 3; needs libtorch-dev and python3-torch for the peers)
# Environment: BUILD (default build), PEERS (default ../shared/bench/peers), DATA (default
# ../shared/data/tinyshakespeare.txt), ITERS (MHA iterations, default 20), TRAIN_ITERS (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BUILD=${BUILD:-build}
PEERS=${PEERS:-../shared/bench/peers}
DATA=${DATA:-../shared/data/tinyshakespeare.txt}
ITERS=${ITERS:-20}
TRAIN_ITERS=${TRAIN_ITERS:-60}
COOL=${COOL:-5}
PY=/usr/bin/python3
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for f in "$BUILD/bench/bench_mha" "$BUILD/bench/bench_train" "$BUILD/bench/bench_sgemm" "$PEERS/libtorch_mha.cpp" "$PEERS/gpt_cpu_torch.py" "$DATA"; do
  [[ -e $f ]] || { echo "compare.sh: missing $f" >&2; exit 2; }
done
LIBTORCH_BIN="$BUILD/peers/libtorch_mha"
if [[ ! -x $LIBTORCH_BIN || "$PEERS/libtorch_mha.cpp" -nt $LIBTORCH_BIN ]]; then
  echo "building the LibTorch peer (about 2 minutes)..."
  mkdir -p "$BUILD/peers"
  g++ -O2 -std=c++17 "$PEERS/libtorch_mha.cpp" -o "$LIBTORCH_BIN" -I/usr/include/torch/csrc/api/include \
    -ltorch -ltorch_cpu -lc10
fi

pause() { sleep "$COOL"; }

# tapegrad: its own core choice; the peers: that same core.
tapegrad() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; }
CORE=$(tapegrad "$BUILD/bench/bench_sgemm" --print-core)
peer() { env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE="$CORE" "$@"; }
PEER_CORE=$(peer "$PY" -c '
import ctypes, torch
lib = next(l for l in open("/proc/self/maps").read().split() if "libopenblas" in l)
f = ctypes.CDLL(lib).openblas_get_corename
f.restype = ctypes.c_char_p
print(f().decode())')
echo "OpenBLAS core: tapegrad $CORE (chosen from cpuid), peers $PEER_CORE (OPENBLAS_CORETYPE=$CORE)"
if [[ ${PEER_CORE,,} != "${CORE,,}" ]]; then
  echo "compare.sh: the peers run on $PEER_CORE, not $CORE; the comparison would not be fair" >&2
  exit 3
fi

# "name GFLOP peak" from bench_mha: the fwd+bwd useful GFLOP per shape and the run's sgemm peak.
mha_flops() { sed -n -e 's/^sgemm peak \([0-9.]*\) GFLOP.*/peak \1/p' -e 's/^\([a-z-]*\) .*fwd+bwd .*; \([0-9.]*\) GFLOP).*/\1 \2/p'; }

# "bpeak GFLOP/s" from a --precision bf16 run's bf16 GEMM peak line (none where it has no native bf16).
bf16_peak() { sed -n 's/^bf16 GEMM peak \([0-9.]*\) GFLOP.*/bpeak \1/p'; }

# "name fwd+bwd-ms" lines from the common output format of libtorch_mha and bench_mha.
mha_lines() { sed -n 's/^\([a-z-]*\) .*fwd+bwd *\([0-9.]*\) ms.*/\1 \2/p'; }

for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS"
  for t in 1 2; do
    pause
    peer "$LIBTORCH_BIN" "$t" "$ITERS" | mha_lines | sed "s/^/libtorch /" >>"$OUT/mha"
  done
  pause
  tapegrad "$BUILD/bench/bench_mha" --threads 2 --iters "$ITERS" >"$OUT/mha_run"
  mha_lines <"$OUT/mha_run" | sed "s/^/tapegrad /" >>"$OUT/mha"
  mha_flops <"$OUT/mha_run" >>"$OUT/mha_flops"
  sed -n 's/.* core=\([A-Za-z0-9]*\) .*/\1/p' "$OUT/mha_run" >>"$OUT/cores"
  pause
  tapegrad "$BUILD/bench/bench_mha" --threads 1 --iters "$ITERS" --shape mid | mha_lines | sed "s/^/tapegrad1 /" >>"$OUT/mha"
  pause
  tapegrad "$BUILD/bench/bench_mha" --threads 2 --iters "$ITERS" --precision bf16 >"$OUT/mha_bf16_run"
  mha_lines <"$OUT/mha_bf16_run" | sed "s/^/tapegrad_bf16 /" >>"$OUT/mha"
  bf16_peak <"$OUT/mha_bf16_run" >>"$OUT/bf16_peaks"
  for t in 1 2; do for autocast in off bf16; do
    pause
    peer env OPENBLAS_NUM_THREADS=$t "$PY" -c '
import resource, runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print("peak_rss_mb %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
' "$PEERS/gpt_cpu_torch.py" --threads "$t" --arch encoder --iters "$TRAIN_ITERS" --eval_every 0 --data "$DATA" \
      --autocast "$autocast" >"$OUT/py$t" 2>&1
    ms=$(sed -n 's/.*median \([0-9.]*\) ms\/iter.*/\1/p' "$OUT/py$t")
    mb=$(sed -n 's/^peak_rss_mb \([0-9.]*\)/\1/p' "$OUT/py$t")
    echo "pytorch$([[ $autocast == bf16 ]] && echo _bf16) $ms $mb" >>"$OUT/train"
  done; done
  pause
  tapegrad "$BUILD/bench/bench_train" --threads 2 --iters "$TRAIN_ITERS" --data "$DATA" --precision bf16 \
    >"$OUT/train_bf16"
  echo "tapegrad_bf16 $(sed -n 's/^\([0-9.]*\) ms\/iter.*peak memory \([0-9.]*\) MB.*/\1 \2/p' "$OUT/train_bf16")" \
    >>"$OUT/train"
  bf16_peak <"$OUT/train_bf16" >>"$OUT/bf16_peaks"
  pause
  tapegrad "$BUILD/bench/bench_train" --threads 2 --iters "$TRAIN_ITERS" --data "$DATA" >"$OUT/train_run"
  echo "tapegrad $(sed -n 's/^\([0-9.]*\) ms\/iter.*peak memory \([0-9.]*\) MB.*/\1 \2/p' "$OUT/train_run")" >>"$OUT/train"
  sed -n -e 's/^sgemm peak \([0-9.]*\) GFLOP.*/peak \1/p' -e 's/^useful \([0-9.]*\) GFLOP\/step.*/flop \1/p' \
    "$OUT/train_run" >>"$OUT/train_flops"
  sed -n 's/.* core=\([A-Za-z0-9]*\) .*/\1/p' "$OUT/train_run" >>"$OUT/cores"
done

if grep -qvix "$CORE" "$OUT/cores"; then
  echo "compare.sh: a tapegrad run reported core $(grep -vix "$CORE" "$OUT/cores" | head -1), not $CORE" >&2
  exit 3
fi
# The sgemm peak: the best that any tapegrad run of this comparison measured (2 threads).
PEAK=$(awk '$1 == "peak" && $2 > p { p = $2 } END { print p }' "$OUT/mha_flops" "$OUT/train_flops")
# The bf16 GEMM peak likewise (0: not measured, no native bf16 products here).
BPEAK=$(awk '$2 > p { p = $2 } END { print p + 0 }' "$OUT/bf16_peaks")
echo
echo "OpenBLAS core: tapegrad $(sort -u "$OUT/cores" | paste -sd,), peers $PEER_CORE; sgemm peak $PEAK GFLOP/s (2 threads, best of the runs)"
echo "bf16 GEMM peak $BPEAK GFLOP/s (2 threads, best of the --precision bf16 runs; 0: no native bf16 products here)"
echo
echo "MultiheadAttention forward+backward (ms, best median over $ROUNDS rounds; LibTorch: best of 1 and 2 threads;"
echo "useful GFLOP/s, causal-aware, and % of the float32 sgemm peak; bf16: --precision bf16, its ratio to LibTorch,"
echo "its GFLOP/s as % of the float32 sgemm peak and of the bf16 GEMM peak)"
awk -v peak="$PEAK" -v bpeak="$BPEAK" '
  FILENAME ~ /mha_flops$/ { if ($1 != "peak") flop[$1] = $2; next }
  { key = $1 SUBSEP $2; if (!(key in best) || $3 < best[key]) best[key] = $3; if ($1 == "tapegrad") order[++n] = $2 }
  END {
    printf "| %-8s | %13s | %13s | %6s | %17s | %17s | %13s | %6s | %17s | %11s |\n", "shape", "LibTorch best", "tapegrad 2thr",
      "ratio", "LibTorch GFLOP/s", "tapegrad GFLOP/s", "tapegrad bf16", "ratio", "bf16 GFLOP/s", "% bf16 peak"
    printf "|----------|---------------|---------------|--------|-------------------|-------------------|---------------|--------|-------------------|-------------|\n"
    for (i = 1; i <= n; i++) {
      s = order[i]; if (s in seen) continue; seen[s] = 1
      lt = best["libtorch" SUBSEP s]; tg = best["tapegrad" SUBSEP s]; r1 = flop[s] / lt * 1e3; r2 = flop[s] / tg * 1e3
      bf = best["tapegrad_bf16" SUBSEP s]; r3 = flop[s] / bf * 1e3; b3 = bpeak > 0 ? 100 * r3 / bpeak : 0
      printf "| %-8s | %13.3f | %13.3f | %5.2fx | %8.1f (%5.1f%%) | %8.1f (%5.1f%%) | %13.3f | %5.2fx | %8.1f (%5.1f%%) | %10.1f%% |\n",
        s, lt, tg, lt / tg, r1, 100 * r1 / peak, r2, 100 * r2 / peak, bf, lt / bf, r3, 100 * r3 / peak, b3
    }
    m1 = best["tapegrad1" SUBSEP "mid"]; m2 = best["tapegrad" SUBSEP "mid"]
    printf "\nthread scaling, mid: 1 thread %.3f ms, 2 threads %.3f ms: %.2fx\n", m1, m2, m1 / m2
  }' "$OUT/mha_flops" "$OUT/mha"
echo
echo "tiny-LM training step (ms/iter, best median over $ROUNDS rounds; PyTorch: best of 1 and 2 threads)"
awk -v peak="$PEAK" -v bpeak="$BPEAK" '
  FILENAME ~ /train_flops$/ { if ($1 == "flop") flop = $2; next }
  { if (!($1 in best) || $2 < best[$1]) best[$1] = $2
    if ($1 ~ /^pytorch/ && (pb == "" || $2 < pb)) pb = $2   # PyTorch'"'"'s best, float32 or autocast
    # memory: the lowest PyTorch figure against the highest of ours
    if (!($1 in mem) || ($1 ~ /^pytorch/ ? $3 < mem[$1] : $3 > mem[$1])) mem[$1] = $3 }
  END {
    printf "PyTorch %.2f ms/iter, tapegrad %.2f ms/iter: %.2fx\n", best["pytorch"], best["tapegrad"], best["pytorch"] / best["tapegrad"]
    printf "bf16: PyTorch autocast %.2f ms/iter, tapegrad --precision bf16 %.2f ms/iter: %.2fx PyTorch'"'"'s best (%.2f ms), %.2fx tapegrad float32\n",
      best["pytorch_bf16"], best["tapegrad_bf16"], pb / best["tapegrad_bf16"], pb, best["tapegrad"] / best["tapegrad_bf16"]
    r1 = flop / best["pytorch"] * 1e3; r2 = flop / best["tapegrad"] * 1e3
    printf "useful %.3f GFLOP/step: PyTorch %.1f GFLOP/s (%.1f%% of peak), tapegrad %.1f GFLOP/s (%.1f%% of peak)\n",
      flop, r1, 100 * r1 / peak, r2, 100 * r2 / peak
    r3 = flop / best["pytorch_bf16"] * 1e3; r4 = flop / best["tapegrad_bf16"] * 1e3
    # (a ">" among print arguments would redirect the output: the fractions are computed first)
    b3 = bpeak > 0 ? 100 * r3 / bpeak : 0; b4 = bpeak > 0 ? 100 * r4 / bpeak : 0
    printf "bf16: PyTorch autocast %.1f GFLOP/s (%.1f%% of the bf16 peak), " \
      "tapegrad %.1f GFLOP/s (%.1f%% of the bf16 peak)\n",
      r3, b3, r4, b4
    printf "peak memory (RSS): PyTorch %.1f MB (lowest run), tapegrad %.1f MB (highest run); bf16: PyTorch %.1f MB, tapegrad %.1f MB\n",
      mem["pytorch"], mem["tapegrad"], mem["pytorch_bf16"], mem["tapegrad_bf16"]
  }' "$OUT/train_flops" "$OUT/train"
