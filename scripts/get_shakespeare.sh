#!/usr/bin/env bash
# Downloads the classic tiny Shakespeare corpus (about 1.1 MB, Karpathy's char-rnn data) for
# examples/tiny_lm:  ./scripts/get_shakespeare.sh [DEST]   (default: data/tinyshakespeare.txt)
# Then:  ./build/examples/tiny_lm/tiny_lm train --data data/tinyshakespeare.txt
set -euo pipefail
dest="${1:-data/tinyshakespeare.txt}"
url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
mkdir -p "$(dirname "$dest")"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL "$url" -o "$dest.part"
elif command -v wget >/dev/null 2>&1; then
  wget -q "$url" -O "$dest.part"
else
  echo "get_shakespeare.sh: needs curl or wget" >&2
  exit 1
fi
size=$(wc -c <"$dest.part")
if [ "$size" -lt 1000000 ]; then
  echo "get_shakespeare.sh: download looks incomplete ($size bytes)" >&2
  rm -f "$dest.part"
  exit 1
fi
mv "$dest.part" "$dest"
echo "wrote $dest ($size bytes)"
