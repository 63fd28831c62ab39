#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of the libraries, the binaries the tests
# run and every test, with clang (UB is fatal: -fno-sanitize-recover), GUI and CUDA off, in its
# own build directory; then ctest there. The libraries also carry libFuzzer's coverage
# instrumentation (-fsanitize=fuzzer-no-link) and the harnesses of tests/fuzz are built, so
# scripts/fuzz.sh can reuse this build (BUILD_DIR=build-asan scripts/fuzz.sh).
#
# Usage: scripts/sanitize.sh [--configure-only | --build-only]
#   env: BUILD_DIR (default build-asan), JOBS (default nproc), MOESIM_WERROR (default ON),
#        SANITIZE_TIMEOUT (ctest's default per-test limit in seconds, default 1500)
# LeakSanitizer suppressions: tests/sanitizers/lsan.supp (third-party libraries only).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
MODE=${1:-all}

bash scripts/install-deps.sh --no-gui --sanitizers

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# -O1 and line tables only: a third of the compile time of -O2 -g, stacks still have lines.
# (MOESIM_FUZZ adds libFuzzer's coverage instrumentation to the libraries only: tests/fuzz.)
CXXFLAGS_ALL="-O1 -gline-tables-only -fno-omit-frame-pointer $SAN"

# tests/sanitizers/asan_options.cc: default options (full malloc stacks in processes that load
# Open MPI, for lsan.supp), linked into every executable; not instrumented.
OPTIONS_OBJ=$ROOT/$BUILD_DIR/sanitizers/asan_options.o
[[ "$BUILD_DIR" = /* ]] && OPTIONS_OBJ=$BUILD_DIR/sanitizers/asan_options.o

# The Python module is left out: a sanitized extension loads only into a sanitized interpreter.
configure() {
  mkdir -p "$(dirname "$OPTIONS_OBJ")"
  clang++ -std=c++20 -O0 -fno-builtin -c tests/sanitizers/asan_options.cc -o "$OPTIONS_OBJ"
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Sanitize \
    -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS_SANITIZE="$CXXFLAGS_ALL" \
    -DCMAKE_EXE_LINKER_FLAGS_SANITIZE="$SAN $OPTIONS_OBJ" \
    -DCMAKE_SHARED_LINKER_FLAGS_SANITIZE="$SAN" \
    -DMOESIM_WITH_GUI=OFF -DMOESIM_WITH_CUDA=OFF -DMOESIM_FUZZ=ON -DMOESIM_WITH_PYTHON=OFF \
    -DMOESIM_WERROR="${MOESIM_WERROR:-ON}" >/dev/null
}

# Runtime options for every sanitized process the tests start (moesim, moesim-real, mpirun's
# children inherit the environment).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0}

configure
[[ "$MODE" == --configure-only ]] && exit 0
start=$SECONDS
# Every target but the benchmarks (tests/bench: not run by ctest).
mapfile -t targets < <(cmake --build "$BUILD_DIR" --target help |
  sed -n 's/^\.\.\. \([A-Za-z0-9_.+-]*\).*/\1/p' |
  grep -vE '^(all|clean|depend|edit_cache|rebuild_cache|test|install.*|list_install_components)$|_bench$|\.(o|i|s)$')
if [[ ${#targets[@]} -eq 0 ]]; then targets=(all); fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}"
echo "sanitize: build took $((SECONDS - start)) s"
[[ "$MODE" == --build-only ]] && exit 0
start=$SECONDS
cd "$BUILD_DIR"
status=0
# A failed test is run once more before it counts: the end-to-end calibration fits timings of
# real collectives, which ASan slows unevenly on a loaded machine. A sanitizer finding fails
# every time, so it still fails the run.
# Left out: TrainCli.TinyMoeLossOnATextFileFallsBy30PercentIn200Steps, a convergence check (200
# training steps, 85 s under ASan) of the kernels that TrainCli.SyntheticLossFallsFromLogVocab
# and the trainer's tests run here for fewer steps; the release build runs it.
ctest --output-on-failure -j "$JOBS" --timeout "${SANITIZE_TIMEOUT:-1500}" --repeat until-pass:2 \
  -E '^TrainCli\.TinyMoeLossOnATextFileFallsBy30PercentIn200Steps$' || status=$?
echo "sanitize: tests took $((SECONDS - start)) s"
exit $status
