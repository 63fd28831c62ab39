#!/usr/bin/env bash
# Regenerates every golden file under tests/golden/ (docs/testing.md, "Golden files") from a
# build: builds `moesim` and the command-line tests there, deletes tests/golden/{simulate,cost,
# validate}/ and runs the golden tests in their writing mode (MOESIM_UPDATE_GOLDEN=1), which run
# each command exactly as the comparison does and write its JSON. Review `git diff tests/golden`
# before committing: a commit that moves a result commits its goldens and says why.
#
# Usage: scripts/update-golden.sh   (env: BUILD_DIR, default build; JOBS, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  echo "update-golden: $BUILD_DIR is not a configured build directory (set BUILD_DIR)" >&2
  exit 2
fi
# The test binary writes into the source tree it was configured from: refuse another checkout's.
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD_DIR/CMakeCache.txt")
if [[ "$(cd "$src" && pwd -P)" != "$(pwd -P)" ]]; then
  echo "update-golden: $BUILD_DIR was configured from $src, not $ROOT" >&2
  exit 2
fi
if grep -q '^CMAKE_BUILD_TYPE:STRING=Sanitize$' "$BUILD_DIR/CMakeCache.txt"; then
  echo "update-golden: $BUILD_DIR is a sanitizer build; write goldens from a release build" >&2
  exit 2
fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target moesim cli_tests
rm -rf tests/golden/simulate tests/golden/cost tests/golden/validate
MOESIM_UPDATE_GOLDEN=1 "$BUILD_DIR/tests/cli_tests" --gtest_filter='Shipped/GoldenJson.*' \
  --gtest_brief=1
# Check what was written with the comparison itself (and that no golden is left over).
"$BUILD_DIR/tests/cli_tests" --gtest_filter='Shipped/GoldenJson.*:GoldenFiles.*' --gtest_brief=1
echo "update-golden: $(find tests/golden -name '*.json' | wc -l) files written under tests/golden/"
git status --short tests/golden || true
