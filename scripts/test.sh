#!/usr/bin/env bash
# Installs what is missing, builds everything that can be built (CUDA code too when nvcc is
# present), and runs every test. Usage: scripts/test.sh   (env: BUILD_DIR, JOBS, MOESIM_WERROR)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DMOESIM_WERROR="${MOESIM_WERROR:-ON}"
cmake --build "$BUILD_DIR" -j "$JOBS"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS"
