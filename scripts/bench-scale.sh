#!/usr/bin/env bash
# Scale benchmark: wall-clock time and peak resident memory (`/usr/bin/time -f "%e %M"`) of one
# `moesim simulate` per case, printed as a table (docs/testing.md, "Scale benchmark"):
#   - Megatron-Core GPT 177B (scenarios/published/megatron-h100-177b.textproto: TP 8 x PP 6 x
#     DP 48 on 2,304 H100) with the data axis and the batch grown with the cluster: 2,304, 9,216,
#     36,864 and 73,728 GPUs at --network analytical, the two smallest at --network flow too;
#   - Artetxe et al.'s MoE 1.1T on 1,024 TPU-v4 (tpu-v4:8x8x16, 3D sharding, expert 512);
#   - Mixtral 8x22B as NeMo's recipe lays it out (TP 2, CP 2, PP 4 x VPP 14, EP 8: the expert
#     all-to-all over 8 GPUs of two nodes) on 1,024 H100 (dgx-h100:128) at --network flow;
#   - a Megatron 1T-like deep pipeline (Narayanan et al. 2021: 128 layers, d_model 25600, TP 8 x
#     PP 64 x DP 6 on 3,072 A100, micro-batch 1, 512 micro-batches), from the shipped 145.6B.
# Each case runs under `timeout` (a case past it is reported, not waited for; a failed case is a
# row saying so, the first lines of its error under it); the table's last columns are each
# case's time and memory over the first case's.
#
# Usage: scripts/bench-scale.sh [--quick] [--timeout SECONDS]
#   --quick            only the small cases (177B at 2,304 GPUs, both levels; 9,216 analytical):
#                      proves the script runs (CI), measures nothing worth comparing
#   --timeout SECONDS  limit per case (default 300)
#   env: BUILD_DIR (default build; the script does not build)
# Exit status: 0 when every case finished, 1 when one failed or timed out, 2 on bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
quick=0
limit=300
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --timeout)
      [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] ||
        { echo "bench-scale: --timeout needs a whole number of seconds" >&2; exit 2; }
      limit=$2
      shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-scale: unknown option $1 (--quick, --timeout SECONDS)" >&2; exit 2 ;;
  esac
  shift
done
MOESIM=$BUILD_DIR/moesim
[[ -x "$MOESIM" ]] || { echo "bench-scale: no $MOESIM (build first, or set BUILD_DIR)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "bench-scale: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }

H177=scenarios/published/megatron-h100-177b.textproto
# The 177B grown with the cluster: 8 GPUs per DGX node, TP 8 x PP 6 fixed, DP = GPUs / 48, and
# the global batch grown with DP (98,304 tokens per data-parallel replica, as shipped).
h177() {
  local gpus=$1
  echo "$H177 --set cluster.topology=dgx-h100:$((gpus / 8)) --set sharding.mesh.data=$((gpus / 48))" \
    "--set training.global_batch_tokens=$((gpus / 48 * 98304))"
}
MOE11T="scenarios/artetxe2021/moe-1.1t.textproto --set cluster.topology=tpu-v4:8x8x16
  --set sharding.strategy=APPLE_3D --set sharding.mesh.data=2 --set sharding.mesh.expert=512
  --set training.global_batch_tokens=2097152"
MIX1K="scenarios/mixtral/mixtral-8x22b-128xh100.textproto --set cluster.topology=dgx-h100:128"
# 3,072 sequences of 2,048 tokens (DP 6 x 512 micro-batches of 1), plain 1F1B.
MEG1T="scenarios/published/megatron-a100-145.6b.textproto --set model.num_layers=128
  --set model.d_model=25600 --set model.num_heads=160 --set model.d_ff=102400
  --set cluster.topology=dgx-a100:384 --set sharding.mesh.data=6 --set sharding.mesh.pipeline=64
  --set training.global_batch_tokens=6291456 --set training.micro_batch_size=1
  --set training.pipeline_schedule=ONE_F_ONE_B --set training.virtual_stages="

# name | devices | network | arguments
cases=(
  "177B|2304|analytical|$(h177 2304)"
  "177B|2304|flow|$(h177 2304)"
  "177B|9216|analytical|$(h177 9216)"
)
if [[ $quick -eq 0 ]]; then
  cases+=(
    "177B|9216|flow|$(h177 9216)"
    "177B|36864|analytical|$(h177 36864)"
    "177B|73728|analytical|$(h177 73728)"
    "MoE 1.1T (TPU v4)|1024|analytical|$MOE11T"
    "Mixtral 8x22B (EP a2a)|1024|flow|$MIX1K"
    "Megatron 1T-like PP 64|3072|analytical|$MEG1T"
  )
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-24s %8s %-10s %10s %12s %8s %8s  %s\n' case devices network wall_s peak_rss_MiB \
  x_wall x_rss status
status=0
base_wall="" base_rss=""
for c in "${cases[@]}"; do
  c=${c//$'\n'/ }  # one line: read stops at a newline
  IFS='|' read -r name devices network args <<<"$c"
  # shellcheck disable=SC2086  # the arguments are words
  if /usr/bin/time -f "%e %M" -o "$tmp/time" timeout "$limit" "$MOESIM" simulate $args \
      --network "$network" >"$tmp/out" 2>"$tmp/err"; then
    result=ok
  else
    rc=$?
    status=1
    if [[ $rc -eq 124 ]]; then result="timed out after ${limit} s"; else result="failed (exit $rc)"; fi
  fi
  read -r wall rss_kib < <(tail -n 1 "$tmp/time")
  rss=$(awk -v k="$rss_kib" 'BEGIN { printf "%.0f", k / 1024 }')
  if [[ -z "$base_wall" ]]; then base_wall=$wall base_rss=$rss; fi
  xw=$(awk -v a="$wall" -v b="$base_wall" 'BEGIN { printf (b > 0 ? "%.1f" : "-"), a / b }')
  xr=$(awk -v a="$rss" -v b="$base_rss" 'BEGIN { printf (b > 0 ? "%.1f" : "-"), a / b }')
  if [[ $result == ok ]]; then
    step=$(sed -n 's/^step time *:\{0,1\} *//p' "$tmp/out" | head -n 1)
    [[ -n "$step" ]] && result="ok, step $step"
  fi
  printf '%-24s %8s %-10s %10s %12s %8s %8s  %s\n' "$name" "$devices" "$network" "$wall" "$rss" \
    "$xw" "$xr" "$result"
  # A failed case: the first lines of its error, under its row.
  [[ $result == ok* ]] || head -n 3 "$tmp/err" | sed 's/^/    /'
done
exit $status
