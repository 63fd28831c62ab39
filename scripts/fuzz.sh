#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz) with clang, -fsanitize=fuzzer,address,undefined,
# and runs each for SECONDS on its seed corpus (collected from the repository's own files at
# run time) plus what earlier runs found. Prints per harness the executions, executions per
# second and coverage (cov: edges, ft: features) from libFuzzer's final stats; saves any crash,
# leak, timeout or out-of-memory input under BUILD_DIR/artifacts/HARNESS/ and exits 1 if any
# harness found one.
#
# Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
#   SECONDS  per harness, default 60
#   HARNESS  scenario topology validation_csv profile calib_json checkpoint (default: all)
#   env: BUILD_DIR (default build-fuzz; BUILD_DIR=build-asan reuses scripts/sanitize.sh's
#        build), JOBS (compile jobs, default nproc), FUZZ_PARALLEL (harnesses run at once,
#        default 1), FUZZ_FLAGS (extra libFuzzer flags)
# Reproduce a finding: BUILD_DIR/fuzz/HARNESS_fuzzer FILE (runs it once, prints the stack).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-60}
if [[ $# -gt 0 ]]; then shift; fi
ALL=(scenario topology validation_csv profile calib_json checkpoint)
HARNESSES=("$@")
[[ ${#HARNESSES[@]} -eq 0 ]] && HARNESSES=("${ALL[@]}")
export BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
PARALLEL=${FUZZ_PARALLEL:-1}
for h in "${HARNESSES[@]}"; do
  [[ " ${ALL[*]} " == *" $h "* ]] || { echo "fuzz: unknown harness $h (${ALL[*]})" >&2; exit 2; }
done

# The same configuration as scripts/sanitize.sh (one place for the flags).
bash scripts/sanitize.sh --configure-only
targets=()
for h in "${HARNESSES[@]}"; do targets+=("${h}_fuzzer"); done
[[ " ${HARNESSES[*]} " == *" checkpoint "* ]] && targets+=(checkpoint_seed)
start=$SECONDS
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}"
echo "fuzz: build took $((SECONDS - start)) s"

B=$ROOT/$BUILD_DIR
[[ "$BUILD_DIR" = /* ]] && B=$BUILD_DIR
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0}
# The fast unwinder (tests/sanitizers/asan_options.cc picks the full one where Open MPI is loaded).
export ASAN_OPTIONS=${ASAN_OPTIONS:-fast_unwind_on_malloc=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Seeds: copies of the repository's files of each format (rebuilt every run; nothing is kept in
# the tree twice) plus tests/fuzz/seeds/HARNESS and tests/fuzz/regressions/HARNESS.
collect_seeds() {
  local h=$1 dir=$B/seeds/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  local files=()
  case $h in
    scenario) mapfile -t files < <(git ls-files 'scenarios/**.textproto' 'validation/real/*.textproto' 'tests/real/*.textproto') ;;
    topology) mapfile -t files < <(git ls-files 'topologies/*.textproto') ;;
    validation_csv) mapfile -t files < <(git ls-files 'validation/*.csv' 'validation/real/*.csv') ;;
    profile) mapfile -t files < <(git ls-files 'validation/measurements/**/cpu.textproto') ;;
    calib_json) mapfile -t files < <(git ls-files 'validation/measurements/**/bench-*.json') ;;
    checkpoint) "$B/fuzz/checkpoint_seed" "$dir" ;;
  esac
  for d in tests/fuzz/seeds/$h tests/fuzz/regressions/$h; do
    [[ -d $d ]] && mapfile -t -O ${#files[@]} files < <(find "$d" -type f)
  done
  for f in "${files[@]}"; do cp "$f" "$dir/${f//\//_}"; done
}

# Dictionaries: field and enum value names of the schema for the text formats, the keys the
# seeds use for JSON, plus tests/fuzz/HARNESS.dict where there is one.
proto_words() {
  grep -hoE '^\s*(optional |repeated )?[A-Za-z0-9_.]+ [a-z_0-9]+ = [0-9]+' "$@" |
    awk '{print $(NF-2)}' | sort -u | sed 's/.*/"&"/'
  grep -hoE '^\s*[A-Z][A-Z_0-9]* = [0-9]+;' "$@" | awk '{print "\"" $1 "\""}' | sort -u
}
json_keys() { grep -ahoE '"[A-Za-z_][A-Za-z_0-9]*" *:' "$@" 2>/dev/null | sed 's/ *:$//' | sort -u; }
make_dict() {
  local h=$1 out=$B/dicts/$1.dict
  mkdir -p "$B/dicts"
  {
    case $h in
      scenario | profile) proto_words proto/moesim.proto ;;
      topology) proto_words proto/topology.proto ;;
      calib_json | checkpoint) json_keys "$B/seeds/$h"/* ;;
    esac
    [[ -f tests/fuzz/$h.dict ]] && grep -v '^#' "tests/fuzz/$h.dict" | grep -v '^$'
  } | sort -u >"$out"
  echo "$out"
}

run_one() {
  local h=$1 log=$B/logs/$1.log
  local art=$B/artifacts/$h/ corpus=$B/corpus/$h
  mkdir -p "$art" "$corpus" "$B/logs"
  local dict
  dict=$(make_dict "$h")
  local rc=0
  # shellcheck disable=SC2086
  (cd "$ROOT" && "$B/fuzz/${h}_fuzzer" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 \
    -dict="$dict" -artifact_prefix="$art" -print_final_stats=1 -close_fd_mask=1 \
    ${FUZZ_FLAGS:-} "$corpus" "$B/seeds/$h") >"$log" 2>&1 || rc=$?
  echo "$rc" >"$B/logs/$h.rc"
}

summary() {
  local h=$1 log=$B/logs/$1.log rc
  rc=$(cat "$B/logs/$h.rc")
  local execs eps cov ft corp last
  execs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
  eps=$(grep -a 'stat::average_exec_per_sec' "$log" | awk '{print $2}' | tail -1)
  last=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9a-zA-Z]+).*/\1/p' <<<"$last")
  local result=ok
  if [[ $rc != 0 ]]; then
    result="FOUND (exit $rc): $(grep -aoE 'Test unit written to .*' "$log" | tail -1 | sed 's/Test unit written to //')"
  fi
  printf '%-15s %10s %8s %7s %7s %12s  %s\n' "$h" "${execs:-?}" "${eps:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$result"
  [[ $rc == 0 ]]
}

for h in "${HARNESSES[@]}"; do collect_seeds "$h"; done
echo "fuzz: ${#HARNESSES[@]} harness(es), ${SECS} s each, ${PARALLEL} at a time; logs in $B/logs"
running=0
for h in "${HARNESSES[@]}"; do
  if [[ $running -ge $PARALLEL ]]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$h" &
  running=$((running + 1))
done
wait || true

printf '%-15s %10s %8s %7s %7s %12s  %s\n' harness execs exec/s cov ft corpus result
failed=0
for h in "${HARNESSES[@]}"; do summary "$h" || failed=1; done
if [[ $failed -ne 0 ]]; then
  echo "fuzz: findings above; the inputs are under $B/artifacts/ and the stacks in $B/logs/"
  for h in "${HARNESSES[@]}"; do
    [[ $(cat "$B/logs/$h.rc") == 0 ]] && continue
    echo "---- $h ----"
    grep -aE -A40 '^==[0-9]+==ERROR|runtime error|deadly signal|ERROR: libFuzzer' "$B/logs/$h.log" | head -60
  done
fi
exit $failed
