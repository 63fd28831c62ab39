#!/usr/bin/env bash
# Installs every Debian package moesim needs. Quick (no apt-get) when all are present.
# Usage: scripts/install-deps.sh [--no-gui] [--sanitizers]
#   --no-gui      skip Qt and the X virtual framebuffer
#   --sanitizers  also clang, its sanitizer and libFuzzer runtimes and llvm-symbolizer
#                 (scripts/sanitize.sh, scripts/fuzz.sh)
set -euo pipefail

packages=(
  cmake g++ make lld pkg-config clang-format
  libboost-graph-dev libeigen3-dev
  libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  openmpi-bin libopenmpi-dev
  time
  python3 python3-dev pybind11-dev python3-numpy python3-matplotlib
)
gui=1
sanitizers=0
for arg in "$@"; do
  case "$arg" in
    --no-gui) gui=0 ;;
    --sanitizers) sanitizers=1 ;;
    *) echo "install-deps: unknown option $arg (--no-gui, --sanitizers)" >&2; exit 2 ;;
  esac
done
if [[ $gui -eq 1 ]]; then
  packages+=(qt6-base-dev qt6-charts-dev libqt6opengl6-dev qt6-svg-dev libgl-dev xvfb xauth)
fi
if [[ $sanitizers -eq 1 ]]; then
  # Debian's clang (14 on bookworm); libclang-rt-14-dev holds ASan, UBSan and libFuzzer; llvm
  # has llvm-symbolizer for readable sanitizer stacks.
  packages+=(clang libclang-rt-14-dev llvm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
