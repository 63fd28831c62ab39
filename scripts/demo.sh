#!/usr/bin/env bash
# Installs what is missing, builds moesim, and runs the main job on the built-in default scenario
# (Du et al. 2024: 1.6B backbone with 64 experts on 256 TPU-v5e, 3D sharding).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target moesim
echo
echo "== moesim cost (built-in default scenario) =="
"$BUILD_DIR/moesim" cost
