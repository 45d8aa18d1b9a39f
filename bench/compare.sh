#!/usr/bin/env bash
# Side-by-side comparison with the peers of ../shared/bench/peers (or $PEERS), in one run:
#   - MultiheadAttention forward+backward: LibTorch (libtorch_mha, 1 and 2 threads, best taken) vs
#     bench_mha (2 threads), per shape, as a ratio;
#   - tiny-LM training step: PyTorch gpt_cpu_torch.py --arch encoder (1 and 2 threads, best taken)
#     vs bench_train (2 threads), with peak memory of both;
#   - thread scaling of bench_mha on the mid shape (1 vs 2 threads).
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

for f in "$BUILD/bench/bench_mha" "$BUILD/bench/bench_train" "$PEERS/libtorch_mha.cpp" "$PEERS/gpt_cpu_torch.py" "$DATA"; do
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

# "name fwd+bwd-ms" lines from the common output format of libtorch_mha and bench_mha.
mha_lines() { sed -n 's/^\([a-z-]*\) .*fwd+bwd *\([0-9.]*\) ms.*/\1 \2/p'; }

for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS"
  for t in 1 2; do
    pause
    OPENBLAS_CORETYPE=COOPERLAKE "$LIBTORCH_BIN" "$t" "$ITERS" | mha_lines | sed "s/^/libtorch /" >>"$OUT/mha"
  done
  pause
  "$BUILD/bench/bench_mha" --threads 2 --iters "$ITERS" | mha_lines | sed "s/^/tapegrad /" >>"$OUT/mha"
  pause
  "$BUILD/bench/bench_mha" --threads 1 --iters "$ITERS" --shape mid | mha_lines | sed "s/^/tapegrad1 /" >>"$OUT/mha"
  for t in 1 2; do
    pause
    OPENBLAS_CORETYPE=COOPERLAKE OPENBLAS_NUM_THREADS=$t "$PY" -c '
import resource, runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print("peak_rss_mb %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
' "$PEERS/gpt_cpu_torch.py" --threads "$t" --arch encoder --iters "$TRAIN_ITERS" --eval_every 0 --data "$DATA" \
      >"$OUT/py$t" 2>&1
    ms=$(sed -n 's/.*median \([0-9.]*\) ms\/iter.*/\1/p' "$OUT/py$t")
    mb=$(sed -n 's/^peak_rss_mb \([0-9.]*\)/\1/p' "$OUT/py$t")
    echo "pytorch $ms $mb" >>"$OUT/train"
  done
  pause
  line=$("$BUILD/bench/bench_train" --threads 2 --iters "$TRAIN_ITERS" --data "$DATA" | tail -1)
  echo "tapegrad $(sed -n 's/^\([0-9.]*\) ms\/iter.*peak memory \([0-9.]*\) MB.*/\1 \2/p' <<<"$line")" >>"$OUT/train"
done

echo
echo "MultiheadAttention forward+backward (ms, best median over $ROUNDS rounds; LibTorch: best of 1 and 2 threads)"
awk '
  { key = $1 SUBSEP $2; if (!(key in best) || $3 < best[key]) best[key] = $3; if ($1 == "tapegrad") order[++n] = $2 }
  END {
    printf "| %-8s | %13s | %13s | %6s |\n", "shape", "LibTorch best", "tapegrad 2thr", "ratio"
    printf "|----------|---------------|---------------|--------|\n"
    for (i = 1; i <= n; i++) {
      s = order[i]; if (s in seen) continue; seen[s] = 1
      lt = best["libtorch" SUBSEP s]; tg = best["tapegrad" SUBSEP s]
      printf "| %-8s | %13.3f | %13.3f | %5.2fx |\n", s, lt, tg, lt / tg
    }
    m1 = best["tapegrad1" SUBSEP "mid"]; m2 = best["tapegrad" SUBSEP "mid"]
    printf "\nthread scaling, mid: 1 thread %.3f ms, 2 threads %.3f ms: %.2fx\n", m1, m2, m1 / m2
  }' "$OUT/mha"
echo
echo "tiny-LM training step (ms/iter, best median over $ROUNDS rounds; PyTorch: best of 1 and 2 threads)"
awk '
  { if (!($1 in best) || $2 < best[$1]) best[$1] = $2
    # memory: the lowest PyTorch figure against the highest of ours
    if (!($1 in mem) || ($1 == "pytorch" ? $3 < mem[$1] : $3 > mem[$1])) mem[$1] = $3 }
  END {
    printf "PyTorch %.2f ms/iter, tapegrad %.2f ms/iter: %.2fx\n", best["pytorch"], best["tapegrad"], best["pytorch"] / best["tapegrad"]
    printf "peak memory (RSS): PyTorch %.1f MB (lowest run), tapegrad %.1f MB (highest run)\n", mem["pytorch"], mem["tapegrad"]
  }' "$OUT/train"
