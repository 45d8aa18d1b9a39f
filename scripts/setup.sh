#!/usr/bin/env bash
# Installs every dependency of tapegrad from Debian 12's archive and builds it (Release) into build/.
# Usage: ./scripts/setup.sh          (as root, or with sudo available)
# Then:  ctest --test-dir build --output-on-failure
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libopenblas-dev          # BLAS (cblas_sgemm/dgemm), DYNAMIC_ARCH build
  libtbb-dev               # oneTBB
  libboost-program-options-dev
  libhdf5-dev hdf5-tools   # checkpoints; h5dump to inspect them
  catch2                   # Catch2 v2 test framework
  nlohmann-json3-dev       # JSON: golden-case configs and checkpoint model configs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
