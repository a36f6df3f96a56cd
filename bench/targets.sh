#!/usr/bin/env bash
# Times the speed targets of issue 14 (scale) with the cesr binary and prints
# one Markdown table row per target: wall and CPU seconds, the load average
# before the run, and whether the run finished within its time limit.
#
# Usage: bench/targets.sh [--cesr PATH] [--limit SECONDS] [--only NAME[,NAME...]]
#   --cesr PATH     the binary (default: $CESR, else build/cesr)
#   --limit S       stop each run after S seconds of wall time (default 900)
#   --only NAMES    run only these targets (names as in the first column)
#
# The machine is shared and noisy: read a time together with its load, and
# repeat a run whose load was above the number of cores.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cesr=${CESR:-$repo/build/cesr}
limit=900
only=""
while (($#)); do
  case $1 in
    --cesr) cesr=$2; shift ;;
    --limit) limit=$2; shift ;;
    --only) only=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "targets: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -x $cesr ]] || { echo "targets: no cesr binary at '$cesr' (build it, or give --cesr PATH)" >&2; exit 2; }
[[ $limit =~ ^[0-9]+$ ]] || { echo "targets: --limit must be a whole number of seconds, got '$limit'" >&2; exit 2; }

# name | target (seconds) | arguments of cesr
targets=(
  "steps-sgd-1e8|5|steps --spectrum loguniform:d=1000,kappa=1e8 --method sgd --lr 0.035874288199619041 --batch 1 --target 1e-6 --relative"
  "tune-steps-hb-1e6|60|tune --objective steps --spectrum loguniform:d=1000,kappa=1e6 --method hb --batch 1"
  "frontier-steps-1e6|600|frontier --objective steps --spectrum loguniform:d=1000,kappa=1e6 --methods sgd,hb,asgd --batches 1:65536:x4"
  "tune-1e6-sgd|3|tune --spectrum powerlaw:d=1000000,alpha=1.5 --method sgd --batch 16"
  "tune-1e6-hb|3|tune --spectrum powerlaw:d=1000000,alpha=1.5 --method hb --batch 16"
  "tune-1e6-asgd|3|tune --spectrum powerlaw:d=1000000,alpha=1.5 --method asgd --batch 16"
  "frontier-1e6|60|frontier --spectrum powerlaw:d=1000000,alpha=1.5 --methods sgd,hb,asgd --batches 1:65536:x2"
)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "| target | limit (s) | wall (s) | CPU (s) | load before | result |"
echo "|---|---:|---:|---:|---:|---|"
for entry in "${targets[@]}"; do
  IFS='|' read -r name goal args <<<"$entry"
  if [[ -n $only && ",$only," != *",$name,"* ]]; then continue; fi
  load=$(cut -d' ' -f1 /proc/loadavg)
  read -r -a argv <<<"$args"
  status=0
  /usr/bin/time -f "%e %U %S" -o "$scratch/time" timeout "$limit" "$cesr" "${argv[@]}" \
    >"$scratch/out" 2>"$scratch/err" || status=$?
  read -r wall user sys < <(tail -n 1 "$scratch/time") || { wall=nan; user=0; sys=0; }
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  if ((status == 124)); then
    result="stopped at the limit"
  elif ((status != 0)); then
    result="exit $status: $(head -c 200 "$scratch/err" | tr '\n' ' ')"
  else
    result=$(awk -v w="$wall" -v g="$goal" 'BEGIN { print (w + 0 <= g + 0) ? "met" : "not met" }')
  fi
  echo "| \`$name\` (< $goal s) | $limit | $wall | $cpu | $load | $result |"
done
