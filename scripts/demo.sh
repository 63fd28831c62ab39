#!/usr/bin/env bash
# Installs what is missing, builds moesim, and runs the main job on the built-in default scenario
# (Du et al. 2024: 1.6B backbone with 64 experts on 256 TPU-v5e, 3D sharding), then compares
# dense and MoE models across sharding strategies and expert counts against the paper's
# measured step times.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target moesim
echo
echo "== moesim cost (built-in default scenario) =="
"$BUILD_DIR/moesim" cost
echo
echo "== moesim simulate (built-in default scenario) =="
"$BUILD_DIR/moesim" simulate
echo
echo "== dense vs MoE, 3D vs 2D sharding, 16 to 256 experts: simulated vs measured (Du et al. 2024) =="
"$BUILD_DIR/moesim" validate validation/apple2024.csv
echo
echo "== the default MoE as expert counts change (3D sharding, one expert per chip of the Expert axis) =="
"$BUILD_DIR/moesim" sweep scenarios/apple2024/moe-1.6b-64e.textproto \
  --vary model.moe.num_experts=16,64,256 --vary sharding.mesh.data=16,4,1 \
  --vary sharding.mesh.expert=16,64,256 2> /dev/null | grep -v invalid
